"""The ``hydra/sweeper=halving`` config (registered in Hydra's ConfigStore when Hydra scans its plugins)."""

from dataclasses import dataclass, field
from typing import Dict, List, Optional  # noqa: UP035 - OmegaConf structured configs need typing's generics

from hydra.core.config_store import ConfigStore


@dataclass
class HalvingSweeperConf:
    _target_: str = "hydra_plugins.segtrain_halving.halving_sweeper.HalvingSweeper"
    eta: float = 3.0  # each rung trains eta times longer; after rung r the grid's top 1/eta^(r+1) may go on
    b0: int = 1  # epochs of the first rung
    min_cases: int = 10  # never cut on fewer paired validation cases
    min_gap: float = 0.02  # a significance cut needs the leader ahead by more than this (metric units)
    alpha: float = 0.05  # family-wise level of the verdict's "worse than the rung's leader" (seeds and cases)
    metric: str = "dice"  # per-case metric of per_case.csv: dice, iou, hd95, nsd, cldice
    # null: after rung r at most the grid's top 1/eta^(r+1) go on. A share (e.g. 0.35): the budget is that share
    # of the full grid's epochs, and what the test does not separate goes on as far as it allows
    max_share: Optional[float] = None  # noqa: UP045
    # the grid, as for the basic sweeper: {key: "v1,v2"}; command-line sweeps replace a key's values
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP045
    # keys whose values are replicates of one configuration (kept together, averaged per case)
    replicate_keys: List[str] = field(default_factory=lambda: ["seed", "dataset.fold"])  # noqa: UP006
    fold_key: str = "dataset.fold"  # of the replicate keys, the k-fold CV fold (pooled, not a seed)
    epochs_key: str = "trainer.max_epochs"  # the full budget, read from each job's config
    stop_key: str = "job.stop_at_epoch"  # set per rung; must be left out of the job directory name


ConfigStore.instance().store(group="hydra/sweeper", name="halving", node=HalvingSweeperConf, provider="segtrain")


@dataclass
class FairSweeperConf:
    """``hydra/sweeper=fair`` (experiment=fair_loss_sweep): each loss tuned in its own space with one budget."""

    _target_: str = "hydra_plugins.segtrain_halving.fair_sweeper.FairSweeper"
    eta: float = 3.0
    b0: int = 1
    min_cases: int = 10
    min_gap: float = 0.02
    alpha: float = 0.05
    metric: str = "dice"
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP045 - the losses (group_key) and the seeds
    replicate_keys: List[str] = field(default_factory=lambda: ["seed", "dataset.fold"])  # noqa: UP006
    fold_key: str = "dataset.fold"
    epochs_key: str = "trainer.max_epochs"
    stop_key: str = "job.stop_at_epoch"
    group_key: str = "loss"  # what is compared; each of its options brings its own search space
    space_key: str = "search"  # under group_key: the option's space (segtrain.losses.search)
    # knobs every loss is tuned over besides its own, as sweeps: {optimizer.lr: "1e-3,3e-3,1e-2"}
    shared: Optional[Dict[str, str]] = field(default_factory=dict)  # noqa: UP006, UP045
    budget: float = 2.0  # each loss's epochs, in units of its defaults-only cost (seeds x max_epochs)
    compare_defaults: bool = True  # train each loss's defaults to the end too, for the verdict at the defaults


ConfigStore.instance().store(group="hydra/sweeper", name="fair", node=FairSweeperConf, provider="segtrain")
