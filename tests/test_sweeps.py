"""Sweeps: the experiment and hparams_search configs, and real multiruns in a subprocess (tiny jobs).

What each sweep expands to is checked in-process with Hydra's compose API and the basic sweeper's own
expansion (no training); then reduced sweeps run for real: the basic launcher with a crash and a re-run,
joblib with two parallel jobs, submitit in local mode, and Optuna with two trials.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, TINY, run_train

from segtrain.losses.search import loss_kwargs

CONFIGS = ROOT / "configs"
# one epoch of half the tiny job; job directories are named after these too
QUICK = [o for o in TINY if not o.startswith(("trainer.max_epochs", "dataset.length"))] + [
    "dataset.length.train=16",
    "dataset.length.val=8",
    "trainer.max_epochs=1",
]

MULTICLASS_LOSSES = [
    "ce",
    "weighted_ce",
    "focal",
    "dice",
    "iou",
    "tversky_recall",
    "focal_tversky",
    "generalized_dice",
    "log_cosh_dice",
    "lovasz",
    "exp_log",
    "ce_dice",
    "focal_dice",
]
BINARY_LOSSES = [
    "bce",
    "weighted_ce",
    "focal",
    "dice",
    "iou",
    "tversky_recall",
    "focal_tversky",
    "log_cosh_dice",
    "lovasz",
    "bce_dice",
    "focal_dice",
]
IMBALANCE_LOSSES = ["ce", "weighted_ce", "focal", "dice", "generalized_dice", "focal_tversky", "ce_dice"]


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------


def compose(overrides: list[str], multirun: bool = False):
    """The composed config, Hydra's own node included, as ``python train.py [-m] <overrides>`` would see it
    (in a multirun, sweep overrides such as ``loss=ce,dice`` are left to the sweeper)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    import segtrain.cli  # noqa: F401  (registers the project_root / default_data_dir resolvers)

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS)):
        loader = GlobalHydra.instance().config_loader()
        mode = RunMode.MULTIRUN if multirun else RunMode.RUN
        return loader.load_configuration("train", overrides, run_mode=mode)


def expand_sweep(overrides: list[str]) -> list[dict[str, str]]:
    """The jobs ``python train.py -m <overrides>`` launches, as {key: value} of their sweep overrides,
    expanded by Hydra's basic sweeper from ``hydra.sweeper.params`` plus the command line (which wins)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = compose(overrides, multirun=True)
    params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.params or {}).items()]
    parsed = OverridesParser.create().parse_overrides([*params, *overrides])
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [dict(item.split("=", 1) for item in job) for batch in batches for job in batch]


def sweep_jobs(sweep_dir: Path) -> dict[str, Path]:
    """Job directories of a sweep (those with a metrics.json), by the value of their loss override."""
    jobs = {}
    for metrics in sweep_dir.rglob("metrics.json"):
        overrides = yaml.safe_load((metrics.parent / ".hydra" / "overrides.yaml").read_text())
        key = ",".join(o for o in overrides if o.startswith(("loss=", "dataset.foreground_fraction=")))
        jobs[key] = metrics.parent
    return jobs


def read_metrics(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


def simulate_crash_in_second_epoch(job: Path) -> None:
    """Leave ``job`` as a kill during epoch 2 of 2 would: last.pt and history.csv at epoch 1, metrics.json
    saying running (the trainer rewrites all three at the end of every epoch)."""
    last = job / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    assert state["epoch"] == 2
    state["epoch"], state["step"] = 1, state["step"] // 2
    torch.save(state, last)
    with (job / "history.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    with (job / "history.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows[:2])  # header + epoch 1
    metrics = read_metrics(job)
    metrics.update(status="running", epochs_completed=1)
    (job / "metrics.json").write_text(json.dumps(metrics))


def tensorboard_hparams(sweep_dir: Path) -> dict[str, dict[str, str]]:
    """{job's tb dir relative to the sweep dir: hparams}, read as ``tensorboard --logdir <sweep dir>`` would."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    mux = EventMultiplexer().AddRunsFromDirectory(str(sweep_dir)).Reload()
    found = {}
    for run in mux.Runs():
        content = mux.PluginRunToTagToContent("hparams").get(run, {}).get("_hparams_/session_start_info")
        if content is None:
            continue
        info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
        found[run] = {k: str(v.string_value or v.number_value) for k, v in info.hparams.items()}
    return found


def optuna_unusable() -> str | None:
    """Why the Optuna sweeper cannot run here, or None when it can."""
    try:
        import optuna
        from hydra_plugins.hydra_optuna_sweeper import optuna_sweeper  # noqa: F401

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize")
        study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=1)
    except Exception as err:  # any import or runtime failure means: skip, and say why
        return (
            f"hydra-optuna-sweeper unusable ({type(err).__name__}: {err}); it needs optuna>=2.10,<3 "
            "(pip install 'hydra-optuna-sweeper==1.2.0' 'optuna>=2.10,<3')"
        )
    return None


