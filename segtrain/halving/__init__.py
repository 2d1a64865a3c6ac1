"""Successive halving over a sweep's grid (``hydra/sweeper=halving``): short rungs for every configuration,
the ones the verdict calls worse than the leader (seeds and cases, segtrain.verdict) or outside the
budget (after rung r, the grid's top 1/eta^(r+1)) stopped, the rest trained on from their last.pt to eta times
the epochs, the last rung to max_epochs.

    schedule.py   rung epochs from b0, eta, max_epochs
    cut.py        a rung's decision from its per-case validation records
    jobs.py       whether a job finished a rung; its records (per_case.csv val rows, the report's case rule)
    run.py        the rung loop and halving.json (crash-resumable)
    replay.py     the same decisions replayed on a full grid's records at every rung (rules compared, no training)

Plain Python; the Hydra glue is hydra_plugins/segtrain_halving.
"""

from segtrain.halving.cut import Elimination, RungDecision, decide, keep_count
from segtrain.halving.jobs import Job, finished_rung, rung_records
from segtrain.halving.run import HalvingSettings, configurations, successive_halving
from segtrain.halving.schedule import rung_epochs

__all__ = [
    "Elimination",
    "HalvingSettings",
    "Job",
    "RungDecision",
    "configurations",
    "decide",
    "finished_rung",
    "keep_count",
    "rung_epochs",
    "rung_records",
    "successive_halving",
]
