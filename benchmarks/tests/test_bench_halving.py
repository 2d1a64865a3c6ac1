"""benchmarks/bench_halving.py on the fake app of tests/halving_app: the full grid in stages, the halving sweep on
the same grid, and the replay of the cut rules, which must reproduce the halving sweep."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "tests" / "halving_app" / "fake_app.py"


def test_bench_halving_trains_the_full_grid_in_stages_and_its_replay_reproduces_the_halving_sweep(tmp_path):
    out = tmp_path / "bench"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_halving.py"), "--out", str(out), "--app", str(APP),
           "--stages", "1,3", "--halving", "hydra.sweeper.b0=1", "--", "loss=a,b,c,d", "seed=0,1",
           "n_test_cases=20"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads((out / "bench_halving.json").read_text())
    assert result["full"]["stages"] == [1, 3] and result["halving"]["schedule"] == [1, 3, 9]
    assert result["replay_matches_halving"] is True
    assert "training_minutes" in result["full"] and "training_minutes" in result["halving"]
    name = "segtrain (the sweeper's rule: min_gap 0.02)"
    assert set(result["replay"]) >= {name, "min_gap 0 (significance alone)", "budget alone (plain successive halving)"}
    rule = result["replay"][name]
    assert rule["epochs"] == result["halving"]["epochs"] and rule["tie_set"] == result["halving"]["tie_set"]
    for epochs in (1, 3):  # each stage's records were kept; the full grid's jobs went on to the end
        kept = json.loads((out / "full_stages" / str(epochs) / "loss=a,seed=0" / "metrics.json").read_text())
        assert kept["status"] == "paused" and kept["epochs_completed"] == epochs
    assert json.loads((out / "full" / "loss=a,seed=0" / "metrics.json").read_text())["status"] == "completed"
    assert f"| {name} |" in proc.stdout
    # the reports score on test: the bench compares on val too, and scores each choice on test
    assert result["full"]["split"] == "test" and result["on_val"]["halving_tie_set"] == result["halving"]["tie_set"]
    held_out = result["held_out_scores"]
    assert held_out["split"] == "test" and held_out["full_val_pick"]["config"] == result["on_val"]["full_winner"]
    assert held_out["best"]["config"] == result["full"]["winner"]
    assert held_out["best"]["mean"] >= max(held_out["full_val_pick"]["mean"], held_out["halving_pick"]["mean"])
    held = result["cost_to_keep"]
    assert set(held) == {"on test", "on val"} and held["on val"]["config"] == result["on_val"]["full_winner"]
    assert held["on test"]["epochs_trained"] <= result["full"]["epochs"]
    assert "holding the full grid's winner on test" in proc.stdout
