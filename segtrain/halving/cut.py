"""Which configurations a rung of successive halving stops, from the rung's per-case validation records.

1. The verdict (segtrain.verdict.summarize: ranking by the mean over seeds and cases, each configuration
   called worse, equivalent or undecided against the leader with training noise and the case sample as
   sources of variance, Holm over all pairs at ``alpha``) on the configurations alive.
2. A configuration called worse than the leader by more than ``min_gap`` (its mean per-case score behind
   the leader's, in metric units) is stopped; an undecided one stays where the budget allows. A gap must be
   real and large enough to matter: early in training a case-level test finds small gaps that later rungs
   reverse (shapes at 2% foreground, 128 validation cases, the case-only test of earlier releases: after 3 of
   27 epochs every loss but the leader was significantly behind it, the nearest three by 0.012-0.016 Dice,
   and that leader was significantly behind at 9).
   The sweeper's default is 0.02; 0 cuts on significance alone.
3. Of the rest, at most the top n_r = max(1, floor(N / eta^(r+1))) go on after rung r, in rank order, N being
   the grid's configurations: the budget of successive halving (Jamieson & Talwalkar 2016; Li et al. 2018,
   Hyperband), fixed in advance. It caps the cost. It is not taken of the survivors, so configurations that
   significance cuts stopped at one rung do not also shrink the room of the next ones. With ``max_share``
   the budget is a share of the full grid's epochs instead (``budget_keep``): the rest go on as far as it
   allows, reserving room for one configuration to the end.
   A budget cut of a configuration the test did not separate from the leader (not significantly worse by
   more than ``min_gap``) rests on the rung's ranking alone: the decision lists such cuts (``unseparated``)
   and the sweep warns and reports them, since early rankings of near-tied losses can reverse by the end.
4. Never on thin evidence: with fewer than two seeds or fewer than ``min_cases`` paired cases nothing is cut
   at that rung (the reason is recorded). A configuration whose every job failed is stopped as failed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from segtrain.verdict import Verdict, summarize


@dataclass
class Elimination:
    """A configuration stopped at a rung: its mean per-case score there and the test against the leader."""

    config: str
    rung: int
    epochs: int
    reason: str  # "worse" (significantly worse than the leader), "budget" (outside the rung's budget), "failed"
    score: float | None = None
    p_holm: float | None = None
    p_raw: float | None = None
    diff_mean: float | None = None
    rank: int | None = None
    detail: str = ""


@dataclass
class RungDecision:
    rung: int
    epochs: int
    configs: list[str]
    survivors: list[str]
    eliminated: list[Elimination]
    leader: str | None
    tie_set: list[str]
    means: dict[str, float]
    n_cases: int
    n_seeds: int
    note: str = ""
    left_out: list[str] = field(default_factory=list)
    unseparated: list[str] = field(default_factory=list)  # budget cuts the test did not tell from the leader
    test: str = "seeds+cases"  # the verdict's calls (training noise and cases); "cases" in halving.json before it

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["eliminated"] = [asdict(e) for e in self.eliminated]
        return out


def keep_count(n_configs: int, eta: float, rung: int = 0) -> int:
    """How many configurations of a grid of ``n_configs`` may go on after rung ``rung``: floor(n / eta^(rung+1)),
    at least one."""
    return max(1, math.floor(n_configs / eta ** (rung + 1) + 1e-9))


def budget_keep(
    schedule: Sequence[int], rung: int, jobs_per_config: int, spent: int, max_share: float, n_configs: int
) -> int:
    """How many configurations may go on after rung ``rung`` under a fixed epoch budget: ``max_share`` of the
    full grid's epochs (``n_configs`` x ``jobs_per_config`` jobs x the last rung's epochs), of which ``spent``
    are trained. The room left after keeping one configuration to the end goes to the next rung: the cut rule
    keeps what the test does not separate, as far as the budget allows, and early rungs (where rankings are
    least reliable) get the room first. At least one."""
    nxt, last = schedule[rung + 1], schedule[-1]
    room = max_share * n_configs * jobs_per_config * last - spent - jobs_per_config * (last - nxt)
    return max(1, math.floor(room / (jobs_per_config * (nxt - schedule[rung])) + 1e-9))


def rung_keep(
    schedule: Sequence[int],
    rung: int,
    n_configs: int,
    jobs_per_config: int,
    spent: int,
    eta: float,
    max_share: float | None,
) -> int:
    """How many configurations may go on after ``rung`` (``spent`` epochs trained): the grid's top
    1/eta^(rung+1) (``keep_count``), or what ``max_share`` of the grid's epochs allows (``budget_keep``). After
    the last rung nothing is cut: all ``n_configs``."""
    if rung >= len(schedule) - 1:
        return n_configs
    if max_share is None:
        return keep_count(n_configs, eta, rung)
    return budget_keep(schedule, rung, jobs_per_config, spent, max_share, n_configs)


def cheapest_share(schedule: Sequence[int], n_configs: int) -> float:
    """The share of the full grid's epochs that halving spends at the least: every configuration to the first
    rung, one to the end."""
    return (n_configs * schedule[0] + schedule[-1] - schedule[0]) / (n_configs * schedule[-1])


def decide(
    records: Iterable[tuple[str, Hashable, Hashable, float]],
    configs: Sequence[str],
    *,
    rung: int,
    epochs: int,
    keep: int,
    alpha: float,
    min_cases: int,
    min_gap: float = 0.0,
    higher_is_better: bool = True,
    failed: Mapping[str, str] | None = None,
    cut: bool = True,
    cut_worse: bool = True,
    n_boot: int = 200,
) -> RungDecision:
    """The decision after rung ``rung`` (trained to ``epochs``) on (config, seed, case, value) ``records``.

    ``configs``: the configurations alive at this rung; ``keep``: how many may go on (``keep_count``);
    ``failed``: config -> error, for configurations none of whose jobs finished the rung; ``cut=False`` (the
    last rung) ranks and tests without stopping anything; ``cut_worse=False`` stops on the budget alone
    (plain successive halving, for comparison).
    """
    failed = dict(failed or {})
    records = list(records)
    eliminated = [
        Elimination(c, rung, epochs, "failed", detail=failed[c]) for c in configs if c in failed
    ]  # fmt: skip
    alive = [c for c in configs if c not in failed]
    if not alive:
        raise ValueError(f"every configuration failed at rung {rung} ({epochs} epochs): " + "; ".join(
            f"{c}: {e}" for c, e in failed.items()))  # fmt: skip
    verdict = _verdict([r for r in records if r[0] in alive], alive, higher_is_better, alpha, n_boot)
    if verdict is None:  # a single configuration left: nothing to compare
        return RungDecision(rung, epochs, list(configs), alive, eliminated, alive[0], alive, {}, 0, 0,
                            note="one configuration left")  # fmt: skip
    for f in verdict.failed_configs:  # alive but no usable records (e.g. every case undefined)
        eliminated.append(Elimination(f.config, rung, epochs, "failed", detail=f.reason))
    ranked = list(verdict.ranking)
    n_seeds = len({s for seeds in verdict.seeds.values() for s in seeds})
    left_out = [f"{d.case}: {d.reason}" for d in verdict.dropped_cases] + [
        f"{s.config} seed {s.seed}: {s.reason}" for s in verdict.failed_seeds
    ]
    decision = RungDecision(
        rung=rung,
        epochs=epochs,
        configs=list(configs),
        survivors=ranked,
        eliminated=eliminated,
        leader=verdict.leader,
        tie_set=list(verdict.tie_set),
        means=dict(verdict.means),
        n_cases=verdict.n_cases,
        n_seeds=n_seeds,
        left_out=left_out,
    )
    if not cut:
        return decision
    if n_seeds < 2:
        decision.note = f"nothing cut: {n_seeds} seed (successive halving never cuts on a single seed)"
        return decision
    if verdict.n_cases < min_cases:
        decision.note = f"nothing cut: {verdict.n_cases} paired cases < min_cases={min_cases}"
        return decision
    rank = {c: i + 1 for i, c in enumerate(ranked)}
    comps = {c.config: c for c in verdict.comparisons}
    kept: list[str] = []
    for c in ranked:
        comp = comps.get(c)
        if cut_worse and comp is not None and comp.worse and comp.diff_mean > min_gap:
            why = f"worse (Holm p <= {alpha})" + (
                f", {comp.diff_mean:.3g} behind > min_gap {min_gap:g}" if min_gap else ""
            )
            eliminated.append(_elimination(c, rung, epochs, "worse", verdict, comp, rank[c], why))
        else:
            kept.append(c)
    for c in kept[keep:]:
        eliminated.append(
            _elimination(c, rung, epochs, "budget", verdict, comps[c], rank[c], f"{keep} go on after rung {rung}")
        )  # fmt: skip
    decision.survivors = kept[:keep]
    decision.unseparated = [c for c in kept[keep:] if not (comps[c].worse and comps[c].diff_mean > min_gap)]
    return decision


def _elimination(config, rung, epochs, reason, verdict: Verdict, comp, rank, detail) -> Elimination:
    return Elimination(
        config, rung, epochs, reason, score=verdict.means[config], p_holm=comp.p_holm, p_raw=comp.p_raw,
        diff_mean=comp.diff_mean, rank=rank, detail=detail,
    )  # fmt: skip


def _verdict(records: list, alive: list[str], higher_is_better: bool, alpha: float, n_boot: int) -> Verdict | None:
    if len(alive) < 2:
        return None
    return summarize(records, higher_is_better=higher_is_better, alpha=alpha, n_boot=n_boot, configs=alive)