# ----------------------------------------------------------------------------------------------------
# what the sweeps expand to (in-process, no training)
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("experiment", "mode", "axes"),
    [
        ("loss_sweep", "multiclass", {"loss": MULTICLASS_LOSSES, "seed": ["0", "1", "2"]}),
        ("loss_sweep dataset=shapes_binary", "binary", {"loss": BINARY_LOSSES, "seed": ["0", "1", "2"]}),
        (
            "imbalance_sweep",
            "multiclass",
            {
                "dataset.foreground_fraction": ["0.15", "0.05", "0.02"],
                "loss": IMBALANCE_LOSSES,
                "seed": ["0", "1", "2"],
            },
        ),
    ],
)
def test_experiment_expands_to_every_loss_times_seed_and_each_loss_builds_for_the_dataset(experiment, mode, axes):
    experiment, *extra = experiment.split()
    jobs = expand_sweep([f"experiment={experiment}", *extra])
    expected = 1
    for values in axes.values():
        expected *= len(values)
    assert len(jobs) == expected
    for key, values in axes.items():
        assert sorted({job[key] for job in jobs}) == sorted(values), key
    assert len({tuple(sorted(job.items())) for job in jobs}) == expected  # no duplicate job

    from segtrain.losses import build_loss

    for loss in axes["loss"]:
        cfg = compose([f"experiment={experiment}", *extra, f"loss={loss}"])
        assert cfg.dataset.mode == mode
        loss_cfg = loss_kwargs(yaml.safe_load((CONFIGS / "loss" / f"{loss}.yaml").read_text()))
        loss_cfg.update(mode=mode, ignore_index=cfg.dataset.ignore_index)
        build_loss(**loss_cfg)  # raises when the loss does not support the data set's mode


@pytest.mark.parametrize("mode", ["multiclass", "binary", "multilabel"])
def test_no_loss_is_listed_twice_under_two_names(mode):
    """Two presets that compute the same function (tversky at alpha = beta = 0.5 is dice; generalized_dice
    with one output channel is dice) would make a sweep compare a loss with itself: every pair of the
    sweep's losses must differ in value or gradient on random inputs."""
    from segtrain.losses import build_loss

    losses = yaml.safe_load((CONFIGS / "experiment" / "loss_sweep.yaml").read_text())["sweep_losses"][mode].split(",")
    torch.manual_seed(0)
    channels = {"multiclass": 4, "binary": 1, "multilabel": 3}[mode]
    logits = torch.randn(4, channels, 16, 16, dtype=torch.float64)
    if mode == "multiclass":
        target = torch.randint(0, 4, (4, 16, 16))
    else:
        target = (torch.rand(4, channels, 16, 16) < 0.1).long()
    outputs = {}
    for loss in losses:
        cfg = loss_kwargs(yaml.safe_load((CONFIGS / "loss" / f"{loss}.yaml").read_text()))
        cfg.update(mode=mode, ignore_index=None)
        x = logits.clone().requires_grad_(True)
        value = build_loss(**cfg)(x, target)
        value.backward()
        outputs[loss] = (value.detach(), x.grad)
    for a, b in itertools.combinations(losses, 2):
        (va, ga), (vb, gb) = outputs[a], outputs[b]
        same = torch.allclose(va, vb, rtol=1e-3, atol=1e-6) and torch.allclose(ga, gb, rtol=1e-3, atol=1e-9)
        assert not same, f"loss_sweep ({mode}): {a} and {b} compute the same loss"


