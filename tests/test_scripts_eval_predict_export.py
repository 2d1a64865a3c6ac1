"""scripts/evaluate.py, predict.py and export.py: once each in a subprocess, and their errors in-process."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image
from test_inference import shapes_config, write_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """The tool behind ``segtrain-<name>`` and ``python scripts/<name>.py`` (segtrain/tools/<name>.py)."""
    return importlib.import_module(f"segtrain.tools.{name}")


evaluate = load_script("evaluate")
predict = load_script("predict")


def start_script(name: str, args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    cmd = [sys.executable, str(ROOT / "scripts" / name), *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"{proc.args[1:]} failed:\n{out[-2000:]}\n{err[-3000:]}"
    return out


@pytest.fixture
def run_dir(tmp_path) -> Path:
    run = tmp_path / "run"
    write_checkpoint(run / "checkpoints" / "best.pt", shapes_config(length={"train": 4, "val": 4, "test": 4}))
    return run


def test_evaluate_predict_and_export_scripts_end_to_end(run_dir, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 70, 3), dtype=np.uint8)).save(images / "big.png")
    # the three at once: most of each one's time is importing torch and smp
    procs = {
        "evaluate": start_script("evaluate.py", [f"checkpoint={run_dir}", "split=val", "tta=true"], tmp_path),
        "predict": start_script(
            "predict.py", [f"checkpoint={run_dir}", f"input={images}", f"output={tmp_path / 'pred'}"], tmp_path
        ),
        "export": start_script("export.py", [f"checkpoint={run_dir}", "format=onnx"], tmp_path),
    }
    stdout = {name: finish(proc) for name, proc in procs.items()}

    metrics = json.loads((run_dir / "eval_val" / "metrics.json").read_text())
    assert (metrics["dataset"], metrics["split"], metrics["num_images"], metrics["tta"]) == ("shapes", "val", 4, True)
    assert set(metrics["per_class"]["dice"]) == {"background", "ellipse", "rectangle", "triangle"}
    assert {"mean", "median", "p10", "p90", "histogram"} <= set(metrics["per_image_dice"])
    rows = list(csv.DictReader((run_dir / "eval_val" / "per_image.csv").open()))
    assert [r["id"] for r in rows] == [f"shapes-val-{i:06d}" for i in range(4)]
    assert "background" in stdout["evaluate"]

    assert "window 32" in stdout["predict"]  # the training size: larger images go through sliding windows
    assert np.asarray(Image.open(tmp_path / "pred" / "big.png")).shape == (100, 70)
    assert Image.open(tmp_path / "pred" / "big_overlay.png").size == (70, 100)

    info = json.loads((run_dir / "export" / "model.onnx.json").read_text())
    assert info["max_abs_diff_vs_pytorch"] < 1e-4 and info["normalize"]["mean"] == [0.5, 0.5, 0.5]
    assert "max |logits - PyTorch logits|" in stdout["export"]


def test_script_errors_are_one_line_that_names_the_missing_checkpoint(tmp_path, capsys):
    assert evaluate.cli([f"checkpoint={tmp_path / 'nope.pt'}"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"evaluate.py: error: FileNotFoundError: checkpoint={tmp_path / 'nope.pt'} does not exist; "
        "give a .pt file or a run directory"
    ]
    assert predict.cli(["input=x.png", "output=o"]) == 1
    assert "Missing mandatory value: checkpoint" in capsys.readouterr().err


def test_evaluate_overrides_a_key_of_the_checkpoints_dataset_or_picks_a_dataset_file(run_dir, tmp_path):
    assert evaluate.main([f"checkpoint={run_dir}", "dataset.length.val=2", f"output={tmp_path / 'a'}"]) == 0
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["num_images"] == 2
    args = [f"checkpoint={run_dir}", "dataset=shapes", "dataset.length.test=3", "dataset.image_size=32", "split=test"]
    assert evaluate.main(args) == 0
    assert json.loads((run_dir / "eval_shapes_test" / "metrics.json").read_text())["num_images"] == 3


def test_evaluate_refuses_a_dataset_with_other_classes(run_dir):
    with pytest.raises(ValueError, match="model.classes=4 but dataset 'shapes' has num_classes=1"):
        evaluate.main([f"checkpoint={run_dir}", "dataset=shapes_binary"])


def test_predict_refuses_an_input_folder_without_images(run_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no images"):
        predict.main([f"checkpoint={run_dir}", f"input={tmp_path / 'empty'}", f"output={tmp_path / 'o'}"])
