"""Hard-pixel cross-entropies: topk (nnU-Net's TopK), ohem_ce (online hard example mining), and dice_topk.

Both work on units: the non-ignored pixels in multiclass mode (softmax CE) and binary mode (BCE), the
pixel x channel elements in multilabel mode (BCE; ignore_index is not applied there). No unit gives 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import register_loss
from ._common import MULTICLASS, LossInfo, SegmentationLoss, valid_mask
from ._keywords import check_half_open, check_integer
from .compound import PairLoss


def unit_cross_entropy(x: Tensor, target: Tensor, mode: str, ignore_index: int | None) -> Tensor:
    """The CE of every kept unit, a 1-D tensor: ``-log softmax(x)_y`` per non-ignored pixel (multiclass),
    ``-[y log s(x) + (1 - y) log(1 - s(x))]`` per non-ignored pixel (binary) or element (multilabel)."""
    valid = valid_mask(target, ignore_index)
    labels = target if valid is None else torch.where(valid, target, 0)
    if mode == MULTICLASS:
        ce = -x.log_softmax(1).gather(1, labels.unsqueeze(1)).squeeze(1)
    else:
        ce = F.binary_cross_entropy_with_logits(x, labels.to(x.dtype), reduction="none")
    return ce.reshape(-1) if valid is None else ce[valid.expand_as(ce)]


def kth_largest(values: Tensor, k: int) -> Tensor:
    """The k-th largest of a 1-D tensor's values, without gradient (1 <= k <= n). On a CPU numpy's introselect
    (``np.partition``) finds it several times faster than ``torch.topk`` or ``torch.kthvalue``
    (docs/losses.md gives the command and figures); elsewhere ``torch.topk``."""
    values = values.detach()
    if values.device.type == "cpu":
        array = values.float().numpy() if values.dtype in (torch.float16, torch.bfloat16) else values.numpy()
        n = array.size
        return torch.tensor(np.partition(array, n - k)[n - k], dtype=values.dtype)
    return values.topk(k, sorted=False).values.min()


def top_mean(values: Tensor, k: int) -> Tensor:
    """Mean of the k largest of n values (1-D): ``sum_i w_i v_i / k`` with ``w_i = 1`` above the k-th largest
    value t, 0 below it, and the values equal to t sharing the ``k - #{v > t}`` left (distinct values: ``w_i = 1``
    for ``v_i >= t``). The gradient ``w / k`` is top-k's."""
    t = kth_largest(values, k)
    v = values.detach()
    weight = (v >= t).to(values.dtype)
    if weight.sum(dtype=torch.float64).item() != k:  # ties at t (a float64 sum of ones is exact)
        above, tied = v > t, v == t
        weight = above.to(values.dtype) + tied.to(values.dtype) * ((k - int(above.sum())) / int(tied.sum()))
    return torch.dot(weight, values) / k


def topk_loss(ce: Tensor, k: float) -> Tensor:
    """Mean of the ``max(1, int(n k / 100))`` largest of the n unit CE values (Wu et al. 2016, "Bridging
    category-level and instance-level semantic image segmentation"; nnU-Net's TopK loss); 0 when n = 0."""
    n = ce.numel()
    if n == 0:
        return ce.sum()
    return top_mean(ce, max(1, int(n * k / 100)))


def ohem_loss(ce: Tensor, thresh: float, min_kept: int) -> Tensor:
    """Online hard example mining CE (Shrivastava et al. 2016; as mmseg's ``OHEMPixelSampler`` with ``thresh``):
    p_t = exp(-CE), the probability of the unit's true class; keep the units with p_t < thresh, topped up to
    ``min_kept`` with the lowest p_t; the mean CE over the kept units (0 when there is no unit)."""
    n = ce.numel()
    if n == 0:
        return ce.sum()
    p_t = torch.exp(-ce.detach())
    hard = int((p_t < thresh).sum())
    keep = max(hard, min(min_kept, n))
    if keep == n:
        return ce.mean()
    # the kept units are the `keep` lowest p_t, i.e. the `keep` largest CE (those below thresh come first)
    return top_mean(ce, keep)


@register_loss("topk")
class TopKLoss(SegmentationLoss):
    """TopK cross-entropy: the mean CE of the k percent hardest units (nnU-Net's ``TopKLoss(k)``; Wu et al.
    2016).

    Args:
        k: percent of the units kept, 0 < k <= 100 (``k=100`` is ``ce``).
    """

    info = LossInfo(
        formula="mean of the max(1, int(n k / 100)) largest unit CE values",
        paper="Wu et al. 2016",
        use_when="many easy pixels swamp the CE (nnU-Net's TopK10)",
    )

    def __init__(self, *, k: float = 10, **base: Any) -> None:
        super().__init__(**base)  # mode, ignore_index
        self.k = check_half_open("k", k, 100, self.name)

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        return topk_loss(unit_cross_entropy(x, target, self.mode, self.ignore_index), self.k)


@register_loss("ohem_ce")
class OHEMCrossEntropyLoss(SegmentationLoss):
    """Online hard example mining cross-entropy (Shrivastava et al. 2016; mmseg's ``OHEMPixelSampler``).

    The mean CE over the units whose true-class probability is below ``thresh``, at least
    ``min(min_kept x N, n)`` of them (the lowest probabilities), N the batch size.

    Args:
        thresh: probability threshold, 0 < thresh <= 1.
        min_kept: units kept at least, per image (integer >= 1).
    """

    info = LossInfo(
        formula="mean CE over units with p_t < thresh, at least min_kept N of the lowest p_t",
        paper="Shrivastava et al. 2016",
        use_when="street scenes and other data with many easy pixels (mmseg's OHEM)",
    )

    def __init__(self, *, thresh: float = 0.7, min_kept: int = 10000, **base: Any) -> None:
        super().__init__(**base)  # mode, ignore_index
        self.thresh = check_half_open("thresh", thresh, 1, self.name)
        self.min_kept = check_integer("min_kept", min_kept, 1, self.name)

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        ce = unit_cross_entropy(x, target, self.mode, self.ignore_index)
        return ohem_loss(ce, self.thresh, self.min_kept * x.shape[0])


@register_loss("dice_topk")
class DiceTopKLoss(PairLoss):
    """``w_0 dice + w_1 topk``: nnU-Net's ``DC_and_topk_loss`` shifted by ``w_0`` (nnU-Net's Dice term is
    ``-Dice``, segtrain's ``1 - Dice``)."""

    pair = ("dice", "topk")
    info = LossInfo(
        formula="w_0 Dice loss + w_1 TopK CE",
        paper="Ma et al. 2021",
        use_when="nnU-Net's Dice + CE, with CE focused on the hardest pixels",
    )
