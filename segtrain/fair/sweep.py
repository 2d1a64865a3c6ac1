"""The fair loss sweep: every loss tuned inside its own search space with the same epoch budget, its setting
selected on validation, then compared with the others on held-out cases.

Per loss (in the order given), recorded in ``<sweep dir>/fair.json`` (crash-resumable):

1. **Tuning.** The loss's configurations (its search space x the shared knobs, e.g. ``optimizer.lr``), each
   with the sweep's seeds, get ``budget`` x (seeds x max_epochs) epochs: successive halving
   (segtrain.halving) with ``max_share = budget / n`` of its n configurations' full grid. A loss with fewer
   settings spends the same budget on fewer configurations, each trained further; a space small enough to
   train whole within the budget is trained whole. The halving ranks on the ``val`` rows of per_case.csv.
2. **Selection.** The last rung's leader on validation is the loss's setting. Its jobs ran to max_epochs
   with every seed, so they are the seeds the comparison uses. fair.json says ``selected`` once every loss
   has its setting: no held-out record is read before then.
3. **Defaults** (``compare_defaults``): each loss's configuration at its defaults is trained on to
   max_epochs where the halving stopped it (resuming its last.pt), so that the report can set the verdict at
   the defaults beside the verdict after tuning, from the same runs. It costs at most one defaults-only sweep
   more, and is counted apart.

The held-out verdict itself is the report's (segtrain.report.fair): it reads fair.json. Plain Python: the
Hydra sweeper (hydra_plugins/segtrain_halving, ``hydra/sweeper=fair``) builds the grids and passes
``launch(jobs, epochs)``.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from segtrain.halving import HalvingSettings, Job, finished_rung, successive_halving
from segtrain.halving.cut import cheapest_share
from segtrain.halving.jobs import epochs_done
from segtrain.halving.run import Launch
from segtrain.report.fair import FAIR_FILE

log = logging.getLogger("segtrain")


@dataclass
class LossGrid:
    """One loss's part of the sweep: the jobs of its configurations (``Job.config`` labels them), the label of
    its configuration at the defaults, and that configuration's jobs (among ``jobs`` when the defaults are a
    point of the space, else apart: tversky's defaults are dice's function and left out of its space)."""

    loss: str
    jobs: list[Job]
    defaults: str
    defaults_jobs: list[Job]
    space: list[dict[str, Any]]  # the settings tried: the loss's own and the shared knobs, one per configuration


@dataclass
class FairSettings:
    halving: HalvingSettings  # eta, b0, max_epochs, alpha, min_gap, metric (max_share is set per loss)
    budget: float = 2.0  # each loss's epochs, in units of its defaults-only cost (seeds x max_epochs)
    compare_defaults: bool = True

    def check(self) -> None:
        b = self.budget
        if isinstance(b, bool) or not isinstance(b, int | float) or not b >= 1:
            raise ValueError(
                f"hydra.sweeper.budget must be a number >= 1 (each loss's epochs in units of seeds x "
                f"max_epochs, its defaults-only cost), got {b!r}"
            )
        self.halving.check()


def fair_sweep(grids: Sequence[LossGrid], settings: FairSettings, sweep_dir: Path, launch: Launch) -> dict[str, Any]:
    """Run (or continue) the fair sweep of ``grids``; returns fair.json's content (module docstring)."""
    settings.check()
    if len({g.loss for g in grids}) != len(grids) or len(grids) < 2:
        raise ValueError(
            f"the fair sweep compares two or more different losses; got {[g.loss for g in grids]} (sweep loss=a,b,...)"
        )
    sweep_dir = Path(sweep_dir)
    path = sweep_dir / FAIR_FILE
    epochs = settings.halving.max_epochs
    fair_settings = {"budget": settings.budget, "compare_defaults": settings.compare_defaults}
    header = {"settings": {**asdict(settings.halving), **fair_settings}, "losses": [g.loss for g in grids]}
    for grid in grids:  # every loss's budget is checked before anything trains
        _share(grid, settings)
    state = _load_or_start(path, header)
    for grid in grids:
        entry = state["tuning"].get(grid.loss)
        if entry is None or entry.get("selected") is None:
            entry = _tune(grid, settings, sweep_dir, launch)
            state["tuning"][grid.loss] = entry
            _save(path, state)
        log.info("fair sweep: %s selected %s on val (%d of its %d epochs)", grid.loss, entry["selected"],
                 entry["spent_epochs"], entry["budget_epochs"])  # fmt: skip
    state["status"] = "selected"
    _save(path, state)
    if settings.compare_defaults:
        todo = [j for g in grids for j in g.defaults_jobs if not finished_rung(j.path, epochs)]
        before = {j.path: min(epochs_done(j.path), epochs) for j in todo}
        if todo:
            log.info("fair sweep: %d jobs of the losses' defaults trained on to %d epochs", len(todo), epochs)
            launch(todo, epochs)
        extra = sum(min(epochs_done(j.path), epochs) - before[j.path] for j in todo)
        state["defaults_epochs"] = state.get("defaults_epochs", 0) + extra
    state["status"] = "completed"
    state["tuning_epochs"] = sum(e["spent_epochs"] for e in state["tuning"].values())
    state["defaults_only_epochs"] = sum(e["seeds"] * epochs for e in state["tuning"].values())
    _save(path, state)
    return state


