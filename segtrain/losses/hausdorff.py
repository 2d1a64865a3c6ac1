"""Hausdorff distance loss from distance transforms (Karimi & Salcudean 2019), ``hausdorff_dt``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from segtrain.losses.target_maps import distance_maps

from . import register_loss
from ._common import MULTICLASS, LossInfo, SegmentationLoss, masked_mean, one_hot, valid_mask
from ._keywords import check_flag, check_positive
from .topology import check_target_map


def hausdorff_dt_loss(p: Tensor, g: Tensor, d_g: Tensor, d_p: Tensor, alpha: float, valid: Tensor | None) -> Tensor:
    """``mean_{x, c} (p - g)^2 (d_G^alpha + d_P^alpha)`` over kept pixels and channels (Karimi & Salcudean
    2019, "Reducing the Hausdorff distance in medical image segmentation with convolutional neural networks"),
    d_M the distance of each pixel to the nearest pixel of the other set (no gradient)."""
    return masked_mean((p - g) ** 2 * (d_g**alpha + d_p**alpha), valid)


@register_loss("hausdorff_dt")
class HausdorffDTLoss(SegmentationLoss):
    """Hausdorff distance loss with distance transforms (Karimi & Salcudean, IEEE TMI 2019).

    d_G, the target's maps: ``target_distance`` (N x C x S, made in the loader's workers by
    ``segtrain.data.TargetMaps``) or made here; d_P, of the prediction ``p > 0.5``, every step. Ignored pixels
    are background in both masks and out of the mean. Equals MONAI ``HausdorffDTLoss(alpha, include_background,
    softmax=True, to_onehot_y=True)`` (multiclass) / ``(sigmoid=True)``.

    Args:
        alpha: exponent of the distances (> 0).
        include_background: False drops channel 0 (multiclass, multilabel).
    """

    aux_inputs = ("target_distance",)
    info = LossInfo(
        formula="mean_{x,c} (p - g)^2 (d_G^alpha + d_P^alpha), d the distance to the other set's nearest pixel",
        paper="Karimi & Salcudean 2019",
        use_when="you are scored on Hausdorff distance; fine-tuning boundaries after a region loss",
    )

    def __init__(self, *, alpha: float = 2.0, include_background: bool = True, **base: Any) -> None:
        super().__init__(**base)  # mode, ignore_index
        self.alpha = check_positive("alpha", alpha, self.name)
        self.include_background = check_flag("include_background", include_background, self.name)

    def compute(self, x: Tensor, target: Tensor, target_distance: Tensor | None = None) -> Tensor:
        valid = valid_mask(target, self.ignore_index)
        if self.mode == MULTICLASS:
            p = x.softmax(1)
            g = one_hot(target, x.shape[1], valid)
            keep = None if valid is None else valid.unsqueeze(1)
        else:
            p = x.sigmoid()
            keep = valid
            g = target > 0.5 if keep is None else (target > 0.5) & keep
        if target_distance is not None:
            check_target_map("target_distance", target_distance, x, self.name, "distance maps")
        drop = not self.include_background and x.shape[1] > 1
        if drop:
            p, g = p[:, 1:], g[:, 1:]
            target_distance = None if target_distance is None else target_distance[:, 1:]
        with torch.no_grad():
            pred = p > 0.5 if keep is None else (p > 0.5) & keep
            d_p = distance_maps(pred).to(x)
            d_g = distance_maps(g).to(x) if target_distance is None else target_distance.to(x)
        return hausdorff_dt_loss(p, g.to(x.dtype), d_g, d_p, self.alpha, keep)