@pytest.mark.parametrize("mode", ["multiclass", "binary", "multilabel"])
def test_loss_sweep_picks_losses_that_support_the_data_sets_mode(mode):
    from segtrain.losses import LOSSES

    sweep = yaml.safe_load((CONFIGS / "experiment" / "loss_sweep.yaml").read_text())
    assert sweep["hydra"]["sweeper"]["params"]["loss"] == "${sweep_losses.${dataset.mode}}"
    for loss in sweep["sweep_losses"][mode].split(","):
        name = yaml.safe_load((CONFIGS / "loss" / f"{loss}.yaml").read_text())["name"]
        assert mode in LOSSES.get(name).modes, f"{loss} does not support {mode}"


def test_tversky_at_its_defaults_is_dice_which_is_why_the_sweeps_list_tversky_recall():
    from segtrain.losses import build_loss

    logits, target = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.randint(0, 3, (2, 8, 8))
    dice = build_loss("dice", mode="multiclass")(logits, target)
    assert torch.allclose(build_loss("tversky", mode="multiclass")(logits, target), dice, rtol=1e-4)
    recall = yaml.safe_load((CONFIGS / "loss" / "tversky_recall.yaml").read_text())
    assert (recall["name"], recall["alpha"], recall["beta"]) == ("tversky", 0.3, 0.7)


def test_command_line_overrides_beat_the_experiment():
    jobs = expand_sweep(["experiment=loss_sweep", "loss=dice,focal", "seed=7"])
    assert sorted(job["loss"] for job in jobs) == ["dice", "focal"]
    assert {job["seed"] for job in jobs} == {"7"}
    cfg = compose(["experiment=loss_sweep", "dataset=shapes_binary", "model=fpn"])
    assert (cfg.dataset.name, cfg.dataset.mode, cfg.model.name) == (
        "shapes",
        "binary",
        "fpn",
    )  # shapes_binary is shapes in binary mode


