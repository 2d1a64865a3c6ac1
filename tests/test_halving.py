"""Successive halving (hydra/sweeper=halving): the rung schedule, the cut rule, and whole sweeps of the fake
app in tests/halving_app (scores made up from the overrides; no training) through Hydra: rungs, resume from
the last rung, folds pooled, a failing configuration, crash and re-run, joblib, the report section, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from segtrain.halving import HalvingSettings, decide, keep_count, rung_epochs
from segtrain.halving.cut import budget_keep, cheapest_share
from segtrain.halving.replay import cost_to_keep, replay
from segtrain.report import summarize

APP = ROOT / "tests" / "halving_app" / "fake_app.py"


def run_app(sweep: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0", **(env or {})}
    cmd = [sys.executable, str(APP), "-m", "hydra/sweeper=halving", f"hydra.sweep.dir={sweep}", *args]
    proc = subprocess.run(cmd, cwd=sweep.parent, env=environ, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"fake app failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def trained(sweep: Path) -> list[tuple[str, int, int]]:
    lines = (sweep / "trained.log").read_text().split("\n")
    return [(a, int(b), int(c)) for a, b, c in (line.split() for line in lines if line)]


# ---------------------------------------------------------------------------------------------- schedule
def test_rung_epochs_grow_by_eta_and_end_at_max_epochs():
    assert rung_epochs(1, 3, 9) == [1, 3, 9]
    assert rung_epochs(3, 3, 27) == [3, 9, 27]
    assert rung_epochs(3, 3, 30) == [3, 9, 27, 30]
    assert rung_epochs(2, 2, 10) == [2, 4, 8, 10]
    assert rung_epochs(1, 1.5, 4) == [1, 2, 3, 4]  # at least one epoch more per rung


@pytest.mark.parametrize(
    ("b0", "eta", "max_epochs", "message"),
    [
        (1, 1, 9, r"eta must be a number > 1"),
        (1, 0.5, 9, r"eta must be a number > 1"),
        (9, 3, 9, r"b0=9: the first rung's epochs must be an integer in 1..8"),
        (0, 3, 9, r"b0=0"),
        (1, 3, 1, r"max_epochs >= 2"),
    ],
)
def test_bad_schedule_is_a_clear_error(b0, eta, max_epochs, message):
    with pytest.raises(ValueError, match=message):
        rung_epochs(b0, eta, max_epochs)


# ---------------------------------------------------------------------------------------------- cut rule
def records(means: dict[str, float], seeds=(0, 1), n_cases=30, noise=0.01):
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, 0.1, n_cases)
    return [
        (c, s, f"case{i}", float(m + difficulty[i] + rng.normal(0, noise)))
        for c, m in means.items() for s in seeds for i in range(n_cases)
    ]  # fmt: skip


def test_decide_stops_the_significantly_worse_and_keeps_at_most_the_top_one_over_eta():
    means = {"a": 0.80, "b": 0.7995, "c": 0.60, "d": 0.50, "e": 0.799, "f": 0.40}
    d = decide(records(means), list(means), rung=0, epochs=1, keep=keep_count(6, 3), alpha=0.05, min_cases=10)
    worse = {e.config for e in d.eliminated if e.reason == "worse"}
    assert {"c", "d", "f"} <= worse and d.leader == "a"
    assert len(d.survivors) == keep_count(6, 3) == 2 and d.survivors[0] == "a"
    budget = [e for e in d.eliminated if e.reason == "budget"]
    assert all(e.p_holm > 0.05 and e.score is not None for e in budget)
    assert all(e.p_holm <= 0.05 and e.rung == 0 and e.epochs == 1 for e in d.eliminated if e.reason == "worse")
    assert sorted(d.survivors + [e.config for e in d.eliminated]) == sorted(means)


def test_decide_never_cuts_on_one_seed_or_too_few_cases_and_not_on_the_last_rung():
    means = {"a": 0.8, "b": 0.5, "c": 0.4}
    one_seed = decide(records(means, seeds=(0,)), list(means), rung=0, epochs=1, keep=1, alpha=0.05, min_cases=10)
    assert one_seed.survivors == ["a", "b", "c"] and "single seed" in one_seed.note and not one_seed.eliminated
    few = decide(records(means, n_cases=8), list(means), rung=0, epochs=1, keep=1, alpha=0.05, min_cases=10)
    assert len(few.survivors) == 3 and "8 paired cases < min_cases=10" in few.note
    last = decide(records(means), list(means), rung=2, epochs=9, keep=1, alpha=0.05, min_cases=10, cut=False)
    assert last.survivors == ["a", "b", "c"] and last.tie_set == ["a"]


def test_decide_stops_a_failed_configuration_and_raises_when_all_failed():
    means = {"a": 0.8, "b": 0.79}
    d = decide(records(means), ["a", "b", "x"], rung=0, epochs=1, keep=2, alpha=0.05, min_cases=10,
               failed={"x": "RuntimeError: boom"})  # fmt: skip
    assert [(e.config, e.reason, e.detail) for e in d.eliminated if e.reason == "failed"] == [
        ("x", "failed", "RuntimeError: boom")
    ]
    with pytest.raises(ValueError, match="every configuration failed at rung 1"):
        decide([], ["a", "b"], rung=1, epochs=3, keep=1, alpha=0.05, min_cases=10, failed={"a": "x", "b": "y"})


def test_the_budget_is_the_grids_fixed_in_advance_not_a_share_of_the_survivors():
    assert [keep_count(13, 3, r) for r in range(3)] == [4, 1, 1]
    assert [keep_count(27, 3, r) for r in range(3)] == [9, 3, 1]
    # rung 1 of a 27-configuration grid: 4 survived rung 0's significance cuts, all 4 tied; 3 go on, not 4 // 3
    means = {"a": 0.8, "b": 0.8, "c": 0.8, "d": 0.8}
    d = decide(records(means, noise=0.0), list(means), rung=1, epochs=3, keep=keep_count(27, 3, 1), alpha=0.05,
               min_cases=10)  # fmt: skip
    assert len(d.survivors) == 3 and [e.reason for e in d.eliminated] == ["budget"]
    assert d.eliminated[0].detail == "3 go on after rung 1"


def test_decide_on_the_budget_alone_keeps_a_significantly_worse_configuration_within_it():
    means = {"a": 0.8, "b": 0.5, "c": 0.4}
    tested = decide(records(means), list(means), rung=0, epochs=1, keep=2, alpha=0.05, min_cases=10)
    budget = decide(records(means), list(means), rung=0, epochs=1, keep=2, alpha=0.05, min_cases=10, cut_worse=False)
    assert tested.survivors == ["a"] and budget.survivors == ["a", "b"]
    assert [(e.config, e.reason) for e in budget.eliminated] == [("c", "budget")]


def test_a_significance_cut_needs_the_leader_ahead_by_more_than_min_gap():
    means = {"a": 0.80, "b": 0.79, "c": 0.60}
    plain = decide(records(means), list(means), rung=0, epochs=1, keep=3, alpha=0.05, min_cases=10)
    gap = decide(records(means), list(means), rung=0, epochs=1, keep=3, alpha=0.05, min_cases=10, min_gap=0.05)
    assert plain.survivors == ["a"] and gap.survivors == ["a", "b"]
    (cut,) = gap.eliminated
    assert cut.config == "c" and cut.reason == "worse" and "behind > min_gap 0.05" in cut.detail
    with pytest.raises(ValueError, match="min_gap must be a number >= 0"):
        HalvingSettings(min_gap=-0.1).check()


def test_budget_cuts_the_test_did_not_separate_from_the_leader_are_listed_and_reported():
    from segtrain.report.halving import render_halving

    means = {"a": 0.80, "b": 0.799, "c": 0.798, "d": 0.50}  # a, b, c near-tied; d far behind
    d = decide(records(means), list(means), rung=0, epochs=2, keep=1, alpha=0.05, min_cases=10, min_gap=0.02)
    assert d.survivors == ["a"] and sorted(d.unseparated) == ["b", "c"]  # d was cut as worse: separated
    assert {e.config: e.reason for e in d.eliminated} == {"b": "budget", "c": "budget", "d": "worse"}
    plain = decide(records(means), list(means), rung=0, epochs=2, keep=1, alpha=0.05, min_cases=10, min_gap=0.02,
                   cut_worse=False)  # fmt: skip
    assert sorted(plain.unseparated) == ["b", "c"]  # d: a budget cut, but significantly worse by more than min_gap
    clear = decide(records({"a": 0.8, "d": 0.5}), ["a", "d"], rung=0, epochs=2, keep=1, alpha=0.05, min_cases=10)
    assert clear.unseparated == []
    data = {"settings": {"metric": "dice", "min_gap": 0.02, "eta": 3, "b0": 2}, "schedule": [2, 6],
            "rungs": [d.to_dict()]}  # fmt: skip
    text = "\n".join(render_halving(data))
    assert "Cuts the data did not decide (rung 0, 2 epochs)" in text and "`b` (0.7" in text
    assert "by more than 0.02" in text
    assert "called worse by the verdict: seeds and cases as sources of variance" in text and d.test == "seeds+cases"
    del data["rungs"][0]["unseparated"]  # halving.json of an older version
    del data["rungs"][0]["test"]  # cut with the case-level test of earlier releases, and says so
    old = "\n".join(render_halving(data))
    assert "did not decide" not in old and "one-sided paired Wilcoxon over the seed-averaged cases" in old


def test_replay_gives_the_rungs_survivors_winner_and_cost_from_the_records_at_each_rung():
    # 4 configurations x 2 jobs; "c" leads after 1 epoch, "a" overtakes it by 3
    at = {
        1: records({"a": 0.60, "b": 0.40, "c": 0.65, "d": 0.30}),
        3: records({"a": 0.75, "b": 0.50, "c": 0.70, "d": 0.40}),
        9: records({"a": 0.80, "b": 0.60, "c": 0.72, "d": 0.50}),
    }
    jobs = {"a": 2, "b": 2, "c": 2, "d": 2}
    out = replay(at, [1, 3, 9], jobs, eta=2, alpha=0.05, min_cases=10)  # a is significantly worse at rung 0
    assert out["survivors_per_rung"] == [1, 1, 1] and out["winner"] == "c" and out["tie_set"] == ["c"]
    assert out["epochs_trained"] == 8 * 1 + 2 * 2 + 2 * 6 and out["full_grid_epochs"] == 8 * 9
    budget_first = replay(at, [1, 3, 9], jobs, eta=2, alpha=0.05, min_cases=10, test_from_rung=1)
    assert budget_first["rungs"][0]["survivors"] == ["c", "a"] and budget_first["winner"] == "a"
    assert budget_first["epochs_trained"] == 8 * 1 + 4 * 2 + 2 * 6
    one = replay(at, [1, 3, 9], jobs, eta=2, alpha=0.05, min_cases=10, test_from_rung=1, keep=lambda r, n: 1)
    assert one["winner"] == "c"
    with pytest.raises(ValueError, match=r"no records at \[9\] epochs"):
        replay({1: at[1], 3: at[3]}, [1, 3, 9], jobs, eta=2, alpha=0.05, min_cases=10)
    # holding "b" (3rd after 1 and after 3 epochs) takes the top 3 twice; "a" (2nd, then 1st) the top 2, then 1
    held = cost_to_keep(at, [1, 3, 9], jobs, "b")
    assert held["survivors_per_rung"] == [3, 3, 3] and held["epochs_trained"] == 8 * 1 + 6 * 2 + 6 * 6
    a = cost_to_keep(at, [1, 3, 9], jobs, "a")
    assert a["survivors_per_rung"] == [2, 1, 1] and a["epochs_trained"] == 8 * 1 + 4 * 2 + 2 * 6
    with pytest.raises(ValueError, match="'x' is not among the grid's configurations"):
        cost_to_keep(at, [1, 3, 9], jobs, "x")


def test_the_max_share_budget_keeps_as_many_as_the_grids_epoch_share_allows():
    # 8 configurations x 10 jobs, rungs 2, 6, 18: the full grid is 1440 epochs; rung 0 spends 160
    assert cheapest_share([2, 6, 18], 8) == pytest.approx((8 * 2 + 16) / (8 * 18))
    assert budget_keep([2, 6, 18], 0, 10, 160, 0.35, 8) == 5  # 160 + 5 * 40 + 120 <= 504 < 160 + 6 * 40 + 120
    assert budget_keep([2, 6, 18], 0, 10, 160, 0.30, 8) == 3
    assert budget_keep([2, 6, 18], 1, 10, 160 + 5 * 40, 0.35, 8) == 1  # the last rung: 12 epochs x 10 jobs each
    assert budget_keep([2, 6, 18], 0, 10, 160, 0.01, 8) == 1  # never fewer than one
    for bad in (0, 1.5, True, "0.3"):
        with pytest.raises(ValueError, match="max_share must be null or a share in"):
            HalvingSettings(b0=1, max_epochs=9, max_share=bad).check()


def test_replay_with_max_share_spends_the_budget_on_what_the_test_does_not_separate():
    at = {e: records({"a": 0.60 + 0.01 * e, "b": 0.60, "c": 0.599, "d": 0.598, "e": 0.3}) for e in (1, 3, 9)}
    jobs = {c: 2 for c in "abcde"}
    grid = replay(at, [1, 3, 9], jobs, eta=3, alpha=0.05, min_cases=10, min_gap=0.02)
    share = replay(at, [1, 3, 9], jobs, eta=3, alpha=0.05, min_cases=10, min_gap=0.02, max_share=0.6)
    assert grid["survivors_per_rung"][0] == keep_count(5, 3) == 1
    assert share["survivors_per_rung"][0] == 4 and "e" not in share["rungs"][0]["survivors"]  # e: cut as worse
    assert share["epochs_trained"] <= 0.6 * share["full_grid_epochs"] < grid["full_grid_epochs"]


# ---------------------------------------------------------------------------------------------- sweeps
def test_halving_sweep_with_folds_and_a_failing_configuration(tmp_path):
    sweep = tmp_path / "sweep"
    run_app(sweep, "loss=a,b,c,boom", "seed=0,1", "dataset.fold=0,1,2")
    h = json.loads((sweep / "halving.json").read_text())
    assert h["schedule"] == [1, 3, 9] and h["status"] == "completed"
    r0 = h["rungs"][0]
    assert r0["launched"] == 24 and r0["n_cases"] == 24 and r0["n_seeds"] == 2  # 3 folds x 8 cases, pooled
    stopped = {e["config"]: e for r in h["rungs"] for e in r["eliminated"]}
    assert stopped["loss=boom"]["reason"] == "failed" and "always fails" in stopped["loss=boom"]["detail"]
    assert keep_count(4, 3) == 1 and r0["survivors"] == [h["winner"]] == ["loss=b"]
    # the winner's jobs resumed on every rung, never retrained from 0; the stopped ones stayed paused at 1
    runs = trained(sweep)
    for fold in range(3):
        for seed in range(2):
            job = f"dataset.fold={fold},loss=b,seed={seed}"
            assert [(a, b) for j, a, b in runs if j == job] == [(0, 1), (1, 3), (3, 9)]
            state = json.loads((sweep / f"dataset.fold={fold},loss=a,seed={seed}" / "metrics.json").read_text())
            assert state["status"] == "paused" and state["epochs_completed"] == 1
    assert h["epochs_trained"] == sum(b - a for _, a, b in runs) == 18 + 6 * 8
    assert h["full_grid_epochs"] == 24 * 9

    report = summarize(sweep, plots=False)
    md = report.md_path.read_text()
    assert "## Eliminated by successive halving" in md and "| loss=a | 0 | 1 |" in md
    p = stopped["loss=a"]["p_holm"]
    assert stopped["loss=a"]["reason"] == "worse" and p <= 0.05 and (f"{p:.3g}" in md or f"{p:.4f}" in md)
    assert report.verdict.ranking == ("loss=b",) and report.cases.n_folds == 3


def test_crashed_halving_sweep_rerun_skips_the_finished_rung_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["loss=a,b,c,d,e,f", "seed=0,1", "hydra.sweeper.eta=2"]  # rungs 1, 2, 4, 8, 9
    crashed = run_app(sweep, *args, env={"FAKE_APP_DIE_AT": "b,1,2"}, check=False)
    assert crashed.returncode == 3
    before = trained(sweep)
    assert ("loss=b,seed=0", 1, 2) in before and not any(j == "loss=b,seed=1" and b == 2 for j, _, b in before)
    h = json.loads((sweep / "halving.json").read_text())
    assert h["status"] == "running" and len(h["rungs"]) == 1

    run_app(sweep, *args, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    after = trained(sweep)[len(before) :]
    assert ("loss=b,seed=0", 1, 2) not in after  # finished before the crash: not trained again
    h = json.loads((sweep / "halving.json").read_text())
    assert h["status"] == "completed" and h["rungs"][1]["skipped"] >= 1
    assert [r["epochs"] for r in h["rungs"]] == h["schedule"] == [1, 2, 4, 8, 9]
    # a finished sweep re-run trains nothing
    run_app(sweep, *args)
    assert len(trained(sweep)) == len(before) + len(after)


def test_halving_sweep_with_max_share_stays_within_it_and_continues_a_sweep_of_the_version_before(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["loss=a,b,c,d,e,f", "seed=0,1", "hydra.sweeper.max_share=0.5"]
    run_app(sweep, *args)
    h = json.loads((sweep / "halving.json").read_text())
    assert h["settings"]["max_share"] == 0.5 and h["epochs_trained"] <= 0.5 * h["full_grid_epochs"]
    md = summarize(sweep, plots=False).md_path.read_text()
    assert "as far as a budget of 0.5 of the full grid's epochs allowed" in md and "floor(N / eta" not in md
    assert h["rungs"][0]["survivors"] and h["status"] == "completed"
    # a halving.json written before max_share existed continues under the default (null), not refused
    default = tmp_path / "default"
    run_app(default, *args[:2])
    old = json.loads((default / "halving.json").read_text())
    del old["settings"]["max_share"]
    (default / "halving.json").write_text(json.dumps(old))
    n = len(trained(default))
    run_app(default, *args[:2])
    assert len(trained(default)) == n


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["loss=a,b", "seed=0,1", "hydra.sweeper.eta=1"], "eta must be a number > 1"),
        (["loss=a,b", "seed=0,1", "hydra.sweeper.b0=9"], "b0=9: the first rung's epochs must be an integer in 1..8"),
        (["loss=a,b", "seed=0,1", "hydra.sweeper.min_gap=-0.1"], "min_gap must be a number >= 0"),
        (["loss=a,b", "seed=0,1", "hydra.sweeper.max_share=1.5"], "max_share must be null or a share in (0, 1]"),
        (["loss=a,b,c,d", "seed=0,1", "hydra.sweeper.max_share=0.2"], "max_share=0.2 is below the cheapest halving"),
        (["loss=a", "seed=0,1,2"], "needs at least two configurations"),
        (["loss=a,b", "job.stop_at_epoch=3"], "do not set job.stop_at_epoch"),
        (["loss=a,b", "trainer.max_epochs=3,9"], "do not sweep trainer.max_epochs"),
    ],
)
def test_bad_halving_input_is_a_clear_error(tmp_path, args, message):
    proc = run_app(tmp_path / "sweep", *args, check=False)
    assert proc.returncode != 0 and message in proc.stderr + proc.stdout
    assert not (tmp_path / "sweep" / "trained.log").exists()


def test_hydra_scanning_the_halving_plugin_loads_neither_scipy_nor_torch():
    """Hydra imports every plugin at each start-up (`python train.py --help` too): the sweeper module must
    leave segtrain.halving, scipy and torch to the sweep itself."""
    import subprocess
    import sys

    code = (
        "import sys, hydra_plugins.segtrain_halving.halving_sweeper as m; "
        "print(sorted(k for k in ('scipy', 'torch', 'segtrain.halving') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
