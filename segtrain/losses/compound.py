"""Weighted sums of registered losses: bce_dice, ce_dice, focal_dice, and the generic ``combo``.

Each part is built through the registry with the compound's ``mode`` and ``ignore_index``; its own
keyword arguments sit under its name (``focal: {gamma: 2}``). The inputs are checked once, then every
part computes on the same float32 logits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from inspect import Parameter, Signature
from typing import Any, ClassVar

from torch import Tensor, nn

from . import LOSSES, register_loss
from ._common import SIGMOID_MODES, LossInfo, SegmentationLoss


def check_weights(weights: Sequence[float], count: int, loss: str) -> list[float]:
    if isinstance(weights, str | bytes) or len(weights) != count:
        raise ValueError(f"{loss}: weights must be a list of {count} numbers, got {weights!r}.")
    out = []
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, int | float) or w < 0:
            raise ValueError(f"{loss}: weights must be non-negative numbers, got {weights!r}.")
        out.append(float(w))
    return out


def build_part(loss: str, name: str, mode: str, ignore_index: int | None, kwargs: Mapping[str, Any] | None) -> Any:
    """Build part ``name`` of compound ``loss`` through the registry, with the compound's mode."""
    kwargs = dict(kwargs or {})
    for key in ("mode", "ignore_index"):
        if key in kwargs:
            raise ValueError(f"{loss}: set {key} at the top of the loss config, not under its part {name!r}.")
    part = LOSSES.build(name, mode=mode, ignore_index=ignore_index, **kwargs)
    if not isinstance(part, SegmentationLoss):
        raise ValueError(f"{loss}: part {name!r} is not a segtrain loss.")
    return part


class WeightedSumLoss(SegmentationLoss):
    """``sum_i w_i L_i(logits, target)`` over registered parts.

    ``set_epoch(epoch, max_epochs)`` is forwarded to the parts that have it, and the extra inputs a part
    takes (``aux_inputs``, e.g. the boundary loss's ``distance``) go to that part.
    """

    def __init__(
        self, parts: Sequence[tuple[str, Mapping[str, Any] | None]], weights: Sequence[float], /, **base: Any
    ) -> None:
        """``parts`` and ``weights`` are positional-only: a subclass sets them, a config does not."""
        super().__init__(**base)  # mode, ignore_index
        self.weights = check_weights(weights, len(parts), self.name)
        self.parts = nn.ModuleList(
            build_part(self.name, name, self.mode, self.ignore_index, kwargs) for name, kwargs in parts
        )
        self.aux_inputs = tuple(dict.fromkeys(key for part in self.parts for key in part.aux_inputs))

    def compute(self, x: Tensor, target: Tensor, **aux: Tensor) -> Tensor:
        total = 0.0
        for weight, part in zip(self.weights, self.parts, strict=True):
            mine = {key: value for key, value in aux.items() if key in part.aux_inputs}
            total = total + weight * part.compute(x, target, **mine)
        return total

    def set_epoch(self, epoch: int, max_epochs: int) -> None:
        for part in self.parts:
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch, max_epochs)


class PairLoss(WeightedSumLoss):
    """``w_0 A + w_1 B``, A and B the registered losses named in ``pair``; each part's own keywords sit under its
    name (``focal_dice: {focal: {gamma: 3}, dice: {smooth: 1}}``). The default mode is the first of ``modes``.
    """

    pair: ClassVar[tuple[str, str]] = ("", "")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # the keywords a config may give, part names included: the registry checks configs against them
        keyword = partial(Parameter, kind=Parameter.KEYWORD_ONLY)
        cls.__signature__ = Signature(
            [
                keyword("mode", default=cls.modes[0], annotation=str),
                keyword("ignore_index", default=None, annotation=int | None),
                keyword("weights", default=(1.0, 1.0), annotation=Sequence[float]),
                *(keyword(part, default=None, annotation=Mapping[str, Any] | None) for part in cls.pair),
            ]
        )

    def __init__(self, *, weights: Sequence[float] = (1.0, 1.0), **kwargs: Any) -> None:
        kwargs.setdefault("mode", self.modes[0])
        parts = [(part, kwargs.pop(part, None)) for part in self.pair]
        super().__init__(parts, weights, **kwargs)


@register_loss("bce_dice")
class BCEDiceLoss(PairLoss):
    """``w_0 bce + w_1 dice``; with the defaults equals MONAI ``DiceCELoss(sigmoid=True, batch=True)``."""

    pair = ("bce", "dice")
    modes = SIGMOID_MODES
    info = LossInfo(formula="w_0 BCE + w_1 Dice loss", paper="-", use_when="binary segmentation: a robust default")


@register_loss("ce_dice")
class CEDiceLoss(PairLoss):
    """``w_0 ce + w_1 dice``; with the defaults equals MONAI ``DiceCELoss(batch=True)`` (softmax, one-hot)."""

    pair = ("ce", "dice")
    info = LossInfo(formula="w_0 CE + w_1 Dice loss", paper="-", use_when="multiclass: nnU-Net's default")


@register_loss("focal_dice")
class FocalDiceLoss(PairLoss):
    """``w_0 focal + w_1 dice``.

    Binary with alpha None equals MONAI ``DiceFocalLoss(sigmoid=True, batch=True)``.
    """

    pair = ("focal", "dice")
    info = LossInfo(
        formula="w_0 Focal + w_1 Dice loss", paper="-", use_when="imbalance at both the pixel and the region level"
    )


@register_loss("combo")
class ComboLoss(WeightedSumLoss):
    """Any weighted sum of registered losses.

    For example ``losses: [{name: ce, weight: 1.0}, {name: lovasz, weight: 0.5}]``.

    Each entry is ``{name: <registered loss>, weight: <number, default 1>, **that loss's kwargs}``; ``mode``
    and ``ignore_index`` are passed to every part.
    """

    info = LossInfo(
        formula="sum_i w_i L_i over the listed losses",
        paper="-",
        use_when="composing your own weighted sum in config, no code",
    )

    def __init__(self, *, losses: Sequence[Mapping[str, Any]] = (), **base: Any) -> None:
        if isinstance(losses, str | bytes | Mapping) or not losses:
            raise ValueError(
                "combo: losses must be a non-empty list of entries "
                f"{{name: <loss>, weight: <number>, ...kwargs}}, got {losses!r}."
            )
        parts, weights = [], []
        for entry in losses:
            if not isinstance(entry, Mapping) or "name" not in entry:
                raise ValueError(f"combo: every entry of losses needs a 'name' key, got {entry!r}.")
            kwargs = {k: v for k, v in entry.items() if k not in ("name", "weight")}
            parts.append((entry["name"], kwargs))
            weights.append(entry.get("weight", 1.0))
        super().__init__(parts, weights, **base)
