"""Successive halving replayed on a full grid's records: which configurations each rung would stop, and
what that would cost, without training anything.

A full grid trained in stages (``job.stop_at_epoch`` at each rung's epochs, then to the end; resume is
bit-identical, so it is the same grid) leaves every configuration's per-case validation records at every rung.
Halving's decisions depend only on those records, so replaying them gives exactly the survivors a real halving
sweep would keep (``benchmarks/bench_halving.py`` checks the two agree), and lets several cut rules be compared on
the same trainings.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from segtrain.halving.cut import decide, rung_keep

Record = tuple[str, Hashable, Hashable, float]


def replay(
    records_at: Mapping[int, Sequence[Record]],
    schedule: Sequence[int],
    jobs_per_config: Mapping[str, int],
    *,
    eta: float,
    alpha: float,
    min_cases: int,
    min_gap: float = 0.0,
    higher_is_better: bool = True,
    keep: Callable[[int, int], int] | None = None,
    test_from_rung: int = 0,
    max_share: float | None = None,
) -> dict[str, Any]:
    """Halving over ``schedule`` (rung epochs, the last the full budget) on ``records_at[epochs]``, the
    (config, seed, case, value) records of every configuration at each rung's epochs.

    ``jobs_per_config``: the grid's configurations (in grid order) and their jobs (seeds x folds), for the cost.
    ``keep(rung, n_alive)``: how many may go on after a rung (default: segtrain's rule, ``keep_count`` of the
    grid, or what ``max_share`` allows: ``cut.rung_keep``); significance cuts apply from rung ``test_from_rung`` on (0:
    every rung, as the sweeper does).
    Returns the rungs' decisions, the survivors after each, the winner and tie set of the last rung, and the
    epochs trained against the full grid's.
    """
    configs = list(jobs_per_config)
    missing = [e for e in schedule if e not in records_at]
    if missing:
        raise ValueError(f"no records at {missing} epochs (have {sorted(records_at)}); train the grid in stages there")
    per_config = max(jobs_per_config.values())
    alive, rungs, trained, before = list(configs), [], 0, 0
    for r, epochs in enumerate(schedule):
        trained += sum(jobs_per_config[c] for c in alive) * (epochs - before)
        before = epochs
        if keep is not None and r < len(schedule) - 1:
            n_keep = keep(r, len(alive))
        else:
            n_keep = rung_keep(schedule, r, len(configs), per_config, trained, eta, max_share)
        decision = decide(
            [rec for rec in records_at[epochs] if rec[0] in alive], alive, rung=r, epochs=epochs,
            keep=n_keep, alpha=alpha, min_cases=min_cases, min_gap=min_gap,
            higher_is_better=higher_is_better,
            cut=r < len(schedule) - 1, cut_worse=r >= test_from_rung,
        )  # fmt: skip
        rungs.append(decision)
        alive = list(decision.survivors)
    last = rungs[-1]
    return {
        "schedule": list(schedule),
        "rungs": [d.to_dict() for d in rungs],
        "survivors_per_rung": [len(d.survivors) for d in rungs],
        "winner": last.leader,
        "tie_set": list(last.tie_set),
        "epochs_trained": trained,
        "full_grid_epochs": sum(jobs_per_config.values()) * schedule[-1],
    }


def cost_to_keep(
    records_at: Mapping[int, Sequence[Record]],
    schedule: Sequence[int],
    jobs_per_config: Mapping[str, int],
    config: str,
    *,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """The cheapest halving by the rungs' rankings that keeps ``config`` to the end: after each rung exactly
    the configurations ranked at or above it go on. No rule that cuts by a rung's ranking holds ``config`` for
    fewer epochs; its survivors per rung show how far back ``config`` ranked early."""
    if config not in jobs_per_config:
        raise ValueError(f"{config!r} is not among the grid's configurations {list(jobs_per_config)}")
    alive, alive_per_rung, trained, before = list(jobs_per_config), [], 0, 0
    for r, epochs in enumerate(schedule):
        trained += sum(jobs_per_config[c] for c in alive) * (epochs - before)
        before = epochs
        if r < len(schedule) - 1:
            ranked = decide(
                [rec for rec in records_at[epochs] if rec[0] in alive], alive, rung=r, epochs=epochs,
                keep=len(alive), alpha=0.05, min_cases=0, higher_is_better=higher_is_better, cut=False,
            ).survivors  # fmt: skip
            alive = ranked[: ranked.index(config) + 1]
        alive_per_rung.append(len(alive))
    return {
        "config": config,
        "survivors_per_rung": alive_per_rung,
        "epochs_trained": trained,
        "full_grid_epochs": sum(jobs_per_config.values()) * schedule[-1],
    }
