"""Reading a sweep's run directories: one RunRecord per job, labelled with its configuration.

A *job* is any directory holding `.hydra/overrides.yaml` (at any depth under the paths given), or a
directory with a `metrics.json` and no `.hydra` when it is passed directly. A *configuration* is a job's
overrides minus `seed`, `dataset.fold` (k-fold CV: the folds of one seed are one experiment, pooled by the
report) and the keys that do not change the experiment (`trainer.resume`, `hydra.*`, ...). Jobs without a
readable `metrics.json` are kept as "incomplete" with the reason, never dropped silently.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"

# Override keys that never change what is trained: a resumed run is the same experiment, Hydra's own
# settings only move files, paths and loggers only change where things are written.
# `dataset.fold` is part of the job, not of the configuration: k-fold CV scores every case once per seed.
# `job.stop_at_epoch` is where a successive-halving rung paused the job, not what it trains.
NON_EXPERIMENT_KEYS = frozenset(
    {"seed", "dataset.fold", "trainer.resume", "job.stop_at_epoch", "resume", "ckpt_path", "trainer.ckpt_path"}
)
FOLD_KEY = "dataset.fold"
NON_EXPERIMENT_PREFIXES = ("hydra.", "paths.", "logger.")
NON_EXPERIMENT_GROUPS = frozenset({"hydra", "paths", "logger"})
DEFAULT_MONITOR = "val/dice"


@dataclass
class RunRecord:
    """One job directory of a sweep, as read from disk.

    `status` is the trainer's ("completed", "running", "preempted", "failed") or "incomplete" when there is no readable
    metrics.json. `metrics` is the parsed metrics.json ({} when incomplete).
    """

    path: Path
    sweep: Path
    sweep_name: str
    job: str  # path relative to the sweep dir ("." for a single run)
    overrides: list[str]
    config_overrides: list[str]  # overrides minus seed and non-experiment keys, in the job's order
    seed: int | str | None
    status: str
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    config: str = ""  # the configuration's label, set by collect_runs
    fold: int | str | None = None  # `dataset.fold` override (k-fold CV), None without

    @property
    def monitor(self) -> str:
        return str(self.metrics.get("monitor") or DEFAULT_MONITOR)

    @property
    def monitor_mode(self) -> str:
        return str(self.metrics.get("monitor_mode") or guess_mode(self.monitor))

    @property
    def best(self) -> dict[str, Any]:
        return self.metrics.get("best") or {}

    @property
    def final(self) -> dict[str, Any]:
        return self.metrics.get("final") or {}

    @property
    def per_class(self) -> dict[str, dict[str, float | None]]:
        return self.metrics.get("per_class") or {}

    @property
    def has_values(self) -> bool:
        """Whether the job counts in the configuration's statistics (completed, or unfinished with a best:
        running, or preempted until its re-run continues it)."""
        return self.status in ("completed", "running", "preempted") and bool(self.best)

    def best_value(self, metric: str) -> float | None:
        """The job's value of `metric` at its best epoch (NaN and missing -> None).

        Per-class metrics (`val/dice/<class>`, `val/iou/<class>`) come from metrics.json's per_class.
        """
        if metric in self.best:
            return number(self.best[metric])
        prefix, _, cls = metric.rpartition("/")
        kind = prefix.removeprefix("val/")
        return number((self.per_class.get(kind) or {}).get(cls)) if prefix.startswith("val/") else None

    def history(self) -> list[dict[str, float]]:
        """history.csv, one dict per epoch; unreadable cells are left out (a running job may be mid-write)."""
        path = self.path / HISTORY_FILE
        if not path.is_file():
            return []
        rows: list[dict[str, float]] = []
        with path.open(newline="") as f:
            for raw in csv.DictReader(f):
                row = {k: v for k, v in ((k, number(v)) for k, v in raw.items() if k) if v is not None}
                if "epoch" in row:
                    rows.append(row)
        return rows


def collect_runs(paths: Sequence[Path | str] | Path | str) -> list[RunRecord]:
    """Every job under `paths` (sweep dirs, run dirs, or a mix), each read once, with its configuration label.

    Raises FileNotFoundError when a path does not exist or holds no job.
    """
    roots = [Path(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    if not roots:
        raise ValueError("collect_runs: no path given; expected one or more sweep or run directories")
    names = sweep_names(roots)
    seen: set[Path] = set()
    runs: list[RunRecord] = []
    for root, name in zip(roots, names, strict=True):
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: not a directory; expected a sweep or run directory")
        job_dirs = _find_job_dirs(root)
        if not job_dirs:
            raise FileNotFoundError(
                f"{root}: no job found; expected directories with {OVERRIDES_FILE} (Hydra run dirs) "
                f"or a {METRICS_FILE} in the directory itself"
            )
        for job_dir in job_dirs:
            key = job_dir.resolve()
            if key not in seen:
                seen.add(key)
                runs.append(read_run(job_dir, root, name))
    _label_configs(runs)
    return runs


def _find_job_dirs(root: Path) -> list[Path]:
    jobs = sorted({p.parent.parent for p in root.rglob(str(OVERRIDES_FILE))}, key=_natural_key)
    if not jobs and (root / METRICS_FILE).is_file():
        jobs = [root]
    return jobs


def read_run(job_dir: Path, sweep: Path, sweep_name: str) -> RunRecord:
    """One job directory as a RunRecord (its configuration label is left empty: collect_runs sets it)."""
    overrides = _read_overrides(job_dir / OVERRIDES_FILE)
    seed: int | str | None = None
    fold: int | str | None = None
    config_overrides: list[str] = []
    for item in overrides:
        key, _, value = item.partition("=")
        key = key.lstrip("+")
        if key == "seed":
            seed = _parse_seed(value)
        if key == FOLD_KEY:
            fold = _parse_seed(value)
        if not _is_non_experiment(key):
            config_overrides.append(item)

    status, error, metrics = "incomplete", None, {}
    metrics_path = job_dir / METRICS_FILE
    if not metrics_path.is_file():
        error = f"no {METRICS_FILE} yet (in its first epoch, or stopped before finishing it)"
    else:
        try:
            metrics = json.loads(metrics_path.read_text())
            if not isinstance(metrics, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
            metrics, error = {}, f"unreadable {METRICS_FILE}: {exc}"
        else:
            status = str(metrics.get("status") or "completed")
            error = _one_line(metrics.get("error"))
    if seed is None and metrics.get("seed") is not None:
        seed = _parse_seed(str(metrics["seed"]))

    job = job_dir.relative_to(sweep).as_posix() if job_dir != sweep else "."
    return RunRecord(
        path=job_dir,
        sweep=sweep,
        sweep_name=sweep_name,
        job=job,
        overrides=overrides,
        config_overrides=config_overrides,
        seed=seed,
        status=status,
        error=error,
        metrics=metrics,
        fold=fold,
    )


def _read_overrides(path: Path) -> list[str]:
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc}); expected a list of override strings") from exc
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a YAML list of override strings, got {type(data).__name__}")
    return [str(x) for x in data]


def _is_non_experiment(key: str) -> bool:
    return key in NON_EXPERIMENT_KEYS or key in NON_EXPERIMENT_GROUPS or key.startswith(NON_EXPERIMENT_PREFIXES)


def _label_configs(runs: list[RunRecord]) -> None:
    """Give each run its configuration label.

    Overrides every job shares (`trainer.max_epochs=20` typed once for the whole sweep) are left out of the
    labels when there is more than one configuration (summary.md lists them once); the sweep name is
    prefixed only where two sweeps hold the same configuration.
    """
    identity = {id(r): tuple(sorted(r.config_overrides)) for r in runs}
    common = set(common_overrides(runs))
    first_order: dict[tuple[str, ...], list[str]] = {}
    sweeps_of: dict[tuple[str, ...], set[str]] = {}
    for r in runs:
        first_order.setdefault(identity[id(r)], [o for o in r.config_overrides if o not in common])
        sweeps_of.setdefault(identity[id(r)], set()).add(r.sweep_name)
    for r in runs:
        key = identity[id(r)]
        label = ",".join(first_order[key]) or "(defaults)"
        r.config = f"{r.sweep_name}/{label}" if len(sweeps_of[key]) > 1 else label


def common_overrides(runs: Sequence[RunRecord]) -> list[str]:
    """Experiment overrides that every job has (first job's order), when leaving them out of the labels
    still leaves every configuration a label of its own; else [] (labels keep everything)."""
    if not runs:
        return []
    shared = set(runs[0].config_overrides).intersection(*(r.config_overrides for r in runs[1:]))
    if any(not (set(r.config_overrides) - shared) for r in runs):
        return []
    return [o for o in runs[0].config_overrides if o in shared]


def sweep_names(roots: list[Path]) -> list[str]:
    """Shortest trailing path parts that tell the roots apart (Hydra's `12-00-00` dirs often share a name)."""
    resolved = [root.resolve() for root in roots]
    unique = list(dict.fromkeys(resolved))
    names: dict[Path, str] = {}
    for depth in range(1, max(len(p.parts) for p in unique) + 1):
        names = {p: "/".join(p.parts[-depth:]) for p in unique}
        if len(set(names.values())) == len(unique):
            break
    return [names[p] for p in resolved]


def guess_mode(metric: str) -> str:
    return "min" if "loss" in metric else "max"


def number(value: Any) -> float | None:
    """A finite-or-infinite float, or None for null/NaN/empty/unparseable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _parse_seed(value: str) -> int | str:
    try:
        return int(value)
    except ValueError:
        return value


def _one_line(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text.splitlines()[0] if text else None


def _natural_key(path: Path) -> list[Any]:
    """Sort `seed=2` before `seed=10`."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix())]