def _tune(grid: LossGrid, settings: FairSettings, sweep_dir: Path, launch: Launch) -> dict[str, Any]:
    """Tune one loss within its budget; its fair.json entry."""
    hs = settings.halving
    configs = list(dict.fromkeys(j.config for j in grid.jobs))
    per_config = Counter(j.config for j in grid.jobs)
    seeds = max(per_config.values())
    budget_epochs = round(settings.budget * seeds * hs.max_epochs)
    entry: dict[str, Any] = {
        "configs": configs,
        "space": grid.space,
        "seeds": seeds,
        "budget_epochs": budget_epochs,
        "defaults": grid.defaults,
        "defaults_jobs": [_job_entry(j) for j in grid.defaults_jobs],
    }
    if len(configs) == 1:  # nothing to choose: its one configuration, every seed to the end
        todo = [j for j in grid.jobs if not finished_rung(j.path, hs.max_epochs)]
        if todo:
            launch(todo, hs.max_epochs)
        entry.update(selected=configs[0], halving=None, spent_epochs=sum(epochs_done(j.path) for j in grid.jobs))
    else:
        share = _share(grid, settings)
        state_file = sweep_dir / "tuning" / f"{grid.loss}.json"
        halving = successive_halving(grid.jobs, replace(hs, max_share=share), sweep_dir, launch, state_path=state_file)
        entry.update(
            selected=halving["winner"], halving=str(state_file.relative_to(sweep_dir)),
            spent_epochs=halving["epochs_trained"], max_share=share,
        )  # fmt: skip
    entry["selected_jobs"] = [_job_entry(j) for j in grid.jobs if j.config == entry["selected"]]
    return entry


def _share(grid: LossGrid, settings: FairSettings) -> float:
    """The halving's ``max_share`` for ``grid``: its budget over its full grid's epochs (at most 1); ValueError
    when its configurations cannot be halved within the budget."""
    n = len({j.config for j in grid.jobs})
    share = min(1.0, settings.budget / n)
    if n == 1:
        return share
    schedule = settings.halving.check()
    cheapest = cheapest_share(schedule, n)
    if share < cheapest - 1e-12:
        raise ValueError(
            f"loss {grid.loss}: {n} configurations cannot be tuned within a budget of {settings.budget:g} x its "
            f"defaults-only epochs (halving needs at least {cheapest * n:.2f}: every configuration to {schedule[0]} "
            f"epochs, one to {schedule[-1]}); raise hydra.sweeper.budget, lower hydra.sweeper.b0, or shrink its "
            f"space (configs/loss/{grid.loss}.yaml search)"
        )
    return share


def _job_entry(job: Job) -> dict[str, Any]:
    return {"dir": job.path.name, "seed": str(job.seed), "fold": job.fold, "overrides": list(job.overrides)}


def _load_or_start(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    if path.is_file():
        old = json.loads(path.read_text())
        diff = [k for k in header if old.get(k) != header[k]]
        if diff:
            raise ValueError(
                f"{path} records another fair sweep (it differs in {', '.join(diff)}); re-run the same command into "
                "this directory to continue it, or use a new hydra.sweep.dir"
            )
        return old
    return {**header, "status": "tuning", "tuning": {}}


def _save(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=1, default=str) + "\n")
    os.replace(tmp, path)
