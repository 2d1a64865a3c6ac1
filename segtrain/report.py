"""Sweep report: read the run directories of one or more sweeps and compare configurations.

    summarize(Path("multirun/2024-05-01/12-00-00"))  # -> summary.csv, summary.md, summary.png, curves.png

A *job* is any directory holding `.hydra/overrides.yaml` (at any depth under the paths given), or a
directory with a `metrics.json` and no `.hydra` when it is passed directly. A *configuration* is a job's
overrides minus `seed` and the keys that do not change the experiment (`trainer.resume`, `hydra.*`, ...):
its jobs are the seeds of one experiment, folded into one row of `summary.md` as mean +- std (ddof=1).

Each job is ranked by its `best` value of the monitored metric (`metrics.json` "monitor" and "monitor_mode",
or `metric=`). Running jobs count with their current best and are marked; failed jobs and jobs without a
`metrics.json` (killed before their first epoch) are listed with the reason, never dropped silently.

Plain Python, PyYAML and matplotlib (Agg, imported only to draw): no hydra, omegaconf or torch here, so the
report runs in a notebook or on a machine without the training stack.
"""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ConfigSummary",
    "RunRecord",
    "SweepSummary",
    "collect_runs",
    "summarize",
]

OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"

# Override keys that never change what is trained: a resumed run is the same experiment, Hydra's own
# settings only move files, paths and loggers only change where things are written.
NON_EXPERIMENT_KEYS = frozenset({"seed", "trainer.resume", "resume", "ckpt_path", "trainer.ckpt_path"})
NON_EXPERIMENT_PREFIXES = ("hydra.", "paths.", "logger.")
NON_EXPERIMENT_GROUPS = frozenset({"hydra", "paths", "logger"})

DASH = "–"  # shown for NaN / missing values
DEFAULT_MONITOR = "val/dice"


# ----------------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------------


@dataclass
class RunRecord:
    """One job directory of a sweep, as read from disk.

    `status` is the trainer's ("completed", "running", "failed") or "incomplete" when there is no readable
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

    @property
    def monitor(self) -> str:
        return str(self.metrics.get("monitor") or DEFAULT_MONITOR)

    @property
    def monitor_mode(self) -> str:
        return str(self.metrics.get("monitor_mode") or _guess_mode(self.monitor))

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
        """Whether the job counts in the configuration's statistics (completed or running with a best)."""
        return self.status in ("completed", "running") and bool(self.best)

    def best_value(self, metric: str) -> float | None:
        """The job's value of `metric` at its best epoch (NaN and missing -> None).

        Per-class metrics (`val/dice/<class>`, `val/iou/<class>`) come from metrics.json's per_class.
        """
        if metric in self.best:
            return _number(self.best[metric])
        prefix, _, cls = metric.rpartition("/")
        kind = prefix.removeprefix("val/")
        return _number((self.per_class.get(kind) or {}).get(cls)) if prefix.startswith("val/") else None

    def history(self) -> list[dict[str, float]]:
        """history.csv, one dict per epoch; unreadable cells are left out (a running job may be mid-write)."""
        path = self.path / HISTORY_FILE
        if not path.is_file():
            return []
        rows: list[dict[str, float]] = []
        with path.open(newline="") as f:
            for raw in csv.DictReader(f):
                row = {k: v for k, v in ((k, _number(v)) for k, v in raw.items() if k) if v is not None}
                if "epoch" in row:
                    rows.append(row)
        return rows


