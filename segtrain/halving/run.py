"""Successive halving over a grid of configurations, rung by rung, recorded in ``<sweep dir>/halving.json``.

Plain Python: the Hydra sweeper (hydra_plugins/segtrain_halving) turns the command line into ``Job``s and
passes ``launch(jobs, epochs)``, which trains those jobs to ``epochs`` (one ``launcher.launch`` call, so any
Hydra launcher works). Per rung: launch the jobs of the configurations alive that have not finished the rung
(a re-run after a crash skips the finished ones, and replays the rungs halving.json records as decided),
read their validation records, decide (cut.py), write halving.json.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from segtrain.halving.cut import cheapest_share, decide, rung_keep
from segtrain.halving.jobs import Job, epochs_done, finished_rung, rung_records
from segtrain.halving.schedule import rung_epochs
from segtrain.report.cases import CASE_METRICS, LOWER_IS_BETTER
from segtrain.report.halving import HALVING_FILE

log = logging.getLogger("segtrain")
ADDED_SETTINGS = {"max_share": None}  # settings added after the first version, with the value they had before


@dataclass
class HalvingSettings:
    eta: float = 3.0
    b0: int = 1
    max_epochs: int = 10
    min_cases: int = 10
    min_gap: float = 0.02  # a significance cut needs the leader ahead by more than this (metric units)
    alpha: float = 0.05
    metric: str = "dice"  # per-case metric of per_case.csv that ranks and tests the configurations
    max_share: float | None = None  # None: the grid's top 1/eta^(r+1) go on; else a share of the grid's epochs

    def check(self) -> list[int]:
        """The rung schedule; ValueError for bad settings (each names the key)."""
        if self.metric not in CASE_METRICS:
            raise ValueError(f"hydra.sweeper.metric must be one of {CASE_METRICS}, got {self.metric!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"hydra.sweeper.alpha must lie in (0, 1), got {self.alpha!r}")
        if isinstance(self.min_cases, bool) or not isinstance(self.min_cases, int) or self.min_cases < 1:
            raise ValueError(f"hydra.sweeper.min_cases must be an integer >= 1, got {self.min_cases!r}")
        if isinstance(self.min_gap, bool) or not isinstance(self.min_gap, int | float) or not self.min_gap >= 0:
            raise ValueError(f"hydra.sweeper.min_gap must be a number >= 0 (metric units), got {self.min_gap!r}")
        schedule = rung_epochs(self.b0, self.eta, self.max_epochs)
        share = self.max_share
        if share is not None and (isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1):
            raise ValueError(f"hydra.sweeper.max_share must be null or a share in (0, 1], got {self.max_share!r}")
        return schedule


def configurations(jobs: Sequence[Job]) -> list[str]:
    """The grid's configurations in first-seen order; a grid of one is an error (nothing to halve)."""
    configs = list(dict.fromkeys(j.config for j in jobs))
    if len(configs) < 2:
        raise ValueError(
            f"successive halving needs at least two configurations to choose between; the grid has "
            f"{len(configs)} ({configs[0] if configs else 'none'}) with {len(jobs)} jobs (seeds/folds). Sweep a "
            "setting (loss=dice,focal ...), or use the basic sweeper"
        )
    return configs


Launch = Callable[[list[Job], int], Mapping[Path, str] | None]


