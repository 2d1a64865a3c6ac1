"""Folding seeds into configurations: mean +- std (ddof=1) per configuration, rank, paired-by-seed wins vs #1."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from .runs import DEFAULT_MONITOR, RunRecord, guess_mode, number


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
        """Counted jobs; with k-fold CV (jobs with a fold) the distinct seeds among them."""
        if any(r.fold is not None for r in self.runs):
            return len({r.seed for r in self.counted})
        return len(self.counted)

    @property
    def folds(self) -> int:
        """Distinct folds among the counted jobs (0 without k-fold CV)."""
        return len({r.fold for r in self.counted if r.fold is not None})

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
        vals = [number(r.per_class.get(kind, {}).get(cls)) for r in self.counted]
        vals = [v for v in vals if v is not None]
        return statistics.mean(vals) if vals else None

    def field_mean(self, section: str, key: str) -> float | None:
        vals = [number((r.metrics.get(section) or {}).get(key)) for r in self.counted]
        vals = [v for v in vals if v is not None]
        return statistics.mean(vals) if vals else None

    @property
    def status(self) -> str:
        counts = Counter(r.status for r in self.runs)
        done = counts.get("completed", 0)
        if done == len(self.runs):
            return "done"
        text = f"{done} of {len(self.runs)} done"
        extra = [f"{counts[s]} {s}" for s in ("running", "preempted", "failed", "incomplete") if counts.get(s)]
        return f"{text} ({', '.join(extra)})" if extra else text


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


def choose_metric(runs: list[RunRecord], metric: str | None, mode: str | None) -> tuple[str, str]:
    with_metrics = [r for r in runs if r.metrics]
    monitors = Counter((r.monitor, r.monitor_mode) for r in with_metrics)
    common_metric, common_mode = monitors.most_common(1)[0][0] if monitors else (DEFAULT_MONITOR, "max")
    if metric is None:
        metric = common_metric
    if mode is None:
        mode = common_mode if metric == common_metric else guess_mode(metric)
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    counted = [r for r in runs if r.has_values]
    if counted and all(r.best_value(metric) is None for r in counted):
        known = sorted({k for r in counted for k in r.best if k != "epoch"})
        raise ValueError(f"metric {metric!r} is in no job's metrics.json 'best'; known: {', '.join(known)}")
    return metric, mode