@dataclass
class ConfigSummary:
    """One row of summary.md: the jobs of one configuration, seeds folded."""

    label: str
    runs: list[RunRecord]
    metric: str
    mode: str
    classes: list[str]
    rank: int = 0
    wins: int | None = None  # shared seeds on which this configuration beats the top-ranked one
    shared_seeds: int | None = None

    @property
    def counted(self) -> list[RunRecord]:
        return [r for r in self.runs if r.has_values]

    @property
    def seeds(self) -> int:
        return len(self.counted)

    def values(self, metric: str) -> list[float]:
        return [v for v in (r.best_value(metric) for r in self.counted) if v is not None]

    def mean(self, metric: str) -> float | None:
        vals = self.values(metric)
        return statistics.mean(vals) if vals else None

    def std(self, metric: str) -> float | None:
        vals = self.values(metric)
        return statistics.stdev(vals) if len(vals) >= 2 else None

    @property
    def score(self) -> float | None:
        return self.mean(self.metric)

    def per_seed(self, metric: str) -> dict[str, float]:
        """Best value per seed (mean over jobs that share a seed, e.g. a resumed copy)."""
        by_seed: dict[str, list[float]] = {}
        for r in self.counted:
            v = r.best_value(metric)
            if v is not None and r.seed is not None:
                by_seed.setdefault(str(r.seed), []).append(v)
        return {s: statistics.mean(v) for s, v in by_seed.items()}

    def class_mean(self, kind: str, cls: str) -> float | None:
        """nanmean over seeds of the per-class value at each job's best epoch; None when all are NaN."""
        vals = [_number(r.per_class.get(kind, {}).get(cls)) for r in self.counted]
        vals = [v for v in vals if v is not None]
        return statistics.mean(vals) if vals else None

    def field_mean(self, section: str, key: str) -> float | None:
        vals = [_number((r.metrics.get(section) or {}).get(key)) for r in self.counted]
        vals = [v for v in vals if v is not None]
        return statistics.mean(vals) if vals else None

    @property
    def status(self) -> str:
        counts = Counter(r.status for r in self.runs)
        done = counts.get("completed", 0)
        if done == len(self.runs):
            return "done"
        text = f"{done} of {len(self.runs)} done"
        extra = [f"{counts[s]} {s}" for s in ("running", "failed", "incomplete") if counts.get(s)]
        return f"{text} ({', '.join(extra)})" if extra else text


@dataclass
class SweepSummary:
    """What summarize() found and wrote. `rows` are the configurations in rank order."""

    runs: list[RunRecord]
    rows: list[ConfigSummary]
    metric: str
    mode: str
    markdown: str
    csv_path: Path
    md_path: Path
    png_path: Path
    curves_path: Path
    plotted: bool = True  # False: summarize(plots=False) wrote no PNG

    @property
    def files(self) -> list[Path]:
        """The files written."""
        pngs = [self.png_path, self.curves_path] if self.plotted else []
        return [self.csv_path, self.md_path, *pngs]

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status == "failed"]

    @property
    def incomplete(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status == "incomplete"]


# ----------------------------------------------------------------------------------------------------
# Reading run directories
# ----------------------------------------------------------------------------------------------------


