"""Result dataclasses of a verdict, each with ``to_dict()`` for JSON."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from segtrain.verdict.compare import Components
from segtrain.verdict.table import DroppedCase, FailedConfig, FailedSeed, IncompleteSeed

__all__ = ["CALLS", "Comparison", "RankStability", "Verdict"]


def _json(x: Any) -> Any:
    """NaN/inf become None (JSON has neither); numpy scalars become Python ones; case/seed ids that are not
    JSON scalars become their str."""
    if isinstance(x, dict):
        return {str(k): _json(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if x is None or isinstance(x, bool | int | float | str):
        return x
    return str(x)


CALLS = ("leader", "worse", "equivalent", "undecided")


@dataclass(frozen=True)
class Comparison:
    """The leader against one other configuration.

    Differences are "how much worse the other is", in metric units: leader - other when higher is better,
    other - leader when lower is better, so positive = worse. ``diff_mean``: the difference of the two
    configurations' means over seeds and cases; ``ci_low``/``ci_high``: its 95% t interval (Satterthwaite
    ``df``) from ``var_seed`` (training noise: each configuration's variance over seeds of a seed's mean score,
    over its number of seeds) + ``var_case`` (the case sample). ``p_raw``: the two-sided p-value of the pair;
    ``p_holm``: Holm-adjusted over all pairs of configurations. ``call``: "worse" (p_holm <= alpha),
    "equivalent" (the interval inside +-rope) or "undecided"; for an undecided pair ``seeds_needed`` seeds per
    configuration would likely decide it (``seeds_needed_for``: to which call, or why no number of seeds
    would). ``diff_median``/``n_nonzero``: the median and the number of non-zero per-case differences of the
    seed-averaged values.
    """

    config: str
    mean: float
    diff_mean: float
    diff_median: float
    ci_low: float
    ci_high: float
    p_raw: float
    p_holm: float
    call: str
    se: float
    df: float
    var_seed: float
    var_case: float
    n_nonzero: int
    seeds_needed: int | None = None
    seeds_needed_for: str = ""

    @property
    def worse(self) -> bool:
        return self.call == "worse"

    def to_dict(self) -> dict[str, Any]:
        return _json({**asdict(self), "worse": self.worse})


@dataclass(frozen=True)
class RankStability:
    """A configuration's rank on all cases and over bootstrap resamples (of the cases, and of each
    configuration's seeds unless the verdict is case_only): ``p_first`` = P(rank 1),
    ``rank_low``/``rank_high`` = 2.5th/97.5th percentiles of its rank, ``rank_freq[r - 1]`` = P(rank r)."""

    config: str
    rank: int
    mean: float
    p_first: float
    rank_low: int
    rank_high: int
    rank_freq: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return _json(asdict(self))


@dataclass
class Verdict:
    """Which configuration wins on one metric, and whether the difference is real.

    ``ranking``: the ranked configurations, best first; ``tie_set``: the leader and every configuration not
    called worse (equivalent or undecided); ``rope``: the region of practical equivalence in metric units;
    ``case_only``: the comparisons left training noise out (these models, not these configurations);
    ``components``: each configuration's variance components over its seeds; ``comparisons``: the leader
    against each other configuration, in rank order; ``stability``: one entry per configuration, in rank
    order; ``tau_median``/``tau_mean``: Kendall's tau between the full ranking and each resampled one.
    ``values`` (K x n, rank order) holds the per-case seed means.
    """

    higher_is_better: bool
    alpha: float
    rope: float
    case_only: bool
    n_boot: int
    seed: int
    ranking: tuple[str, ...]
    tie_set: tuple[str, ...]
    comparisons: tuple[Comparison, ...]
    stability: tuple[RankStability, ...]
    tau_median: float
    tau_mean: float
    cases: tuple[Hashable, ...]
    seeds: dict[str, tuple[Hashable, ...]]
    dropped_cases: list[DroppedCase] = field(default_factory=list)
    failed_seeds: list[FailedSeed] = field(default_factory=list)
    incomplete_seeds: list[IncompleteSeed] = field(default_factory=list)
    failed_configs: list[FailedConfig] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    components: dict[str, Components] = field(default_factory=dict)
    values: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False)

    @property
    def leader(self) -> str:
        return self.ranking[0]

    @property
    def n_cases(self) -> int:
        return len(self.cases)

    @property
    def means(self) -> dict[str, float]:
        return {s.config: s.mean for s in self.stability}

    @property
    def calls(self) -> dict[str, str]:
        """Every ranked configuration's call: "leader", "worse", "equivalent" or "undecided"."""
        return {self.leader: "leader", **{c.config: c.call for c in self.comparisons}}

    def comparison(self, config: str) -> Comparison:
        for c in self.comparisons:
            if c.config == config:
                return c
        raise KeyError(f"no comparison for {config!r}: the leader is {self.leader!r}, ranked {list(self.ranking)}")

    def to_dict(self, include_values: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "higher_is_better": self.higher_is_better,
            "alpha": self.alpha,
            "rope": self.rope,
            "case_only": self.case_only,
            "unit": "these trained models (case-level only)" if self.case_only else "configurations (seeds and cases)",
            "n_boot": self.n_boot,
            "seed": self.seed,
            "n_cases": self.n_cases,
            "leader": self.leader,
            "ranking": list(self.ranking),
            "tie_set": list(self.tie_set),
            "calls": self.calls,
            "components": {c: asdict(x) for c, x in self.components.items()},
            "comparisons": [c.to_dict() for c in self.comparisons],
            "stability": [s.to_dict() for s in self.stability],
            "tau_median": self.tau_median,
            "tau_mean": self.tau_mean,
            "seeds": {k: list(v) for k, v in self.seeds.items()},
            "dropped_cases": [asdict(d) for d in self.dropped_cases],
            "failed_seeds": [asdict(f) for f in self.failed_seeds],
            "incomplete_seeds": [asdict(i) for i in self.incomplete_seeds],
            "failed_configs": [asdict(f) for f in self.failed_configs],
            "notes": list(self.notes),
        }
        if include_values:
            out["cases"] = list(self.cases)
            out["values"] = self.values.tolist()
        return _json(out)
