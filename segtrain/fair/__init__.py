"""The fair loss sweep (``experiment=fair_loss_sweep``): each loss tuned in its own search space with the same
epoch budget, its setting selected on validation, the selected settings compared on held-out cases.

    sweep.py   the procedure and fair.json (plain Python; the Hydra glue is hydra/sweeper=fair)

Each loss's space: ``search`` in its configs/loss file (segtrain.losses.search). The report:
segtrain.report.fair.
"""

from segtrain.fair.sweep import FairSettings, LossGrid, fair_sweep

__all__ = ["FairSettings", "LossGrid", "fair_sweep"]
