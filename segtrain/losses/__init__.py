"""The loss catalogue: ``build_loss(name, **kwargs)`` -> ``loss_fn(logits, target)`` -> 0-dim tensor.

Every loss takes raw logits N x C x H x W (or N x C x D x H x W), a ``mode`` (multiclass, binary,
multilabel) and an ``ignore_index``; see ``_common`` for the shapes and docs/losses.md for the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import nn

from ..modes import BINARY, MODES, MULTICLASS, MULTILABEL
from ..registry import Registry

LOSSES = Registry("loss")


def register_loss(name: str, aliases: Iterable[str] = ()) -> Callable[[type], type]:
    """Class decorator: register a loss class under ``name`` (and ``aliases``), which becomes its ``name``."""

    def deco(cls: type) -> type:
        cls.name = name
        return LOSSES.register(name, aliases)(cls)

    return deco


# the family modules register themselves on import (they need LOSSES defined above)
from . import (  # noqa: E402, F401
    boundary,
    compound,
    distribution,
    hausdorff,
    lovasz,
    mcc,
    pixel,
    region,
    topology,
    unified_focal,
)
from ._common import LossInfo, SegmentationLoss, soft_sums  # noqa: E402


def build_loss(name: str, **kwargs: object) -> nn.Module:
    """Build a registered loss; unknown names list the known ones, unknown keywords the accepted ones."""
    return LOSSES.build(name, **kwargs)


def available_losses() -> list[str]:
    """Every registered name (aliases included), sorted."""
    return LOSSES.names()


def loss_table_markdown() -> str:
    """The README's loss table (name | modes | definition | paper | when), generated from the registered classes."""
    names_of: dict[type, list[str]] = {}
    for key in LOSSES.names():
        names_of.setdefault(LOSSES.get(key), []).append(key)
    rows = ["| loss | modes | definition | paper | reach for it when |", "|---|---|---|---|---|"]
    for cls in sorted(names_of, key=lambda c: c.name):
        aliases = [n for n in names_of[cls] if n != cls.name]
        label = f"`{cls.name}`" + (f" ({', '.join(f'`{a}`' for a in aliases)})" if aliases else "")
        info = cls.info
        rows.append(f"| {label} | {', '.join(cls.modes)} | {info.formula} | {info.paper} | {info.use_when} |")
    return "\n".join(rows) + "\n"


__all__ = [
    "BINARY",
    "LOSSES",
    "MODES",
    "MULTICLASS",
    "MULTILABEL",
    "LossInfo",
    "SegmentationLoss",
    "available_losses",
    "build_loss",
    "loss_table_markdown",
    "register_loss",
    "soft_sums",
]
