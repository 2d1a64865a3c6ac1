"""The fair loss sweep (experiment=fair_loss_sweep, hydra/sweeper=fair): each loss's search space, the equal
budget, selection on val before any held-out record is read, the report, and an end-to-end run on shapes."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, TINY, run_train

from segtrain.fair import FairSettings, LossGrid, fair_sweep
from segtrain.halving import HalvingSettings, Job
from segtrain.losses import LOSSES, build_loss
from segtrain.losses.search import expand_space, loss_kwargs, override_value, setting_overrides
from segtrain.report import summarize

LOSS_DIR = ROOT / "configs" / "loss"
APP = ROOT / "tests" / "fair_app" / "fake_app.py"
SPACES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(LOSS_DIR.glob("*.yaml"))}
SPACES = {k: v for k, v in SPACES.items() if v.get("search")}


def _with(cfg: dict, setting: dict) -> dict:
    out = json.loads(json.dumps(cfg))
    for key, value in setting.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        assert last in node, f"{key} is not a key of the loss config"
        node[last] = value
    return out


def _outputs(cfg: dict, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    channels = {"multiclass": 4, "binary": 1, "multilabel": 3}[mode]
    logits = torch.randn(4, channels, 24, 24, dtype=torch.float64, requires_grad=True)
    if mode == "multiclass":
        target = torch.randint(0, 4, (4, 24, 24))
    else:
        target = (torch.rand(4, channels, 24, 24) < 0.15).long()
    kwargs = loss_kwargs(cfg)
    kwargs.update(mode=mode, ignore_index=None)
    loss = build_loss(**kwargs)
    if hasattr(loss, "set_epoch"):  # a ramped loss (dice_boundary): mid-training, where its ramp settings differ
        loss.set_epoch(5, 10)
    value = loss(logits, target)
    value.backward()
    return value.detach(), logits.grad


def _same(a, b) -> bool:
    return torch.allclose(a[0], b[0], rtol=1e-4, atol=1e-8) and torch.allclose(a[1], b[1], rtol=1e-4, atol=1e-10)


# ---------------------------------------------------------------------------------------------- spaces
@pytest.mark.parametrize("name", sorted(SPACES))
def test_every_setting_of_a_space_is_accepted_by_its_loss_and_no_two_are_the_same_function(name):
    cfg = SPACES[name]
    settings = expand_space(cfg["search"], f"configs/loss/{name}.yaml search")
    assert 2 <= len(settings) <= 3, "a loss's own space stays small (times the shared knobs)"
    mode = LOSSES.get(cfg["name"]).modes[0]
    if name == "ohem_ce":  # its min_kept (10000 pixels) would keep all 2304 pixels of these inputs at any thresh
        cfg = {**cfg, "min_kept": 100}
    outputs = [_outputs(_with(cfg, s), mode) for s in settings]
    for (i, a), (j, b) in itertools.combinations(enumerate(outputs), 2):
        assert not _same(a, b), f"{name}: {settings[i]} and {settings[j]} compute the same loss"
    # the loss's defaults are one of its settings (its verdict at the defaults comes from the same runs),
    # except tversky, whose defaults are dice's function
    at_defaults = [s for s in settings if _with(SPACES[name], s) == SPACES[name]]
    assert bool(at_defaults) == (name != "tversky"), name


def test_tversky_leaves_its_dice_setting_out_of_its_space():
    cfg = SPACES["tversky"]
    half = _outputs(_with(cfg, {"alpha": 0.5, "beta": 0.5}), "multiclass")
    dice_cfg = yaml.safe_load((LOSS_DIR / "dice.yaml").read_text())
    assert _same(half, _outputs(dice_cfg, "multiclass"))  # the known case: tversky 0.5/0.5 is dice
    for s in expand_space(cfg["search"]):
        assert not _same(_outputs(_with(cfg, s), "multiclass"), half), s


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"gamma": []}, "loss.search.gamma: expected a non-empty list"),
        ({"gamma": 2.0}, "loss.search.gamma: expected a non-empty list"),
        ([{"alpha": 0.3}, {"beta": 0.7}], "every setting of a list must set the same keys"),
        ([{"alpha": 0.3}, {"alpha": 0.3}], "is listed twice"),
        ({"gamma": [1.0, float("nan")]}, "is not a finite number"),
        ("gamma", "expected a mapping (a grid) or a list of settings"),
    ],
)
def test_a_malformed_space_is_a_clear_error(space, message):
    with pytest.raises(ValueError, match=None) as err:
        expand_space(space)
    assert message in str(err.value)


def test_spaces_expand_to_hydra_overrides():
    assert expand_space({"a": [1, 2], "b.c": [True]}) == [{"a": 1, "b.c": True}, {"a": 2, "b.c": True}]
    assert setting_overrides("loss", {"weights": [0.5, 1.0], "focal.gamma": 3.0, "x": None, "s": "it's"}) == [
        "loss.weights=[0.5,1.0]",
        "loss.focal.gamma=3.0",
        "loss.x=null",
        "loss.s='it\\'s'",
    ]
    assert override_value(False) == "false" and expand_space(None) == []


# ---------------------------------------------------------------------------------------------- the procedure
def _fake_launch(sweep: Path, quality: dict[str, float], log: list):
    """A plain-Python launch(jobs, epochs) that writes what the fake app writes (val rows while paused, val and
    test rows once completed)."""

    def launch(jobs: list[Job], epochs: int) -> dict:
        for job in jobs:
            job.path.mkdir(parents=True, exist_ok=True)
            metrics = job.path / "metrics.json"
            start = json.loads(metrics.read_text())["epochs_completed"] if metrics.exists() else 0
            done = epochs >= 9
            rng = np.random.default_rng(abs(hash((job.config, job.seed))) % 2**32)
            with (job.path / "per_case.csv").open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["split", "case", "class", "dice", "iou", "hd95", "nsd", "cldice", "tp", "fp", "fn",
                            "ref_pixels", "pred_pixels"])  # fmt: skip
                for split in ("val", "test") if done else ("val",):
                    for i in range(20):
                        d = float(np.clip(quality[job.config] * (1 - 0.5 * np.exp(-epochs / 2)) + rng.normal(0, 0.02)
                                          + 0.05 * np.sin(i), 0, 1))  # fmt: skip
                        w.writerow([split, f"{split}{i}", "fg", d, d, 1, d, "", 1, 1, 1, 2, 2])
            status = "completed" if done else "paused"
            metrics.write_text(json.dumps({"status": status, "epochs_completed": epochs, "mode": "binary",
                                           "timing": {"train_s": float(epochs)}}))  # fmt: skip
            (job.path / ".hydra").mkdir(exist_ok=True)
            (job.path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(job.overrides))
            log.append((job.path.name, start, epochs))
        return {}

    return launch


def _grid(sweep: Path, loss: str, n: int, seeds=(0, 1)) -> tuple[LossGrid, dict[str, float]]:
    quality, jobs = {}, []
    for k in range(n):
        config = f"loss={loss}" + (f",loss.k={k}" if n > 1 else "")
        quality[config] = 0.5 + 0.01 * k + {"one": 0.1, "three": 0.0, "nine": -0.05}.get(loss, 0)
        for s in seeds:
            overrides = [*config.split(","), f"seed={s}"]
            jobs.append(Job(config, f"seed={s}", None, overrides, sweep / ",".join(overrides)))
    defaults = jobs[0].config
    return LossGrid(loss, jobs, defaults, [j for j in jobs if j.config == defaults], [{}] * n), quality


def _settings(**kw) -> FairSettings:
    return FairSettings(HalvingSettings(eta=3.0, b0=1, max_epochs=9, min_cases=5, min_gap=1.0), **kw)


def test_every_loss_gets_the_same_budget_and_none_spends_more(tmp_path):
    """Losses with 1, 3 and 9 configurations: the same budget (2 x seeds x max_epochs) each; halving inside the
    space spends it on more, shorter configurations where there are more; a space that does not fit is halved
    up to the budget, and the one-configuration loss trains its one configuration (its whole space) to the end."""
    grids, quality = [], {}
    for loss, n in (("one", 1), ("three", 3), ("nine", 9)):
        g, q = _grid(tmp_path, loss, n)
        grids.append(g)
        quality.update(q)
    log: list = []
    state = fair_sweep(grids, _settings(budget=2.0), tmp_path, _fake_launch(tmp_path, quality, log))
    t = state["tuning"]
    assert {e["budget_epochs"] for e in t.values()} == {2 * 2 * 9}
    assert t["one"]["spent_epochs"] == 2 * 9  # its whole space, to the end, with every seed
    for loss in ("three", "nine"):
        h = json.loads((tmp_path / t[loss]["halving"]).read_text())
        assert t[loss]["spent_epochs"] == h["epochs_trained"] <= t[loss]["budget_epochs"]
        assert h["settings"]["max_share"] == pytest.approx(2.0 / len(t[loss]["configs"]))
        # with no significance cuts (min_gap 1), the budget rule alone: within one configuration's rung step
        assert t[loss]["spent_epochs"] >= t[loss]["budget_epochs"] - 2 * 6
    # what was trained: the tuning, plus each loss's defaults trained on to the end where the halving stopped them
    assert sum(b - a for _, a, b in log) == state["tuning_epochs"] + state["defaults_epochs"]
    assert state["defaults_epochs"] == 2 * (9 - 3) + 2 * (9 - 1)  # the defaults (k=0): three stopped at 3, nine at 1
    assert t["three"]["selected"] == "loss=three,loss.k=2" and t["nine"]["selected"] == "loss=nine,loss.k=8"
    # re-running a finished sweep trains nothing
    n = len(log)
    fair_sweep(grids, _settings(budget=2.0), tmp_path, _fake_launch(tmp_path, quality, log))
    assert len(log) == n


def test_selection_reads_only_validation_records_and_the_report_scores_held_out(tmp_path, monkeypatch):
    import segtrain.halving.jobs as halving_jobs
    import segtrain.report.fair as report_fair

    reads: list[tuple[str, tuple, str]] = []

    def spy(module):
        original = module.read_job_cases

        def read(run, splits=None):
            fair = tmp_path / "fair.json"
            status = json.loads(fair.read_text())["status"] if fair.is_file() else "none"
            reads.append((run.path.name, tuple(splits) if splits else ("ALL",), status))
            return original(run, splits=splits)

        monkeypatch.setattr(module, "read_job_cases", read)

    spy(halving_jobs)
    spy(report_fair)
    grids, quality = [], {}
    for loss, n in (("three", 3), ("nine", 9), ("one", 1)):
        g, q = _grid(tmp_path, loss, n)
        grids.append(g)
        quality.update(q)
    fair_sweep(grids, _settings(), tmp_path, _fake_launch(tmp_path, quality, []))
    assert reads and all(splits == ("val",) for _, splits, _ in reads)  # the tuning: val rows only
    n_tuning = len(reads)
    report = summarize(tmp_path, plots=False)
    later = reads[n_tuning:]
    assert later and all(status == "completed" for _, _, status in later)
    assert {splits for _, splits, _ in later} == {("test",)}
    selected = {j["dir"] for e in json.loads((tmp_path / "fair.json").read_text())["tuning"].values()
                for j in e["selected_jobs"] + e["defaults_jobs"]}  # fmt: skip
    assert {name for name, _, _ in later} <= selected  # only the selected settings and the defaults
    md = report.md_path.read_text()
    assert "compared on the **test** split, which no selection read" in md
    verdict = json.loads(report.verdict_path.read_text())
    assert verdict["split"] == "test" and verdict["selected_on"] == "val"
    assert verdict["selected"] == {"three": "loss=three,loss.k=2", "nine": "loss=nine,loss.k=8", "one": "loss=one"}
    assert set(verdict["tuned"]["ranking"]) == {"one", "three", "nine"}


def test_without_a_held_out_split_the_report_says_so_in_bold(tmp_path):
    grids, quality = [], {}
    for loss, n in (("three", 3), ("one", 1)):
        g, q = _grid(tmp_path, loss, n)
        grids.append(g)
        quality.update(q)
    fair_sweep(grids, _settings(), tmp_path, _fake_launch(tmp_path, quality, []))
    for per_case in tmp_path.glob("*/per_case.csv"):  # drop the test rows
        rows = [r for r in per_case.read_text().splitlines() if not r.startswith("test,")]
        per_case.write_text("\n".join(rows) + "\n")
    md = summarize(tmp_path, plots=False).md_path.read_text()
    assert "**No held-out split: the verdict below scores on the validation cases that selected" in md
    assert "compared on the **val** split" in md


def test_a_budget_too_small_for_a_space_and_a_single_loss_are_clear_errors(tmp_path):
    g9, q = _grid(tmp_path, "nine", 9)
    g1, q1 = _grid(tmp_path, "one", 1)
    with pytest.raises(ValueError, match="loss nine: 9 configurations cannot be tuned within a budget of 1.5"):
        fair_sweep([g9, g1], _settings(budget=1.5), tmp_path, _fake_launch(tmp_path, {**q, **q1}, []))
    with pytest.raises(ValueError, match="compares two or more different losses"):
        fair_sweep([g9], _settings(), tmp_path, _fake_launch(tmp_path, q, []))
    with pytest.raises(ValueError, match="hydra.sweeper.budget must be a number >= 1"):
        fair_sweep([g9, g1], _settings(budget=0.5), tmp_path, _fake_launch(tmp_path, q, []))


# ---------------------------------------------------------------------------------------------- through Hydra
def run_app(sweep: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    cmd = [sys.executable, str(APP), "-m", "hydra/sweeper=fair", f"hydra.sweep.dir={sweep}", *args]
    proc = subprocess.run(cmd, cwd=sweep.parent, env=env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"fake app failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def test_the_fair_sweeper_builds_each_losss_space_times_the_shared_knobs(tmp_path):
    sweep = tmp_path / "sweep"
    # the shared knob's values from the experiment file (0.001,0.003,0.01), replaced by a command-line sweep
    run_app(sweep, "+experiment=lr", "loss=one,three,pairs", "seed=0,1", "optimizer.lr=0.001,0.003")
    state = json.loads((sweep / "fair.json").read_text())
    t = state["tuning"]
    assert len(t["one"]["configs"]) == 2 and len(t["three"]["configs"]) == 6 and len(t["pairs"]["configs"]) == 4
    assert "loss=three,loss.knob=3,optimizer.lr=0.001" in t["three"]["configs"]
    # the defaults: a point of the space where they are one (three: knob 2, lr 0.003), trained apart where not
    assert t["three"]["defaults"] == "loss=three,loss.knob=2,optimizer.lr=0.003"
    assert t["pairs"]["defaults"] == "loss=pairs,optimizer.lr=0.003" not in t["pairs"]["configs"]
    assert (sweep / "loss=pairs,optimizer.lr=0.003,seed=1" / "per_case.csv").is_file()
    assert t["three"]["selected"].startswith("loss=three,loss.knob=3")
    job = sweep / t["three"]["selected_jobs"][0]["dir"]
    assert json.loads((job / "metrics.json").read_text())["status"] == "completed"
    assert state["status"] == "completed" and state["tuning_epochs"] <= 2 * state["defaults_only_epochs"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["loss=one,three", "seed=0,1", "n_cases=24,30"], "it does not sweep n_cases"),
        (["loss=three", "seed=0,1"], "sweep two or more (loss=dice,focal,...)"),
        (["loss=one,nine", "seed=0,1", "hydra.sweeper.budget=1.2"], "loss nine: 9 configurations cannot be tuned"),
    ],
)
def test_bad_fair_sweep_input_is_a_clear_error(tmp_path, args, message):
    proc = run_app(tmp_path / "sweep", *args, check=False)
    assert proc.returncode != 0 and message in proc.stderr + proc.stdout
    assert not (tmp_path / "sweep" / "trained.log").exists()


def test_a_space_key_the_loss_does_not_have_is_a_clear_error(tmp_path):
    conf = tmp_path / "app"
    import shutil

    shutil.copytree(APP.parent, conf)
    (conf / "conf" / "loss" / "bad.yaml").write_text("name: bad\nknob: 2\nsearch:\n  gamma: [1, 2]\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    cmd = [sys.executable, str(conf / "fake_app.py"), "-m", "hydra/sweeper=fair", f"hydra.sweep.dir={tmp_path / 's'}",
           "loss=one,bad"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "configs/loss/bad.yaml search: 'gamma' is not a key of loss=bad (its keys: name, knob)" in proc.stderr


# ---------------------------------------------------------------------------------------------- shapes, end to end
def test_fair_loss_sweep_on_shapes_selects_on_val_scores_on_test_and_reruns_exactly(tmp_path):
    sweep = tmp_path / "sweep"
    tiny = [o for o in TINY if not o.startswith("trainer.max_epochs")]
    args = ["-m", "experiment=fair_loss_sweep", "loss=dice,focal", "seed=0,1", "hydra.sweeper.shared=null",
            *tiny, "dataset.length.test=16", "trainer.max_epochs=3", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    run_train(args, tmp_path)
    state = json.loads((sweep / "fair.json").read_text())
    assert state["status"] == "completed" and list(state["tuning"]) == ["dice", "focal"]
    focal = state["tuning"]["focal"]
    assert len(focal["configs"]) == 3 and focal["spent_epochs"] <= focal["budget_epochs"] == 2 * 2 * 3
    md = (sweep / "summary.md").read_text()
    for heading in ("# Fair loss comparison", "## Verdict after tuning", "## What tuning did", "## Cost",
                    "## Verdict at the defaults"):  # fmt: skip
        assert heading in md
    verdict = json.loads((sweep / "verdict.json").read_text())
    assert verdict["split"] == "test" and set(verdict["tuned"]["ranking"]) == {"dice", "focal"}
    # a tuned setting is an ordinary configuration: train.py with its overrides reproduces its per_case.csv
    job = focal["selected_jobs"][0]
    rerun = tmp_path / "rerun"
    run_train([*job["overrides"], f"hydra.run.dir={rerun}"], tmp_path)
    assert (rerun / "per_case.csv").read_text() == (sweep / job["dir"] / "per_case.csv").read_text()


def test_the_fair_sweep_runs_on_the_joblib_launcher_and_a_rerun_trains_nothing(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["loss=one,three", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    run_app(sweep, *args)
    state = json.loads((sweep / "fair.json").read_text())
    assert state["status"] == "completed" and state["tuning"]["three"]["selected"] == "loss=three,loss.knob=3"
    log = (sweep / "trained.log").read_text()
    run_app(sweep, *args)  # the same command into the same directory: every rung replayed, nothing trained
    assert (sweep / "trained.log").read_text() == log
