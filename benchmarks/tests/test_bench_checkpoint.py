"""benchmarks/bench_checkpoint.py --quick on a small folder data set written here: checkpoint_cost.json holds
the per-checkpoint cost and its share at the default interval. No timing assertions (docs/faults.md has them)."""

import json
import subprocess
import sys
from pathlib import Path

from tests._data_fixtures import make_folder

ROOT = Path(__file__).resolve().parents[2]


def test_quick_checkpoint_benchmark_writes_the_cost(tmp_path):
    data = make_folder(tmp_path / "data", splits=("train", "val"), n=8, size=(40, 48))
    out = tmp_path / "out"
    args = ["--quick", "--threads", "1", "--dataset", "folder", "--out", str(out), "-o", f"dataset.root={data}"]
    args += ["dataset.num_classes=3", "dataset.loader.batch_size=2", "dataset.loader.num_workers=0"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_checkpoint.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "checkpoint_cost.json").read_text())
    assert result["steps_per_epoch"] == 4 and result["checkpoints_per_epoch"] == 1
    assert result["checkpoint_mb"] > 0 and len(result["epoch_s_with"]) == len(result["epoch_s_without"]) == 2
    assert result["default_every_minutes"] == 30.0 and 0 <= result["cost_at_default"] < 1
