"""The end-of-job evaluation: per_case.csv and metrics.json's selected/val/test, for the selected checkpoint."""

import csv
import json
import math

import pytest
import torch
from _data_fixtures import folder_kwargs, make_folder
from conftest import TINY, run_train
from torch import nn

from segtrain.build import build_eval_loader, build_split, resolve_test_split
from segtrain.config_checks import check_config, check_metrics_config
from segtrain.data import build_dataset, build_loader
from segtrain.engine import Trainer, TrainerConfig
from segtrain.inference import evaluate_cases, model_from_checkpoint
from segtrain.losses import build_loss
from segtrain.metrics import SegMetrics
from segtrain.metrics.empty_rules import EMPTY_RULES
from segtrain.metrics.per_case import COLUMNS
from segtrain.optim import build_scheduler
from segtrain.run_config import config_differences, resume_ignored_keys
from segtrain.schemas import JobConfig

# the groups check_config compares, as a composed config holds them
CONFIG = {
    "dataset": {"name": "shapes", "mode": "multiclass", "num_classes": 4, "in_channels": 3},
    "model": {"classes": 4, "in_channels": 3},
    "logger": {"tensorboard": False},
}

NAMES = ["background", "ellipse", "rectangle", "triangle"]
# monitor the val loss at its *highest*: best.pt is then an early epoch (the loss falls), not the last one
BEST_ARGS = [*TINY, "dataset.length.test=8", "trainer.max_epochs=3", "job.select=best",
             "trainer.monitor=val/loss", "trainer.monitor_mode=max", "logger=none"]  # fmt: skip


def read_rows(path):
    with path.open() as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def same_rows(written: list[dict], computed: list[dict]) -> None:
    assert len(written) == len(computed)
    for w, c in zip(written, computed, strict=True):
        for key in COLUMNS:
            if c[key] is None:
                assert w[key] == "", key
            elif isinstance(c[key], float):
                assert float(w[key]) == pytest.approx(c[key], rel=1e-12, abs=1e-12), (key, w, c)
            else:
                assert w[key] == str(c[key]), key


@pytest.fixture(scope="module")
def best_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("best")
    run = tmp / "run"
    run_train([*BEST_ARGS, f"hydra.run.dir={run}"], tmp)
    return run


