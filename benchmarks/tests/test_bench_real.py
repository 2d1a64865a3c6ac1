"""benchmarks/bench_real.py --quick on a small folder data set written here: both arms run in their own
processes, and benchmark.json holds the per-epoch ratio split into train and validation, the data wait and
the loader cost. No timing assertions (docs/performance.md has the figures)."""

import json
import subprocess
import sys
from pathlib import Path

from tests._data_fixtures import make_folder

ROOT = Path(__file__).resolve().parents[2]


def test_quick_real_benchmark_writes_the_ratios(tmp_path):
    data = make_folder(tmp_path / "data", splits=("train", "val"), n=5, size=(40, 48))
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_real.py"),
            "--quick",
            "--threads",
            "1",
            "--dataset",
            "folder",
            "--out",
            str(out),
            "-o",
            f"dataset.root={data}",
            "dataset.num_classes=3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "benchmark.json").read_text())
    r = result["datasets"]["folder"]
    for key in ("epoch_ratio", "train_ratio", "val_ratio", "segtrain_epoch_s", "bare_epoch_s", "cpu_ratio"):
        assert r[key] > 0, key
    assert 0 <= r["data_wait"] < 1 and r["loader_cost"] > -1 and r["step_vs_bare"] > -1
    assert r["rounds"][1]["segtrain"]["idle_train_s"] > 0
    assert [row["round"] for row in r["rounds"]] == [0, 1]  # the warm-up round, then one timed round
    seg, bare = r["rounds"][1]["segtrain"], r["rounds"][1]["bare"]
    assert seg["data_wait_s"] <= seg["train_s"] and bare["prep_s"] <= bare["train_s"]
    assert r["cache"][0].startswith("train: 5 images decoded into RAM")  # folder.yaml's dataset.cache=auto
    assert result["threads"] == 1 and result["quick"] is True
    assert "| folder (" in (out / "benchmark.md").read_text()
