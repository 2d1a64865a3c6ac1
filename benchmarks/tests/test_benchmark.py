"""benchmarks/benchmark.py in --quick mode: it runs end to end and writes the keys commits are compared by.

No timing assertions: the numbers depend on the machine and its load (docs/performance.md has them).
"""

import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(ROOT / "benchmarks"))
import _bench_trainer as bench  # noqa: E402  (tooling beside benchmarks/benchmark.py, not in the library)


def test_quick_benchmark_writes_the_comparable_keys(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "benchmark.py"),
            "--device",
            "cpu",
            "--quick",
            "--no-startup",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "benchmark.json").read_text())
    for key in (
        "trainer_step_ratio",
        "epoch_ratio",
        "metric_fraction",
        "data_wait_fraction",
        "startup_s",
        "import_torch_s",
        "device",
    ):
        assert key in result, key
    assert result["device"] == "cpu" and "images_per_s" not in result
    assert result["trainer_step_ratio"] > 0 and result["epoch_ratio"] > 0 and result["metric_fraction"] > 0
    assert 0 <= result["data_wait_fraction"]["shapes"] < 1
    assert result["host_syncs"] == {"note": "n/a (CPU)"}
    assert "| trainer step / bare step" in (tmp_path / "benchmark.md").read_text()


def test_trials_restore_weights_so_both_arms_start_from_the_same_state():
    job = bench.build_job("cpu", image_size=32, batch_size=2, tiny=True)
    before = {k: v.clone() for k, v in job.model.state_dict().items()}
    bench.bare_train_steps(job, 1)
    assert any(not torch.equal(before[k], v) for k, v in job.model.state_dict().items())
    job.restore()
    assert all(torch.equal(before[k], v) for k, v in job.model.state_dict().items())
    assert job.optimizer.state_dict()["state"] == {}


def test_config_names_key_images_per_s():
    assert bench.config_name("32", False, False) == "fp32"
    assert bench.config_name("bf16-mixed", True, True) == "bf16-mixed+channels_last+compile"