def test_job_writes_per_case_rows_for_val_and_test_and_the_aggregates(best_run):
    columns, rows = read_rows(best_run / "per_case.csv")
    assert tuple(columns) == COLUMNS
    for split, n_cases in (("val", 16), ("test", 8)):
        split_rows = [r for r in rows if r["split"] == split]
        assert len(split_rows) == n_cases * len(NAMES)  # cases x classes
        cases = list(dict.fromkeys(r["case"] for r in split_rows))
        assert cases == [f"shapes-{split}-{i:06d}" for i in range(n_cases)]  # the data set items' ids
        assert all(r["cldice"] == "" for r in split_rows)  # multiclass: clDice undefined
    metrics = json.loads((best_run / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["empty_rules"] == EMPTY_RULES and metrics["nsd_tolerance"] == 2
    assert metrics["val"]["num_cases"] == 16 and metrics["test"]["num_cases"] == 8
    assert metrics["test"]["split"] == "test"
    assert set(metrics["val"]["per_class"]) == set(NAMES)
    val_dice = [float(r["dice"]) for r in rows if r["split"] == "val" and r["class"] == "ellipse"]
    assert metrics["val"]["per_class"]["ellipse"]["dice"]["mean"] == pytest.approx(sum(val_dice) / len(val_dice))
    assert {"best", "final", "per_class", "timing"} <= set(metrics)  # the per-epoch records stay
    assert "final_eval_s" in metrics["timing"]


def test_select_best_evaluates_the_weights_of_best_pt(best_run):
    metrics = json.loads((best_run / "metrics.json").read_text())
    assert metrics["selected"] == {"checkpoint": "best", "epoch": metrics["best"]["epoch"]}
    assert metrics["best"]["epoch"] < metrics["epochs_completed"] == 3  # best.pt is not the last epoch here
    _, rows = read_rows(best_run / "per_case.csv")
    for name in ("best.pt", "last.pt"):
        model, config = model_from_checkpoint(best_run / "checkpoints" / name)
        data = build_split(config["dataset"], "val")
        computed = evaluate_cases(
            model, build_eval_loader(config["dataset"], data), mode="multiclass", num_classes=4, class_names=NAMES,
            nsd_tolerance=2.0, split="val",
        )  # fmt: skip
        written = [r for r in rows if r["split"] == "val"]
        if name == "best.pt":
            same_rows(written, computed)
        else:  # the last epoch's weights give other rows
            assert [float(r["dice"]) for r in written] != pytest.approx([c["dice"] for c in computed])


def test_evaluate_script_writes_the_same_per_case_csv(best_run, tmp_path):
    from segtrain.tools import evaluate as evaluate_script

    out = tmp_path / "eval"
    assert evaluate_script.main([f"checkpoint={best_run}", "split=test", f"output={out}"]) == 0  # best.pt
    columns, rows = read_rows(out / "per_case.csv")
    _, job_rows = read_rows(best_run / "per_case.csv")
    assert tuple(columns) == COLUMNS
    assert rows == [r for r in job_rows if r["split"] == "test"]
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["test"]["num_cases"] == 8 and summary["nsd_tolerance"] == 2
    assert summary["empty_rules"] == EMPTY_RULES


def test_a_job_killed_before_its_final_evaluation_redoes_it_on_rerun(tmp_path):
    run = tmp_path / "run"
    args = [*TINY, "dataset.length.test=8", "logger=none", f"hydra.run.dir={run}"]
    run_train(args, tmp_path)
    done = json.loads((run / "metrics.json").read_text())
    assert done["status"] == "completed" and done["selected"] == {"checkpoint": "last", "epoch": 2}
    expected = (run / "per_case.csv").read_text()
    # what the trainer leaves when killed after its last epoch, during the final evaluation
    (run / "per_case.csv").unlink()
    (run / "metrics.json").write_text(json.dumps({**done, "status": "evaluating"}))
    history = (run / "history.csv").read_text()
    run_train(args, tmp_path)
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    assert (run / "per_case.csv").read_text() == expected
    assert (run / "history.csv").read_text() == history  # no epoch trained again
    log = (run / "train.log").read_text()
    assert "resumed from" in log and log.count("wrote") >= 2
    # a completed job re-run is skipped, as before
    proc = run_train(args, tmp_path)
    assert "already completed; skipping it" in proc.stdout + proc.stderr


def test_fit_leaves_the_status_to_its_caller_until_the_final_evaluation(tmp_path):
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 1)
    train = build_dataset("shapes", split="train", class_names=NAMES, length=8, image_size=32)
    val = build_dataset("shapes", split="val", class_names=NAMES, length=4, image_size=32)
    trainer = Trainer(
        TrainerConfig(device="cpu", progress_bar=False, num_vis=0, max_epochs=1), model,
        build_loss("ce", mode="multiclass", ignore_index=None), torch.optim.SGD(model.parameters(), lr=0.1),
        lambda opt, total: build_scheduler("constant", opt, total), build_loader(train, 4, shuffle=True),
        build_loader(val, 4), SegMetrics(4, class_names=NAMES), tmp_path,
    )  # fmt: skip
    assert trainer.fit()["status"] == "trained"  # not "completed": the evaluation is the job layer's
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "trained"
    assert trainer.load_weights(tmp_path / "checkpoints" / "best.pt") == 1


def test_binary_mode_has_one_foreground_row_per_case_with_cldice():
    torch.manual_seed(0)
    data = build_dataset("shapes", split="val", mode="binary", num_classes=1, class_names=["shape"], length=6,
                         image_size=32, texture_cue=0.15)  # fmt: skip
    model = nn.Conv2d(3, 1, 3, padding=1)
    rows = evaluate_cases(
        model, build_loader(data, 4), mode="binary", num_classes=1, class_names=["shape"], nsd_tolerance=2.0,
        split="val",
    )  # fmt: skip
    assert [r["case"] for r in rows] == [f"shapes-val-{i:06d}" for i in range(6)]
    assert {r["class"] for r in rows} == {"shape"}
    with torch.no_grad():
        for row, i in zip(rows, range(6), strict=True):
            item = data[i]
            pred = model(item["image"][None])[0, 0] > 0
            ref = item["mask"].reshape(pred.shape) == 1
            tp = int((pred & ref).sum())
            assert (row["tp"], row["pred_pixels"], row["ref_pixels"]) == (tp, int(pred.sum()), int(ref.sum()))
            assert row["cldice"] is not None and not math.isnan(row["cldice"])


def test_test_split_auto_finds_it_where_it_exists_and_a_named_missing_one_is_an_error(tmp_path):
    shapes = {"name": "shapes", "length": {"train": 4, "val": 4, "test": 4}}
    assert resolve_test_split(shapes)[0] == "test"
    assert resolve_test_split({**shapes, "length": {"train": 4, "val": 4}})[0] is None
    assert resolve_test_split({**shapes, "test_split": None})[0] is None
    root = make_folder(tmp_path / "data")  # train and val only
    folder = {"name": "folder", **folder_kwargs(root)}
    split, why = resolve_test_split(folder)
    assert split is None and "no 'test' split" in why
    assert resolve_test_split({**folder, "test_split": "test"})[0] == "test"
    with pytest.raises(FileNotFoundError, match=str(root / "images" / "test")):
        build_split({**folder, "test_split": "test"}, "test")
    make_folder(tmp_path / "data", splits=("test",))
    assert resolve_test_split(folder)[0] == "test"


def test_a_missing_named_test_split_stops_the_job_before_training(tmp_path):
    proc = run_train([*TINY, "dataset.test_split=holdout", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, check=False)
    assert proc.returncode != 0 and "holdout" in proc.stderr
    assert not (tmp_path / "run" / "history.csv").exists()


def test_metrics_section_and_evaluation_keys():
    assert check_metrics_config({"nsd_tolerance": 1}) == 1.0
    with pytest.raises(TypeError, match="metrics.nsd_tolerance='2' is a str"):
        check_metrics_config({"nsd_tolerance": "2"})
    with pytest.raises(ValueError, match="finite number >= 0"):
        check_metrics_config({"nsd_tolerance": -1})
    with pytest.raises(ValueError, match="unknown key.*metrics.tolerance"):
        check_metrics_config({"tolerance": 1})
    with pytest.raises(ValueError, match="job.select must be 'last' or 'best'"):
        JobConfig(select="first")
    with pytest.raises(ValueError, match="job.select=best .* trainer.checkpoint=true"):
        check_config({**CONFIG, "job": {"select": "best"}, "trainer": {"checkpoint": False}})
    # resuming may change what is evaluated at the end; a completed job's re-run compares them
    a = {"metrics": {"nsd_tolerance": 2}, "job": {"select": "last"}, "dataset": {"test_split": "auto"}}
    b = {"metrics": {"nsd_tolerance": 1}, "job": {"select": "best"}, "dataset": {"test_split": None}}
    assert config_differences(a, b, ignore=resume_ignored_keys()) == []
    assert len(config_differences(a, b)) == 3
    # a run recorded before select moved from trainer to job is the same configuration
    old = {"metrics": {"nsd_tolerance": 2}, "trainer": {"select": "last"}, "dataset": {"test_split": "auto"}}
    assert config_differences(old, a) == []
    assert config_differences(old, b, ignore=resume_ignored_keys()) == []
