"""Topology-aware region losses: cldice (soft skeletons, Shit et al. 2021), dice_cldice, and skeleton_recall
(Kirchhoff et al. 2024).

Sums run per class over the batch and space (``batch=True``) or per image (``batch=False``, then the mean over
images too); ignored pixels are left out of every sum.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from segtrain.losses.target_maps import skeleton_maps

from . import register_loss
from ._common import MULTICLASS, LossInfo, SegmentationLoss, one_hot, valid_mask
from ._keywords import check_flag, check_integer, check_smooth, check_unit
from .compound import WeightedSumLoss


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    # the clamp only matters for smooth = 0 and an empty sum, where it gives 0 instead of 0 / 0
    return num / den.clamp_min(torch.finfo(den.dtype).tiny)


def probabilities_and_masks(x: Tensor, target: Tensor, mode: str, ignore_index: int | None) -> tuple[Tensor, ...]:
    """p (softmax or sigmoid), the target g as N x C x S floats (one-hot in multiclass mode) and the kept mask
    (N x 1 x S or N x C x S floats, 0 where ignored; None when nothing is ignored); g is 0 at ignored pixels."""
    valid = valid_mask(target, ignore_index)
    if mode == MULTICLASS:
        p = x.softmax(1)
        g = one_hot(target, x.shape[1], valid).to(x.dtype)
        keep = None if valid is None else valid.unsqueeze(1).to(x.dtype)
    else:
        p = x.sigmoid()
        g = (target > 0.5).to(x.dtype)
        keep = None if valid is None else valid.to(x.dtype)
        if keep is not None:
            g = g * keep
    return p, g, keep


def _sum(values: Tensor, batch: bool) -> Tensor:
    """Per class (batch sums: C) or per image and class (N x C)."""
    dims = [0, *range(2, values.ndim)] if batch else list(range(2, values.ndim))
    return values.sum(dims)


def soft_erode(img: Tensor) -> Tensor:
    """Soft erosion: the minimum of the 3-pixel min-pool lines along each axis (MONAI's / clDice's)."""
    d = img.ndim - 2
    lines = []
    for axis in range(d):
        kernel = [1] * d
        kernel[axis], padding = 3, [0] * d
        padding[axis] = 1
        pool = F.max_pool2d if d == 2 else F.max_pool3d
        lines.append(-pool(-img, tuple(kernel), 1, tuple(padding)))
    out = lines[0]
    for line in lines[1:]:
        out = torch.min(out, line)
    return out


def soft_dilate(img: Tensor) -> Tensor:
    """Soft dilation: the 3^d max-pool."""
    pool = F.max_pool2d if img.ndim == 4 else F.max_pool3d
    return pool(img, 3, 1, 1)


def soft_skeleton(img: Tensor, iterations: int) -> Tensor:
    """Soft skeleton (Shit et al. 2021, MONAI's ``soft_skel``): ``relu(img - open(img))``, then after each of
    ``iterations`` soft erosions the new ridge ``delta`` is added as ``skel + relu(delta - skel delta)``.

    ``open(img) = dilate(erode(img))``, and the erosion inside one step's opening is the next step's eroded
    image, so each erosion is computed once (MONAI computes it twice): the same values, a third fewer pools."""
    eroded = soft_erode(img)
    skel = F.relu(img - soft_dilate(eroded))
    for _ in range(iterations):
        img, eroded = eroded, soft_erode(eroded)
        delta = F.relu(img - soft_dilate(eroded))
        skel = skel + F.relu(delta - skel * delta)
    return skel


def cldice_loss(p: Tensor, g: Tensor, iterations: int, smooth: float, batch: bool) -> Tensor:
    """clDice loss per class (Shit et al. 2021, "clDice - a novel topology-preserving loss function for tubular
    structure segmentation"): S_P = softskel(p), S_G = softskel(g),
    ``Tprec = (sum S_P g + s) / (sum S_P + s)``, ``Tsens = (sum S_G p + s) / (sum S_G + s)``,
    ``1 - 2 Tprec Tsens / (Tprec + Tsens)``; p and g are 0 at ignored pixels."""
    skel_p, skel_g = soft_skeleton(p, iterations), soft_skeleton(g, iterations)
    tprec = _ratio(_sum(skel_p * g, batch) + smooth, _sum(skel_p, batch) + smooth)
    tsens = _ratio(_sum(skel_g * p, batch) + smooth, _sum(skel_g, batch) + smooth)
    return 1 - _ratio(2 * tprec * tsens, tprec + tsens)


@register_loss("cldice")
class ClDiceLoss(SegmentationLoss):
    """Soft clDice loss (Shit et al., CVPR 2021): per kept class ``1 - 2 Tprec Tsens / (Tprec + Tsens)`` from
    soft skeletons of p and g, then the mean over classes (and images with ``batch=False``).

    Binary with ``batch=False`` equals MONAI ``SoftclDiceLoss(sigmoid=True, iter_=it, smooth_nr=smooth_dr=s,
    smooth=1e-30)``; with several channels segtrain averages per-channel values (MONAI pools the channels).

    Args:
        iterations: soft erosions of the skeleton (integer >= 0).
        smooth: s in Tprec and Tsens.
        batch: sum over the batch and space (True) or per image (False).
        include_background: False drops channel 0 (multiclass, multilabel).
    """

    info = LossInfo(
        formula="mean_c 1 - 2 Tprec Tsens / (Tprec + Tsens) on soft skeletons of p and g",
        paper="Shit et al. 2021",
        use_when="tubular or curvilinear structures (vessels, roads, membranes) whose connectivity matters",
    )

    def __init__(
        self,
        *,
        iterations: int = 3,
        smooth: float = 1.0,
        batch: bool = True,
        include_background: bool = True,
        **base: Any,
    ) -> None:
        super().__init__(**base)  # mode, ignore_index
        self.iterations = check_integer("iterations", iterations, 0, self.name)
        self.smooth = check_smooth(smooth, self.name)
        self.batch = check_flag("batch", batch, self.name)
        self.include_background = check_flag("include_background", include_background, self.name)

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        p, g, keep = probabilities_and_masks(x, target, self.mode, self.ignore_index)
        if keep is not None:
            p = p * keep
        if not self.include_background and p.shape[1] > 1:
            p, g = p[:, 1:], g[:, 1:]
        return cldice_loss(p, g, self.iterations, self.smooth, self.batch).mean()


@register_loss("dice_cldice")
class DiceClDiceLoss(WeightedSumLoss):
    """``(1 - alpha) dice + alpha cldice`` (Shit et al. 2021); binary equals MONAI
    ``SoftDiceclDiceLoss(alpha, sigmoid=True, smooth_nr=smooth_dr=s, smooth=1e-30)`` with both parts at
    ``smooth: s, batch: false``."""

    info = LossInfo(
        formula="(1 - alpha) Dice loss + alpha clDice loss",
        paper="Shit et al. 2021",
        use_when="clDice as the paper trains it, next to a volumetric Dice",
    )

    def __init__(
        self,
        *,
        alpha: float = 0.5,
        dice: Mapping[str, Any] | None = None,
        cldice: Mapping[str, Any] | None = None,
        **base: Any,
    ) -> None:
        self.alpha = check_unit("alpha", alpha, self.name)
        super().__init__([("dice", dice), ("cldice", cldice)], [1 - self.alpha, self.alpha], **base)


def check_target_map(name: str, value: Tensor, x: Tensor, loss: str, what: str) -> None:
    """An aux input must be a tensor shaped like the logits (N x C x S, one map per logits channel)."""
    if not isinstance(value, Tensor) or tuple(value.shape) != tuple(x.shape):
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(
            f"{loss}: {name} of shape {shape} does not match the logits {tuple(x.shape)}; "
            f"expected {what}, one per logits channel (N x C x S)."
        )


def skeleton_recall_loss(p: Tensor, skeleton: Tensor, smooth: float, batch: bool) -> Tensor:
    """Skeleton recall loss (Kirchhoff et al. 2024, "Skeleton Recall Loss for connectivity conserving and
    resource efficient segmentation of thin tubular structures"): ``1 - mean_c (sum p_c S_c + s) / (sum S_c + s)``
    over the foreground channels, S the (tubed) target skeleton, 0 at ignored pixels."""
    recall = _ratio(_sum(p * skeleton, batch) + smooth, _sum(skeleton, batch) + smooth)
    return 1 - recall.mean()


@register_loss("skeleton_recall")
class SkeletonRecallLoss(SegmentationLoss):
    """Skeleton recall loss (Kirchhoff et al., ECCV 2024): the soft recall of the target's tubed skeleton.

    ``skeleton``: N x C x S maps in {0, 1}, one per logits channel (made in the loader's workers by
    ``segtrain.data.TargetMaps``); when not given, made here from the target (skimage's skeletonize of the
    foreground, dilated twice, AND each class's mask). Multiclass: channels >= 1; binary, multilabel: all.
    The paper trains ``ce + dice + skeleton_recall`` (a ``combo``).

    Args:
        smooth: s in the recall.
        batch: sum over the batch and space (True) or per image (False).
    """

    aux_inputs = ("skeleton",)
    info = LossInfo(
        formula="1 - mean_c (sum p_c S_c + s) / (sum S_c + s), S the tubed skeleton of the target",
        paper="Kirchhoff et al. 2024",
        use_when="thin structures that must stay connected; add it to ce + dice in a combo",
    )

    def __init__(self, *, smooth: float = 1e-5, batch: bool = True, **base: Any) -> None:
        super().__init__(**base)  # mode, ignore_index
        self.smooth = check_smooth(smooth, self.name)
        self.batch = check_flag("batch", batch, self.name)

    def compute(self, x: Tensor, target: Tensor, skeleton: Tensor | None = None) -> Tensor:
        if self.mode == MULTICLASS and x.shape[1] < 2:
            raise ValueError(f"{self.name}: multiclass mode needs logits with >= 2 channels (0 = background).")
        valid = valid_mask(target, self.ignore_index)
        if self.mode == MULTICLASS:
            p = x.softmax(1)
            keep = None if valid is None else valid.unsqueeze(1)
        else:
            p = x.sigmoid()
            keep = valid
        if skeleton is None:  # not precomputed: the target's skeleton maps, without gradient
            if self.mode == MULTICLASS:
                masks = one_hot(target, x.shape[1], valid)
            else:
                masks = target > 0.5 if keep is None else (target > 0.5) & keep
            skeleton = skeleton_maps(masks, 1 if self.mode == MULTICLASS else None).to(x.device)
        else:
            check_target_map("skeleton", skeleton, x, self.name, "skeleton maps in {0, 1}")
            if skeleton.numel() and not bool(((skeleton == 0) | (skeleton == 1)).all()):
                raise ValueError(f"{self.name}: skeleton maps must hold 0 and 1 only.")
        s = skeleton.to(p.dtype)
        if keep is not None:
            s = s * keep
        if self.mode == MULTICLASS:
            p, s = p[:, 1:], s[:, 1:]
        return skeleton_recall_loss(p, s, self.smooth, self.batch)
