"""Experiment trackers behind ``logger=``: TensorBoard, MLflow and W&B, one or several at once.

    trackers = build_trackers(config["logger"], run_dir, run_name, sweep)   # -> Trackers
    trackers.start(config, run_info, step); trackers.log_scalars(values, epoch)        (the trainer)
    trackers.log_artifacts([metrics.json, per_case.csv], checkpoint); trackers.finish("completed")   (the job)

    base.py                 the Tracker interface; Trackers, the fan-out that survives a failing backend
    tensorboard_tracker.py  <run dir>/tb events
    mlflow_tracker.py       one MLflow run per job, one experiment per sweep (MLflow's own client)
    wandb_tracker.py        one W&B run per job, offline by default

Plain Python values in (no Hydra); ``mlflow`` and ``wandb`` are optional extras, imported only when chosen.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from segtrain.atomic import atomic_write
from segtrain.trackers.base import Tracker, Trackers, require, safe_uri
from segtrain.trackers.mlflow_tracker import MLflowSettings
from segtrain.trackers.wandb_tracker import WandbSettings

__all__ = [
    "KNOWN",
    "MLflowSettings",
    "Tracker",
    "Trackers",
    "WandbSettings",
    "build_trackers",
    "enabled",
    "log_sweep_report",
    "require",
    "safe_uri",
    "sweep_name",
]

log = logging.getLogger("segtrain")

# logger config key -> its settings (None: a switch, true or false); config_checks.check_logger_config reads it
KNOWN: dict[str, type | None] = {"tensorboard": None, "mlflow": MLflowSettings, "wandb": WandbSettings}
DEFAULT_EXPERIMENT = "segtrain"


def sweep_name(sweep_dir: str | Path | None, output_dir: str | Path | None) -> str | None:
    """A sweep's name in the trackers: its folder under ``paths.output_dir`` (``multiruns/2025-05-01/12-00-00``),
    else the folder's own path; None for a single run."""
    if sweep_dir is None:
        return None
    sweep = Path(sweep_dir).resolve()
    if output_dir is not None:
        try:
            return sweep.relative_to(Path(output_dir).resolve()).as_posix()
        except ValueError:
            pass
    return sweep.as_posix()


def enabled(logger: Mapping[str, Any] | None) -> list[str]:
    """The trackers a resolved ``logger`` section turns on, in a fixed order."""
    logger = logger or {}
    return [name for name in KNOWN if logger.get(name) not in (None, False)]


def build_trackers(
    logger: Mapping[str, Any] | None, run_dir: str | Path, run_name: str, sweep: str | None = None
) -> Trackers:
    """The trackers the resolved ``logger`` section names (``{"tensorboard": true, "mlflow": {...}}``) for the
    job in ``run_dir``. ``run_name``: the run's name in MLflow and W&B (the job directory's name); ``sweep``: the
    sweep's name (``sweep_name``), the MLflow experiment and the W&B group of its jobs. A tracker whose package
    is missing raises ImportError naming the extra to install; ``config_checks.check_logger_config`` checks the
    section's keys and types (the job layer calls it with the other checks)."""
    logger = dict(logger or {})
    run_dir = Path(run_dir)
    backends: list[Tracker] = []
    for name in enabled(logger):
        if name == "tensorboard":
            from segtrain.trackers.tensorboard_tracker import TensorBoardTracker

            backends.append(TensorBoardTracker(run_dir / "tb"))
        elif name == "mlflow":
            from segtrain.trackers.mlflow_tracker import MLflowTracker

            settings = MLflowSettings(**logger["mlflow"])
            experiment = settings.experiment or sweep or DEFAULT_EXPERIMENT
            backends.append(MLflowTracker(settings, run_dir, run_name, experiment))
        elif name == "wandb":
            from segtrain.trackers.wandb_tracker import WandbTracker

            backends.append(WandbTracker(WandbSettings(**logger["wandb"]), run_dir, run_name, sweep))
    return Trackers(backends)


def log_sweep_report(
    logger: Mapping[str, Any] | None, sweep_dir: str | Path, files: Sequence[Path], output_dir: str | Path | None
) -> dict[str, Any]:
    """Log a sweep's report files (summary.md, verdict.json, plots) to the trackers that keep runs (MLflow: a
    ``sweep-report`` run in the sweep's experiment; W&B: one in the sweep's group). Never raises: a tracker that
    fails is warned about, and ``<sweep dir>/tracking.json`` says what it did not log. Returns what each did."""
    logger = dict(logger or {})
    sweep = sweep_name(sweep_dir, output_dir) or DEFAULT_EXPERIMENT
    out: dict[str, Any] = {}
    for name in enabled(logger):
        try:
            if name == "mlflow":
                from segtrain.trackers.mlflow_tracker import log_sweep_report as log_mlflow

                settings = MLflowSettings(**logger["mlflow"])
                out[name] = log_mlflow(settings, Path(sweep_dir), files, settings.experiment or sweep)
            elif name == "wandb":
                from segtrain.trackers.wandb_tracker import log_sweep_report as log_wandb

                out[name] = log_wandb(WandbSettings(**logger["wandb"]), Path(sweep_dir), files, sweep)
        except Exception as err:  # the report is on disk: a tracker failing here loses nothing
            error = f"{type(err).__name__}: {err}".strip().splitlines()[0][:500]
            names = ", ".join(Path(p).name for p in files)
            out[name] = {"ok": False, "error": error, "not_logged": [f"sweep report ({names})"]}
            log.warning("logger %s could not log the sweep report (%s); it is in %s", name, error, sweep_dir)
    if any(not entry["ok"] for entry in out.values()):
        text = json.dumps(out, indent=2) + "\n"
        atomic_write(Path(sweep_dir) / "tracking.json", lambda f: f.write(text), text=True)
    return out
