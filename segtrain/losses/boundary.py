"""Boundary loss (Kervadec et al., MIDL 2019 / MedIA 2021) and its Dice compound with a ramped weight."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from segtrain.losses.target_maps import signed_distance_maps

from . import register_loss
from ._common import (
    MULTICLASS,
    LossInfo,
    SegmentationLoss,
    check_nonnegative,
    masked_mean,
    one_hot,
    probabilities,
    valid_mask,
)
from .compound import WeightedSumLoss


def boundary_loss(prob: Tensor, distance: Tensor, valid: Tensor | None) -> Tensor:
    """``mean_{pixels, classes} p_c(x) phi_c(x)``, phi the signed distance map of class c's target
    (Kervadec et al. 2019): negative inside the object, so the loss falls as probability mass moves in."""
    return masked_mean(prob * distance.to(prob), valid)


@register_loss("boundary")
class BoundaryLoss(SegmentationLoss):
    """Boundary loss (Kervadec et al., "Boundary loss for highly unbalanced segmentation", MIDL 2019).

    ``mean over pixels and classes of p_c(x) phi_c(x)`` with ``phi_c`` the signed Euclidean distance map of
    the target of class c (an exact Euclidean distance transform per image on the CPU, no gradient through it).
    It can be negative. The paper pairs it with a region loss whose weight it gradually takes over: see
    ``dice_boundary``.

    Args:
        include_background: keep channel 0 in multiclass mode (False, as the paper: foreground classes).
    """

    info = LossInfo(
        formula="mean_{x,c} p_c(x) phi_c(x), phi_c the signed distance map of the target",
        paper="Kervadec et al. 2019",
        use_when="thin or very unbalanced structures; pair it with a region loss",
    )

    def __init__(self, *, include_background: bool = False, **base: Any) -> None:
        super().__init__(**base)  # mode, ignore_index
        self.include_background = bool(include_background)

    aux_inputs = ("distance",)

    def compute(self, x: Tensor, target: Tensor, distance: Tensor | None = None) -> Tensor:
        """``distance``: the target's maps precomputed by the data pipeline (``segtrain.data.DistanceMaps``,
        one per logits channel, N x C x S); computed here from the target when not given."""
        if distance is not None and tuple(distance.shape) != tuple(x.shape):
            raise ValueError(
                f"boundary: distance maps of shape {tuple(distance.shape)} do not match the logits "
                f"{tuple(x.shape)}; expected one signed distance map per logits channel (N x C x S)."
            )
        valid = valid_mask(target, self.ignore_index)
        prob = probabilities(x, self.mode)
        drop_background = self.mode == MULTICLASS and not self.include_background and x.shape[1] > 1
        if distance is None:  # not precomputed: the maps of the target, without gradient
            if self.mode == MULTICLASS:
                masks = one_hot(target, x.shape[1], valid)
            else:
                masks = target > 0.5 if valid is None else (target > 0.5) & valid
            distance = signed_distance_maps(masks[:, 1:] if drop_background else masks).to(x.device)
        elif drop_background:
            distance = distance[:, 1:]
        if drop_background:
            prob = prob[:, 1:]
        if self.mode == MULTICLASS and valid is not None:
            valid = valid.unsqueeze(1)
        return boundary_loss(prob, distance, valid)


@register_loss("dice_boundary")
class DiceBoundaryLoss(WeightedSumLoss):
    """``dice + w_b(epoch) boundary``, the boundary weight ramped linearly over training (Kervadec et al.
    2019 start the boundary term small and let it grow).

    ``set_epoch(epoch, max_epochs)`` (called by the trainer at the start of each epoch, epochs counted
    from 0) sets ``w_b = start + (end - start) * epoch / (max_epochs - 1)``, clipped to ``end``; before the
    first call ``w_b = boundary_weight_start``.
    """

    info = LossInfo(
        formula="Dice loss + w_b(epoch) boundary, w_b ramped linearly from start to end",
        paper="Kervadec et al. 2019",
        use_when="the boundary loss as the paper uses it (Dice first, boundary ramped in)",
    )

    def __init__(
        self,
        *,
        boundary_weight_start: float = 0.01,
        boundary_weight_end: float = 1.0,
        dice: Mapping[str, Any] | None = None,
        boundary: Mapping[str, Any] | None = None,
        **base: Any,
    ) -> None:
        self.boundary_weight_start = check_nonnegative("boundary_weight_start", boundary_weight_start, self.name)
        self.boundary_weight_end = check_nonnegative("boundary_weight_end", boundary_weight_end, self.name)
        super().__init__([("dice", dice), ("boundary", boundary)], [1.0, self.boundary_weight_start], **base)

    def set_epoch(self, epoch: int, max_epochs: int) -> None:
        if max_epochs < 1 or epoch < 0:
            raise ValueError(f"dice_boundary: need 0 <= epoch and max_epochs >= 1, got {epoch} and {max_epochs}.")
        progress = min(epoch / max(max_epochs - 1, 1), 1.0)
        start, end = self.boundary_weight_start, self.boundary_weight_end
        self.weights[1] = start + (end - start) * progress
        super().set_epoch(epoch, max_epochs)