def collect_runs(paths: Sequence[Path | str] | Path | str) -> list[RunRecord]:
    """Every job under `paths` (sweep dirs, run dirs, or a mix), each read once, with its configuration label.

    Raises FileNotFoundError when a path does not exist or holds no job.
    """
    roots = [Path(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    if not roots:
        raise ValueError("collect_runs: no path given; expected one or more sweep or run directories")
    names = _sweep_names(roots)
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
                runs.append(_read_run(job_dir, root, name))
    _label_configs(runs)
    return runs


def _find_job_dirs(root: Path) -> list[Path]:
    jobs = sorted({p.parent.parent for p in root.rglob(str(OVERRIDES_FILE))}, key=_natural_key)
    if not jobs and (root / METRICS_FILE).is_file():
        jobs = [root]
    return jobs


def _read_run(job_dir: Path, sweep: Path, sweep_name: str) -> RunRecord:
    overrides = _read_overrides(job_dir / OVERRIDES_FILE)
    seed: int | str | None = None
    config_overrides: list[str] = []
    for item in overrides:
        key, _, value = item.partition("=")
        key = key.lstrip("+")
        if key == "seed":
            seed = _parse_seed(value)
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
    return (
        key in NON_EXPERIMENT_KEYS or key in NON_EXPERIMENT_GROUPS or key.startswith(NON_EXPERIMENT_PREFIXES)
    )


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


def _sweep_names(roots: list[Path]) -> list[str]:
    """Shortest trailing path parts that tell the roots apart (Hydra's `12-00-00` dirs often share a name)."""
    resolved = [root.resolve() for root in roots]
    unique = list(dict.fromkeys(resolved))
    names: dict[Path, str] = {}
    for depth in range(1, max(len(p.parts) for p in unique) + 1):
        names = {p: "/".join(p.parts[-depth:]) for p in unique}
        if len(set(names.values())) == len(unique):
            break
    return [names[p] for p in resolved]


# ----------------------------------------------------------------------------------------------------
# Folding seeds into configurations
# ----------------------------------------------------------------------------------------------------


def group_configs(runs: Iterable[RunRecord], metric: str, mode: str) -> list[ConfigSummary]:
    """Configurations ranked by the mean best `metric` (`mode` max or min), with paired-by-seed wins vs #1."""
    runs = list(runs)
    classes: list[str] = []
    for r in runs:
        for cls in r.per_class.get("dice", {}):
            if cls not in classes:
                classes.append(cls)
    by_label: dict[str, list[RunRecord]] = {}
    for r in runs:
        by_label.setdefault(r.config, []).append(r)
    rows = [ConfigSummary(label, rs, metric, mode, classes) for label, rs in by_label.items()]

    sign = -1.0 if mode == "max" else 1.0
    rows.sort(key=lambda c: (c.score is None, sign * c.score if c.score is not None else 0.0, c.label))
    for i, row in enumerate(rows, start=1):
        row.rank = i
    if rows and rows[0].score is not None:
        top = rows[0].per_seed(metric)
        for row in rows[1:]:
            mine = row.per_seed(metric)
            shared = sorted(set(mine) & set(top))
            row.shared_seeds = len(shared)
            row.wins = sum(_better(mine[s], top[s], mode) for s in shared)
    return rows


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def _guess_mode(metric: str) -> str:
    return "min" if "loss" in metric else "max"


def _choose_metric(runs: list[RunRecord], metric: str | None, mode: str | None) -> tuple[str, str]:
    with_metrics = [r for r in runs if r.metrics]
    monitors = Counter((r.monitor, r.monitor_mode) for r in with_metrics)
    common_metric, common_mode = monitors.most_common(1)[0][0] if monitors else (DEFAULT_MONITOR, "max")
    if metric is None:
        metric = common_metric
    if mode is None:
        mode = common_mode if metric == common_metric else _guess_mode(metric)
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    counted = [r for r in runs if r.has_values]
    if counted and all(r.best_value(metric) is None for r in counted):
        known = sorted({k for r in counted for k in r.best if k != "epoch"})
        raise ValueError(f"metric {metric!r} is in no job's metrics.json 'best'; known: {', '.join(known)}")
    return metric, mode


# ----------------------------------------------------------------------------------------------------
# summarize
# ----------------------------------------------------------------------------------------------------


def summarize(
    paths: Sequence[Path | str] | Path | str,
    out_dir: Path | str | None = None,
    *,
    metric: str | None = None,
    mode: str | None = None,
    plots: bool = True,
) -> SweepSummary:
    """Read every job under `paths` and write summary.csv, summary.md, summary.png and curves.png.

    out_dir defaults to the first path. `metric` overrides the monitored metric (default: the jobs'
    `monitor`); `mode` ("max"/"min") defaults to the jobs' `monitor_mode`, or "min" for a metric named
    like a loss. `plots=False` skips the two PNGs (a quick look at a large sweep).
    """
    roots = [Path(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    runs = collect_runs(roots)
    metric, mode = _choose_metric(runs, metric, mode)
    rows = group_configs(runs, metric, mode)
    out = Path(out_dir) if out_dir is not None else roots[0]
    out.mkdir(parents=True, exist_ok=True)

    csv_path = out / "summary.csv"
    md_path = out / "summary.md"
    png_path = out / "summary.png"
    curves_path = out / "curves.png"
    write_csv(runs, csv_path, metric)
    markdown = render_markdown(runs, rows, metric, mode, roots)
    md_path.write_text(markdown)
    if plots:
        plot_summary(rows, metric, mode, png_path)
        plot_curves(rows, curves_path)
    return SweepSummary(runs, rows, metric, mode, markdown, csv_path, md_path, png_path, curves_path, plots)


# ----------------------------------------------------------------------------------------------------
# summary.csv: one row per job
# ----------------------------------------------------------------------------------------------------

_CSV_FIXED = [
    "sweep",
    "job",
    "config",
    "seed",
    "status",
    "error",
    "overrides",
    "loss",
    "model",
    "encoder",
    "dataset",
    "monitor",
    "monitor_mode",
    "monitor_value",
    "epochs_completed",
    "max_epochs",
]


def write_csv(runs: list[RunRecord], path: Path, metric: str) -> None:
    """One row per job: identity, overrides (`override:<key>` columns), best, final, per class, timing."""
    rows = [_csv_row(r, metric) for r in runs]
    columns = list(_CSV_FIXED)
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    # Group the dynamic columns: overrides, best, final, per class, timing (each in first-seen order).
    order = ("override:", "best/", "final/", "per_class/", "timing/")
    dynamic = [c for c in columns if c not in _CSV_FIXED]
    dynamic.sort(key=lambda c: next((i for i, p in enumerate(order) if c.startswith(p)), len(order)))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_CSV_FIXED + dynamic, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _csv_row(r: RunRecord, metric: str) -> dict[str, Any]:
    m = r.metrics
    row: dict[str, Any] = {
        "sweep": r.sweep_name,
        "job": r.job,
        "config": r.config,
        "seed": r.seed,
        "status": r.status,
        "error": r.error or "",
        "overrides": ",".join(r.overrides),
        "loss": m.get("loss"),
        "model": m.get("model"),
        "encoder": m.get("encoder"),
        "dataset": m.get("dataset"),
        "monitor": m.get("monitor"),
        "monitor_mode": m.get("monitor_mode"),
        "monitor_value": r.best_value(metric),
        "epochs_completed": m.get("epochs_completed"),
        "max_epochs": m.get("max_epochs"),
    }
    for item in r.overrides:
        key, _, value = item.partition("=")
        row[f"override:{key.lstrip('+')}"] = value
    for section in ("best", "final"):
        for key, value in (m.get(section) or {}).items():
            row[f"{section}/{key}"] = value
    for kind, values in r.per_class.items():
        for cls, value in (values or {}).items():
            row[f"per_class/{kind}/{cls}"] = value
    for key, value in (m.get("timing") or {}).items():
        row[f"timing/{key}"] = value
    return {k: ("" if v is None else v) for k, v in row.items()}


# ----------------------------------------------------------------------------------------------------
# summary.md: one row per configuration
# ----------------------------------------------------------------------------------------------------


def render_markdown(
    runs: list[RunRecord], rows: list[ConfigSummary], metric: str, mode: str, roots: Sequence[Path]
) -> str:
    counts = Counter(r.status for r in runs)
    status_text = ", ".join(
        f"{counts[s]} {s}" for s in ("completed", "running", "failed", "incomplete") if counts.get(s)
    )
    common = common_overrides(runs)
    lines = [
        "# Sweep summary",
        "",
        f"Sweep{'s' if len(roots) > 1 else ''}: {', '.join(f'`{p}`' for p in roots)}  ",
        f"Jobs: {len(runs)} ({status_text}); configurations: {len(rows)}  ",
    ]
    if common:
        lines.append(f"Overrides common to every job (left out of the labels): `{' '.join(common)}`  ")
    lines += [
        f"Ranked by `{metric}` ({'higher' if mode == 'max' else 'lower'} is better), each job's value at "
        "its best epoch; mean ± std over seeds (std with ddof=1; `(n=1)` where one seed).",
        "",
        markdown_table(rows, metric),
        "",
        f"*beats #1* = k/n: on k of the n seeds it shares with #1, this configuration's best `{metric}` is "
        "better than #1's (paired by seed). 0/n: #1 wins on every seed; k near n/2: the gap is within "
        f"seed-to-seed noise. Per-class Dice: mean over seeds at each job's best epoch; {DASH} = the class "
        "is absent from target and prediction in every seed (NaN, left out of the mean).",
    ]
    monitors = sorted({r.monitor for r in runs if r.metrics})
    if len(monitors) > 1:
        lines += [
            "",
            f"Note: the jobs monitor different metrics ({', '.join(monitors)}); all ranked by `{metric}`.",
        ]
    policies = {str(r.metrics["empty_class_policy"]) for r in runs if r.metrics.get("empty_class_policy")}
    if len(policies) == 1:
        lines += ["", f"Empty-class policy: {policies.pop()}"]

    running = [r for r in runs if r.status == "running"]
    if running:
        lines += ["", "## Running jobs (counted with their current best)", ""]
        lines += ["| job | configuration | seed | epochs | current best |", "|---|---|---|---|---|"]
        for r in running:
            epochs = f"{r.metrics.get('epochs_completed', '?')} of {r.metrics.get('max_epochs', '?')}"
            lines.append(
                f"| {_md(r.job)} | {_md(r.config)} | {_fmt_seed(r.seed)} | {epochs} "
                f"| {_fmt(r.best_value(metric))} |"
            )
    failed = [r for r in runs if r.status == "failed"]
    if failed:
        lines += ["", "## Failed jobs", ""]
        lines += ["| job | configuration | seed | epochs | error |", "|---|---|---|---|---|"]
        for r in failed:
            epochs = f"{r.metrics.get('epochs_completed', '?')} of {r.metrics.get('max_epochs', '?')}"
            lines.append(
                f"| {_md(r.job)} | {_md(r.config)} | {_fmt_seed(r.seed)} | {epochs} "
                f"| {_md(r.error or 'no error recorded')} |"
            )
    incomplete = [r for r in runs if r.status == "incomplete"]
    if incomplete:
        lines += ["", "## Missing/incomplete jobs", ""]
        lines += ["| job | configuration | seed | reason |", "|---|---|---|---|"]
        for r in incomplete:
            lines.append(f"| {_md(r.job)} | {_md(r.config)} | {_fmt_seed(r.seed)} | {_md(r.error or '')} |")
    return "\n".join(lines) + "\n"


def markdown_table(rows: list[ConfigSummary], metric: str) -> str:
    """The ranking table alone (what the CLI prints)."""
    classes = rows[0].classes if rows else []
    metrics = ["val/dice", "val/iou"] + ([metric] if metric not in ("val/dice", "val/iou") else [])
    header = (
        ["#", "configuration", "seeds"]
        + metrics
        + [f"dice {c}" for c in classes]
        + ["epochs to best", "train time", "beats #1", "status"]
    )
    align = ["---:", "---"] + ["---:"] * (len(header) - 3) + ["---"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for row in rows:
        cells = [str(row.rank), _md(row.label), str(row.seeds)]
        cells += [_mean_std(row, m) for m in metrics]
        cells += [_fmt(row.class_mean("dice", c)) for c in classes]
        epochs = row.field_mean("best", "epoch")
        cells.append(DASH if epochs is None else f"{epochs:.1f}".removesuffix(".0"))
        cells.append(_fmt_seconds(row.field_mean("timing", "train_s")))
        if row.rank == 1:
            cells.append("ref")
        elif row.shared_seeds:
            cells.append(f"{row.wins}/{row.shared_seeds}")
        else:
            cells.append(DASH)
        cells.append(row.status)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_std(row: ConfigSummary, metric: str) -> str:
    mean = row.mean(metric)
    if mean is None:
        return DASH
    std = row.std(metric)
    return f"{mean:.3f} (n=1)" if std is None else f"{mean:.3f} ± {std:.3f}"


def _fmt(value: float | None, digits: int = 3) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _fmt_seed(seed: int | str | None) -> str:
    return DASH if seed is None else str(seed)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ----------------------------------------------------------------------------------------------------
# Plots (matplotlib's object API: no pyplot state, Agg canvas)
# ----------------------------------------------------------------------------------------------------


def plot_summary(rows: list[ConfigSummary], metric: str, mode: str, path: Path) -> None:
    """Left: val Dice and IoU per configuration (bars = mean, error bars = std, dots = seeds), rank order.
    Right: per-class Dice heat map, same row order."""
    from matplotlib.figure import Figure

    labels = [f"#{r.rank} {_short(r.label)}" for r in rows]
    classes = rows[0].classes if rows else []
    n = max(len(rows), 1)
    height = 1.6 + 0.42 * n
    width_ratios = [3.0, max(1.2, 0.55 * len(classes))] if classes else [1.0]
    fig = Figure(figsize=(6.5 + 1.1 * sum(width_ratios), height), layout="constrained")
    axes = fig.subplots(1, len(width_ratios), width_ratios=width_ratios, squeeze=False)[0]

    ax = axes[0]
    ys = list(range(len(rows)))
    bar_h = 0.38
    for offset, key, color in ((-bar_h / 2, "val/dice", "tab:blue"), (bar_h / 2, "val/iou", "tab:orange")):
        means = [r.mean(key) for r in rows]
        stds = [r.std(key) or 0.0 for r in rows]
        yy = [y + offset for y in ys]
        ax.barh(
            yy,
            [m if m is not None else 0.0 for m in means],
            height=bar_h,
            xerr=stds,
            color=color,
            alpha=0.75,
            capsize=3,
            label=key,
        )
        for y, r in zip(yy, rows, strict=True):
            vals = r.values(key)
            ax.plot(vals, [y] * len(vals), "k.", markersize=4, zorder=3)
    for y, r in zip(ys, rows, strict=True):
        if r.score is None and not r.values("val/dice"):
            ax.text(0.01, y, f"no value: {r.status}", va="center", fontsize=8, color="gray")
    ax.set_yticks(ys, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("best-epoch value (bar: mean over seeds, line: ± std, dots: seeds)")
    arrow = "higher" if mode == "max" else "lower"
    ax.set_title(f"ranked by {metric} ({arrow} is better)", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)

    if classes:
        import numpy as np

        hm = axes[1]
        grid = np.array(
            [[np.nan if (v := r.class_mean("dice", c)) is None else v for c in classes] for r in rows],
            dtype=float,
        ).reshape(len(rows), len(classes))
        cmap = _viridis_with_gray()
        image = hm.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
        hm.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
        hm.set_yticks(ys, [f"#{r.rank}" for r in rows], fontsize=8)
        if grid.size <= 400:
            for (i, j), v in np.ndenumerate(grid):
                text = DASH if math.isnan(v) else f"{v:.2f}"
                hm.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if math.isnan(v) or v > 0.55 else "white",
                )
        hm.set_title("per-class Dice (mean over seeds)", fontsize=10)
        fig.colorbar(image, ax=hm, fraction=0.08, pad=0.02)
    fig.savefig(path, dpi=110)


def plot_curves(rows: list[ConfigSummary], path: Path) -> None:
    """Validation Dice per epoch: one line per configuration (mean over seeds), band = min..max over seeds."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    cmap = _colors(len(rows))
    drawn = 0
    for row, color in zip(rows, cmap, strict=True):
        per_epoch: dict[float, list[float]] = {}
        for r in row.counted:
            for h in r.history():
                if "val/dice" in h:
                    per_epoch.setdefault(h["epoch"], []).append(h["val/dice"])
        if not per_epoch:
            continue
        epochs = sorted(per_epoch)
        means = [statistics.mean(per_epoch[e]) for e in epochs]
        ax.plot(
            epochs,
            means,
            marker="o",
            markersize=3,
            color=color,
            label=f"#{row.rank} {_short(row.label)} (n={row.seeds})",
        )
        if any(len(per_epoch[e]) > 1 for e in epochs):
            ax.fill_between(
                epochs,
                [min(per_epoch[e]) for e in epochs],
                [max(per_epoch[e]) for e in epochs],
                color=color,
                alpha=0.15,
                linewidth=0,
            )
        drawn += 1
    if not drawn:
        ax.text(
            0.5, 0.5, "no history.csv with val/dice found", ha="center", va="center", transform=ax.transAxes
        )
    else:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("val/dice")
    ax.set_title("validation Dice per epoch (line: mean over seeds, band: min..max)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _viridis_with_gray() -> Any:
    from matplotlib import colormaps

    return colormaps["viridis"].with_extremes(bad="0.85")


def _short(label: str, limit: int = 48) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


# ----------------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
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