def successive_halving(
    jobs: Sequence[Job], settings: HalvingSettings, sweep_dir: Path, launch: Launch, state_path: Path | None = None
) -> dict[str, Any]:
    """Run (or continue) the halving sweep of ``jobs``; returns halving.json's content. ``launch(jobs, epochs)``
    trains ``jobs`` to ``epochs`` and returns {job dir: error} for the jobs that failed. ``state_path``: where
    the state goes (default ``<sweep_dir>/halving.json``; the fair sweep keeps one per loss)."""
    configs = configurations(jobs)
    schedule = settings.check()
    seeds = {j.seed for j in jobs}
    if len(seeds) < 2:
        log.warning("halving: one seed per configuration; nothing will be cut (never on a single seed)")
    per_config = max(Counter(j.config for j in jobs).values())  # a Cartesian grid: the same for every one
    cheapest = cheapest_share(schedule, len(configs))
    if settings.max_share is not None and settings.max_share < cheapest:
        raise ValueError(
            f"hydra.sweeper.max_share={settings.max_share:g} is below the cheapest halving of this grid "
            f"({cheapest:.3f}: every configuration to {schedule[0]} epochs, one to {schedule[-1]}); raise it, "
            "or lower b0"
        )
    path = Path(state_path) if state_path is not None else Path(sweep_dir) / HALVING_FILE
    state = _load_or_start(path, jobs, settings, schedule, configs)
    alive = list(configs)
    spent = 0  # the epochs the schedule has trained so far: each rung's alive jobs from the last rung's epochs
    for r, epochs in enumerate(schedule):
        spent += len(alive) * per_config * (epochs - (schedule[r - 1] if r else 0))
        if r < len(state["rungs"]):  # decided before a crash or in an earlier run: replay
            alive = list(state["rungs"][r]["survivors"])
            log.info("halving: rung %d (%d epochs) already decided: %d go on", r, epochs, len(alive))
            continue
        rung_jobs = [j for j in jobs if j.config in alive]
        todo = [j for j in rung_jobs if not finished_rung(j.path, epochs)]
        log.info(
            "halving: rung %d of %d, %d configurations x their jobs to %d epochs: %d to train, %d already there",
            r, len(schedule) - 1, len(alive), epochs, len(todo), len(rung_jobs) - len(todo),
        )  # fmt: skip
        errors = (launch(todo, epochs) or {}) if todo else {}
        before = schedule[r - 1] if r else 0
        trained = sum(max(0, min(epochs_done(j.path), epochs) - before) for j in rung_jobs)
        records, problems = rung_records(rung_jobs, Path(sweep_dir), epochs, settings.metric, errors)
        scored = {rec[0] for rec in records}
        failed = {c: "; ".join(problems.get(c, ["no records"])) for c in alive if c not in scored}
        decision = decide(
            records, alive, rung=r, epochs=epochs, alpha=settings.alpha,
            keep=rung_keep(schedule, r, len(configs), per_config, spent, settings.eta, settings.max_share),
            min_cases=settings.min_cases, min_gap=settings.min_gap,
            higher_is_better=settings.metric not in LOWER_IS_BETTER, failed=failed,
            cut=r < len(schedule) - 1,
        )  # fmt: skip
        rung = decision.to_dict()
        rung.update(launched=len(todo), skipped=len(rung_jobs) - len(todo), epochs_trained=trained)
        rung["problems"] = {c: p for c, p in problems.items() if p}
        state["rungs"].append(rung)
        alive = list(decision.survivors)
        for e in decision.eliminated:
            log.info("halving: rung %d stops %s (%s %s)", r, e.config, e.reason, e.detail)
        if decision.unseparated:
            log.warning(
                "halving: rung %d (%d epochs): the budget stopped %s, none significantly worse than the leader %s "
                "by more than min_gap=%g; the rung's ranking alone chose among them, and close rankings can still "
                "change. %s",
                r, epochs, ", ".join(decision.unseparated), decision.leader, settings.min_gap,
                "A larger b0 lets the data decide" if r == 0 else "A larger max_share keeps more of them",
            )  # fmt: skip
        _save(path, state)
    last = state["rungs"][-1]
    state.update(
        status="completed",
        winner=last["leader"],
        tie_set=last["tie_set"],
        epochs_trained=sum(r["epochs_trained"] for r in state["rungs"]),
        full_grid_epochs=len(jobs) * settings.max_epochs,
    )
    _save(path, state)
    log.info(
        "halving: winner %s, tie set %s; %d of the full grid's %d epochs",
        state["winner"], state["tie_set"], state["epochs_trained"], state["full_grid_epochs"],
    )  # fmt: skip
    return state


def _header(jobs: Sequence[Job], settings: HalvingSettings, schedule: list[int], configs: list[str]) -> dict:
    return {
        "settings": asdict(settings),
        "schedule": schedule,
        "configurations": configs,
        "jobs": [{"config": j.config, "seed": str(j.seed), "fold": j.fold, "dir": j.path.name} for j in jobs],
    }


def _load_or_start(path: Path, jobs, settings, schedule, configs) -> dict[str, Any]:
    header = _header(jobs, settings, schedule, configs)
    if path.is_file():
        old = json.loads(path.read_text())
        old["settings"] = {**ADDED_SETTINGS, **old.get("settings", {})}  # written before these settings existed
        diff = [k for k in header if old.get(k) != header[k]]
        if diff:
            raise ValueError(
                f"{path} records another halving sweep (it differs in {', '.join(diff)}); re-run the same command "
                "into this directory to continue it, or use a new hydra.sweep.dir"
            )
        old["rungs"] = [r for r in old.get("rungs", []) if r.get("survivors") is not None]
        return old
    return {**header, "status": "running", "rungs": []}


def _save(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=1, default=str) + "\n")
    os.replace(tmp, path)