@pytest.mark.parametrize(
    ("search", "loss", "params"),
    [
        ("tversky_optuna", "tversky", {"loss.alpha", "loss.beta"}),
        ("focal_optuna", "focal", {"loss.gamma", "optimizer.lr"}),
    ],
)
def test_optuna_search_maximises_the_monitored_dice_over_existing_keys(search, loss, params):
    if reason := optuna_unusable():
        pytest.skip(reason)
    cfg = compose([f"hparams_search={search}"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert (sweeper.direction, cfg.trainer.monitor, cfg.loss.name) == ("maximize", "val/dice", loss)
    assert set(sweeper.params) == params
    for key in params:  # every tuned key exists in the composed config
        group, _, name = key.partition(".")
        assert name in cfg[group], key


def test_slurm_launcher_asks_for_one_gpu_per_job_and_exports_its_thread_count(tmp_path, monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher not installed")
    import submitit
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    cfg = compose(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", f"hydra.sweep.dir={tmp_path}"])
    HydraConfig.instance().set_config(cfg)
    params = instantiate(cfg.hydra.launcher).params
    # what the plugin's launch() hands to submitit; a stub srun lets the executor be built off-cluster
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    executor = submitit.AutoExecutor(cluster="slurm", folder=tmp_path / "submitit", slurm_max_num_timeout=3)
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{
            k if k in base else f"slurm_{k}": v
            for k, v in params.items()
            if k not in ("submitit_folder", "max_num_timeout")
        }
    )
    sbatch = executor._executor._make_submission_file_text("python -m submitit.core._submit x", "uid")
    for line in ("--gpus-per-node=1", "--cpus-per-task=8", "--partition=gpu", "--time=240", "--ntasks-per-node=1"):
        assert f"#SBATCH {line}" in sbatch, sbatch
    assert "export OMP_NUM_THREADS=8" in sbatch and "export MKL_NUM_THREADS=8" in sbatch


# ----------------------------------------------------------------------------------------------------
# real multiruns in a subprocess
# ----------------------------------------------------------------------------------------------------


def test_rerunning_a_crashed_sweep_skips_completed_jobs_and_resumes_the_crashed_one(tmp_path):
    sweep = tmp_path / "sweep"
    command = ["-m", "experiment=loss_sweep", "loss=ce,dice", "seed=0", f"hydra.sweep.dir={sweep}", *TINY]
    run_train(command, tmp_path)
    jobs = sweep_jobs(sweep)
    assert sorted(jobs) == ["loss=ce", "loss=dice"]
    assert all(read_metrics(job)["status"] == "completed" for job in jobs.values())
    # job directories read as a table: the swept and typed overrides, nothing else
    name = jobs["loss=dice"].name
    assert name.startswith("dataset.image_size=32,") and "loss=dice,seed=0,trainer.max_epochs=2" in name
    assert "progress_bar" not in name and "sweep.dir" not in name

    done, crashed = jobs["loss=ce"], jobs["loss=dice"]
    simulate_crash_in_second_epoch(crashed)
    untouched = {p: p.stat().st_mtime_ns for p in (done / "history.csv", done / "metrics.json")}
    untouched[done / "checkpoints" / "last.pt"] = (done / "checkpoints" / "last.pt").stat().st_mtime_ns
    metrics_before = read_metrics(done)

    run_train(command, tmp_path)

    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched
    assert read_metrics(done) == metrics_before
    assert "already completed; skipping it" in (done / "train.log").read_text()
    log = (crashed / "train.log").read_text()
    assert "resumed from" in log and "at epoch 1" in log
    resumed = read_metrics(crashed)
    assert (resumed["status"], resumed["epochs_completed"]) == ("completed", 2)
    with (crashed / "history.csv").open(newline="") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [1, 2]

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "summarize.py"), str(sweep), "--no-plots"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    summary = (sweep / "summary.md").read_text()
    assert "Jobs: 2 (2 completed)" in summary
    assert "| loss=ce |" in summary and "| loss=dice |" in summary


def test_joblib_runs_sweep_jobs_in_parallel_into_one_tensorboard_logdir(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="hydra-joblib-launcher not installed")
    sweep = tmp_path / "sweep"
    proc = run_train(
        [
            "-m",
            "experiment=imbalance_sweep",
            "dataset.foreground_fraction=0.15,0.02",
            "loss=dice",
            "seed=0",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            f"hydra.sweep.dir={sweep}",
            *QUICK,
        ],
        tmp_path,
    )
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    jobs = sweep_jobs(sweep)
    assert sorted(jobs) == ["dataset.foreground_fraction=0.02,loss=dice", "dataset.foreground_fraction=0.15,loss=dice"]
    assert all(read_metrics(job)["status"] == "completed" for job in jobs.values())
    hparams = tensorboard_hparams(sweep)
    assert len(hparams) == 2, hparams
    assert all(h["loss"] == "dice" and h["dataset"] == "shapes" for h in hparams.values())


def test_submitit_local_launcher_runs_the_sweep_jobs(tmp_path, monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher not installed")
    # submitit's jobs unpickle the task in a fresh interpreter: segtrain must be importable there
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    sweep = tmp_path / "sweep"
    run_train(
        [
            "-m",
            "experiment=loss_sweep",
            "loss=focal",
            "seed=0",
            "hydra/launcher=slurm_local",
            "hydra.launcher.timeout_min=5",
            f"hydra.sweep.dir={sweep}",
            *QUICK,
        ],
        tmp_path,
    )
    jobs = sweep_jobs(sweep)
    assert list(jobs) == ["loss=focal"]
    assert read_metrics(jobs["loss=focal"])["status"] == "completed"
    assert list((sweep / ".submitit").glob("*/*_log.out"))  # it ran under submitit, logs where the docs say


def test_optuna_tversky_search_runs_two_trials_and_reports_the_best_dice(tmp_path):
    if reason := optuna_unusable():
        pytest.skip(reason)
    sweep = tmp_path / "sweep"
    run_train(
        ["-m", "hparams_search=tversky_optuna", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}", *QUICK],
        tmp_path,
    )
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {"loss.alpha", "loss.beta"}
    trials = [read_metrics(p.parent) for p in sweep.rglob("metrics.json")]
    assert len(trials) == 2 and all(t["loss"] == "tversky" for t in trials)
    assert results["best_value"] == pytest.approx(max(t["best"]["val/dice"] for t in trials))


def _iterate_loader_with_workers() -> int:
    from segtrain.data import build_dataset, build_loader

    ds = build_dataset("shapes", split="train", length={"train": 4}, image_size=16, num_classes=4)
    return sum(len(batch["id"]) for batch in build_loader(ds, batch_size=2, num_workers=1))


def test_loader_workers_start_inside_a_joblib_worker():
    """hydra/launcher=joblib runs jobs in loky processes, whose default start method DataLoader cannot
    use for its workers (pytorch#44687); build_loader picks the platform's default instead."""
    from joblib import Parallel, delayed

    # n_jobs=2: with one job joblib runs it in this process
    assert Parallel(n_jobs=2, backend="loky")(delayed(_iterate_loader_with_workers)() for _ in range(2)) == [4, 4]


def test_a_shapes_sweep_with_its_test_split_gives_a_verdict_that_agrees_with_the_per_case_files(tmp_path):
    """End to end: every job writes per_case.csv (val and test), and the report scores on test, opens with
    the verdict sentence, draws ranks.png, and its case means are the per-case files' values recomputed."""
    from segtrain.report import summarize

    sweep = tmp_path / "sweep"
    tiny = [o for o in TINY if not o.startswith("dataset.length.val")] + ["dataset.length.val=8"]
    proc = run_train(
        ["-m", "loss=ce,dice", "seed=0,1", "dataset.length.test=12", f"hydra.sweep.dir={sweep}", *tiny], tmp_path
    )
    # the sweep's end wrote the report: no second command
    assert f"sweep report: {sweep / 'summary.md'}" in proc.stdout
    assert (sweep / "verdict.json").is_file() and (sweep / "summary.md").read_text().startswith("# Sweep summary")
    jobs = sorted(p.parent for p in sweep.rglob("per_case.csv"))
    assert len(jobs) == 4
    for job in jobs:
        with (job / "per_case.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert {r["split"] for r in rows} == {"val", "test"}
        assert sum(r["split"] == "test" for r in rows) == 12 * 4  # cases x classes (background included)
        assert read_metrics(job)["test"]["num_cases"] == 12

    summarize(sweep, alpha=0.05, n_boot=200)
    assert (sweep / "ranks.png").stat().st_size > 0
    verdict = json.loads((sweep / "verdict.json").read_text())
    assert verdict["split"] == "test" and not verdict["selected_on_same_split"]
    assert (sweep / "summary.md").read_text().splitlines()[2] == verdict["sentence"]
    assert verdict["sentence"].startswith("On test (12 cases, 2 seeds)")

    # the report's case mean of `loss=dice`, recomputed from its two per_case.csv files by the stated rule:
    # per case, the mean Dice over the foreground classes present in the reference or the prediction
    # (a case with none scores 1), then the mean over seeds, then over cases
    per_seed = []
    for job in (j for j in jobs if "loss=dice" in j.name):
        with (job / "per_case.csv").open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["split"] == "test" and r["class"] != "background"]
        cases: dict[str, list[float]] = {}
        for r in rows:
            present = int(r["ref_pixels"]) + int(r["pred_pixels"]) > 0
            cases.setdefault(r["case"], []).extend([float(r["dice"])] if present else [])
        per_seed.append({c: sum(v) / len(v) if v else 1.0 for c, v in cases.items()})
    expected = sum((per_seed[0][c] + per_seed[1][c]) / 2 for c in per_seed[0]) / len(per_seed[0])
    assert verdict["means"]["dice"]["loss=dice"] == pytest.approx(expected, abs=1e-9)
