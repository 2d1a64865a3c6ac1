"""End to end: ``python train.py`` in a subprocess, single runs and multiruns, and bad input."""

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY, run_train


def only_run_dir(root: Path) -> Path:
    runs = [p.parent for p in root.rglob("metrics.json")]
    assert len(runs) == 1, runs
    return runs[0]


def test_single_run_writes_every_run_file_and_the_loss_falls(tmp_path):
    run_train([*TINY, "trainer.max_epochs=3", "loss=focal_dice"], tmp_path)
    run = only_run_dir(tmp_path / "outputs" / "runs")
    assert run.name.endswith("_focal_dice_unet")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert (metrics["loss"], metrics["model"], metrics["dataset"], metrics["seed"]) == (
        "focal_dice",
        "unet",
        "shapes",
        0,
    )
    assert metrics["epochs_completed"] == 3
    assert set(metrics["per_class"]["dice"]) == {"background", "ellipse", "rectangle", "triangle"}
    assert 0.0 <= metrics["best"]["val/dice"] <= 1.0
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for key in (
        "lr",
        "train/loss",
        "val/loss",
        "val/dice",
        "val/iou",
        "val/dice/ellipse",
        "val/iou/triangle",
        "seconds",
    ):
        assert key in rows[0]
    assert float(rows[-1]["train/loss"]) < float(rows[0]["train/loss"])
    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(run / "checkpoints" / name, weights_only=True)
        assert {"model", "optimizer", "scheduler", "scaler", "epoch", "rng", "config"} <= set(ckpt)
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "train.log").read_text().count("epoch ") >= 3
    assert (run / ".hydra" / "config.yaml").exists()


def test_tensorboard_events_hold_curves_per_class_values_overlays_and_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_train([*TINY, "trainer.max_epochs=1"], tmp_path)
    run = only_run_dir(tmp_path / "outputs")
    acc = EventAccumulator(str(run / "tb"), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = acc.Tags()
    for tag in ("train/loss", "val/loss", "val/dice", "val/iou", "lr", "val/dice/ellipse", "val/iou/ellipse"):
        assert tag in tags["scalars"], tag
    assert "val/predictions" in tags["images"]
    plugins = acc.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in plugins


def test_multirun_names_job_directories_after_their_overrides(tmp_path):
    run_train(["-m", *TINY, "trainer.max_epochs=1", "loss=ce,dice"], tmp_path)
    jobs = sorted(p.parent for p in (tmp_path / "outputs" / "multiruns").rglob("metrics.json"))
    names = sorted(j.name for j in jobs)
    assert len(names) == 2
    assert sum("loss=ce," in n for n in names) == 1 and sum("loss=dice," in n for n in names) == 1
    assert all("dataset.image_size=32" in n and "trainer.max_epochs=1" in n for n in names)
    for job in jobs:
        assert json.loads((job / "metrics.json").read_text())["status"] == "completed"
        assert (job / "checkpoints" / "best.pt").exists() and (job / "history.csv").exists()
        assert yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["loss=nosuch"], "Could not find 'loss/nosuch'"),
        (["trainer.nosuch=1"], "Key 'nosuch' not in 'TrainerConfig'"),
        (["model.classes=3"], "model.classes=3 but dataset 'shapes' has num_classes=4"),
        (["loss.mode=binary"], "loss.mode=binary but dataset.mode=multiclass"),
        (["trainer.precision=64"], "trainer.precision must be auto, 32, 16-mixed or bf16-mixed"),
        (["+loss.gama=2"], "unknown keyword"),
    ],
)
def test_bad_config_gives_one_clear_error(tmp_path, args, message):
    proc = run_train([*TINY, *args], tmp_path, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout, proc.stderr[-3000:]


def test_failed_run_records_its_error_in_metrics_json(tmp_path):
    proc = run_train([*TINY, "model.classes=3"], tmp_path, check=False)
    assert proc.returncode != 0
    metrics = json.loads(next((tmp_path / "outputs").rglob("metrics.json")).read_text())
    assert metrics["status"] == "failed" and "model.classes=3" in metrics["error"]
