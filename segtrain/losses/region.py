"""Region (overlap) losses: each a short formula on the per-class soft sums of ``soft_sums``: ``TP = sum p g``,
``sum p`` and ``sum g`` (so ``FP = sum p - TP``, ``FN = sum g - TP``).

Conventions (MONAI's): ``batch=True`` sums over the batch and space, ``batch=False`` sums per image and
then averages over images too; the mean runs over every kept class, including a class absent from the
target (the smoothing term decides its value, so false positives on it are penalised);
``include_background=False`` drops channel 0 (ignored with a single channel).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from . import register_loss
from ._common import (
    MULTICLASS,
    LossInfo,
    SegmentationLoss,
    check_class_vector,
    check_class_vector_length,
    check_nonnegative,
    class_sums,
    masked_mean,
    soft_sums,
    valid_mask,
)


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    # the clamp only matters for smooth=0 and an empty class, where it gives 0 instead of 0/0
    return num / den.clamp_min(torch.finfo(den.dtype).tiny)


def dice_score(tp: Tensor, sum_p: Tensor, sum_g: Tensor, smooth: float) -> Tensor:
    """Soft Dice ``(2 TP + s) / (2 TP + FP + FN + s) = (2 TP + s) / (sum p + sum g + s)`` (Milletari et al.
    2016, V-Net)."""
    return _ratio(2 * tp + smooth, sum_p + sum_g + smooth)


def iou_score(tp: Tensor, sum_p: Tensor, sum_g: Tensor, smooth: float) -> Tensor:
    """Soft Jaccard ``(TP + s) / (TP + FP + FN + s) = (TP + s) / (sum p + sum g - TP + s)`` (Rahman & Wang
    2016)."""
    return _ratio(tp + smooth, sum_p + sum_g - tp + smooth)


def tversky_index(tp: Tensor, sum_p: Tensor, sum_g: Tensor, smooth: float, alpha: float, beta: float) -> Tensor:
    """Tversky index ``(TP + s) / (TP + alpha FP + beta FN + s)`` (Salehi et al. 2017)."""
    return _ratio(tp + smooth, (1 - alpha - beta) * tp + alpha * sum_p + beta * sum_g + smooth)


def overlap_loss(score: Tensor, log_loss: bool) -> Tensor:
    """``1 - score`` per class, or ``-log(score)`` (score clamped at 1e-7, as smp's ``log_loss``)."""
    return -score.clamp_min(1e-7).log() if log_loss else 1 - score


def focal_tversky(ti: Tensor, gamma: float) -> Tensor:
    """``(1 - TI_c)^gamma`` per class (Abraham & Khan 2019); the base is clamped so that gamma < 1 keeps
    finite gradients."""
    return (1 - ti).clamp_min(1e-12) ** gamma


def generalized_dice(tp: Tensor, sum_p: Tensor, sum_g: Tensor, smooth: float) -> Tensor:
    """Generalised Dice loss (Sudre et al. 2017), classes on the last dim, as MONAI's GeneralizedDiceLoss.

    ``1 - (2 sum_c w_c TP_c + s) / (sum_c w_c (sum p_c + sum g_c) + s)``, ``w_c = 1 / (sum g_c)^2``; the
    weight of a class absent from the target (infinite) becomes the largest finite weight.
    """
    w = 1.0 / sum_g.detach() ** 2
    infinite = torch.isinf(w)
    w = torch.where(infinite, 0.0, w)
    w = torch.where(infinite, w.amax(-1, keepdim=True), w)
    numer = 2 * (w * tp).sum(-1) + smooth
    denom = (w * (sum_p + sum_g)).sum(-1) + smooth
    return 1 - _ratio(numer, denom)


class _OverlapLoss(SegmentationLoss):
    """Shared arguments and class selection of the TP / FP / FN losses."""

    def __init__(
        self, *, smooth: float, batch: bool, include_background: bool, squared: bool = False, **base: Any
    ) -> None:
        super().__init__(**base)  # mode, ignore_index
        self.smooth = check_nonnegative("smooth", smooth, self.name)
        self.batch = bool(batch)
        self.include_background = bool(include_background)
        self.squared = bool(squared)

    def sums(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``tp``, ``sum p``, ``sum g`` per kept class (``soft_sums``)."""
        sums = soft_sums(x, target, self.mode, self.ignore_index, self.batch, self.squared, check=False)
        if not self.include_background and sums[0].shape[-1] > 1:
            return sums[0][..., 1:], sums[1][..., 1:], sums[2][..., 1:]
        return sums


@register_loss("dice")
class DiceLoss(_OverlapLoss):
    """Soft Dice loss (Milletari et al. 2016): mean over classes of ``1 - (2 TP + s) / (2 TP + FP + FN + s)``.

    Equals MONAI ``DiceLoss(smooth_nr=s, smooth_dr=s, batch=batch)`` (also ``squared_pred``,
    ``include_background`` and ``ignore_index``), and smp ``DiceLoss(smooth=s / 2)`` when every class is
    present in the target.

    Args:
        smooth: s, added to numerator and denominator.
        squared: ``sum p^2 + sum g^2`` in the denominator (V-Net's form, MONAI's ``squared_pred``).
        batch: sum over the batch and space (True) or per image, then mean over images (False).
        include_background: False drops channel 0.
        log_loss: ``-log Dice_c`` in place of ``1 - Dice_c``.
    """

    info = LossInfo(
        formula="mean_c 1 - (2 sum pg + s) / (sum p + sum g + s)",
        paper="Milletari et al. 2016",
        use_when="you are scored on Dice; foreground/background imbalance",
    )

    def __init__(
        self,
        *,
        smooth: float = 1e-5,
        squared: bool = False,
        batch: bool = True,
        include_background: bool = True,
        log_loss: bool = False,
        **base: Any,
    ) -> None:
        super().__init__(smooth=smooth, batch=batch, include_background=include_background, squared=squared, **base)
        self.log_loss = bool(log_loss)

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        return overlap_loss(dice_score(*self.sums(x, target), self.smooth), self.log_loss).mean()


@register_loss("iou", aliases=("jaccard",))
class IoULoss(DiceLoss):
    """Soft Jaccard / IoU loss: mean over classes of ``1 - (TP + s) / (TP + FP + FN + s)``.

    Equals smp ``JaccardLoss(smooth=s)`` (when every class is present in the target) and MONAI
    ``DiceLoss(jaccard=True, smooth_nr=smooth_dr=2 s)``. Arguments as dice.
    """

    info = LossInfo(
        formula="mean_c 1 - (sum pg + s) / (sum p + sum g - sum pg + s)",
        paper="Rahman & Wang 2016",
        use_when="you are scored on IoU",
    )

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        return overlap_loss(iou_score(*self.sums(x, target), self.smooth), self.log_loss).mean()


@register_loss("tversky")
class TverskyLoss(_OverlapLoss):
    """Tversky loss (Salehi et al. 2017): mean over classes of ``1 - (TP + s) / (TP + a FP + b FN + s)``.

    alpha weighs false positives, beta false negatives (MONAI ``TverskyLoss(alpha, beta)``; smp
    ``TverskyLoss(alpha, beta, smooth=s)``). alpha = beta = 0.5 is Dice, 1 and 1 is IoU.
    """

    info = LossInfo(
        formula="mean_c 1 - (TP + s) / (TP + alpha FP + beta FN + s)",
        paper="Salehi et al. 2017",
        use_when="trading recall against precision (beta > alpha favours recall)",
    )

    def __init__(
        self,
        *,
        alpha: float = 0.5,
        beta: float = 0.5,
        smooth: float = 1e-5,
        batch: bool = True,
        include_background: bool = True,
        **base: Any,
    ) -> None:
        super().__init__(smooth=smooth, batch=batch, include_background=include_background, **base)
        self.alpha = check_nonnegative("alpha", alpha, self.name)
        self.beta = check_nonnegative("beta", beta, self.name)

    def index(self, x: Tensor, target: Tensor) -> Tensor:
        return tversky_index(*self.sums(x, target), self.smooth, self.alpha, self.beta)

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        return (1 - self.index(x, target)).mean()


@register_loss("focal_tversky")
class FocalTverskyLoss(TverskyLoss):
    """Focal Tversky loss (Abraham & Khan 2019): mean over classes of ``(1 - TI_c)^gamma``.

    gamma applies per class as in the paper; smp's ``TverskyLoss(gamma=...)`` raises the class mean to
    gamma instead, which agrees only with one class.
    """

    info = LossInfo(
        formula="mean_c (1 - TI_c)^gamma, TI the Tversky index",
        paper="Abraham & Khan 2019",
        use_when="small structures, where Tversky alone plateaus",
    )

    def __init__(self, *, gamma: float = 0.75, **tversky: Any) -> None:
        """``tversky``: tversky's keywords (mode, ignore_index, alpha, beta, smooth, batch, include_background)."""
        super().__init__(**tversky)
        self.gamma = check_nonnegative("gamma", gamma, self.name)

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        return focal_tversky(self.index(x, target), self.gamma).mean()


@register_loss("generalized_dice")
class GeneralizedDiceLoss(_OverlapLoss):
    """Generalised Dice loss (Sudre et al. 2017), class weights ``1 / (sum g_c)^2``.

    Equals MONAI ``GeneralizedDiceLoss(smooth_nr=s, smooth_dr=s, batch=batch)``.
    """

    info = LossInfo(
        formula="1 - 2 sum_c w_c TP_c / sum_c w_c (sum p_c + sum g_c), w_c = 1 / (sum g_c)^2",
        paper="Sudre et al. 2017",
        use_when="many classes of very different sizes",
    )

    def __init__(self, *, smooth: float = 1e-5, batch: bool = True, **base: Any) -> None:
        super().__init__(smooth=smooth, batch=batch, include_background=True, **base)

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        return generalized_dice(*self.sums(x, target), self.smooth).mean()


@register_loss("log_cosh_dice")
class LogCoshDiceLoss(DiceLoss):
    """Log-cosh Dice loss (Jadon 2020): ``log(cosh(L))`` with L the dice loss (after its class mean)."""

    info = LossInfo(formula="log(cosh(L_dice))", paper="Jadon 2020", use_when="Dice, with smoother gradients near 0")

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        return log_cosh(super().compute(x, target))


def log_cosh(value: Tensor) -> Tensor:
    """``log(cosh(v))`` computed as ``|v| + log1p(exp(-2|v|)) - log 2`` (no overflow)."""
    v = value.abs()
    return v + torch.log1p(torch.exp(-2 * v)) - torch.log(torch.tensor(2.0, dtype=v.dtype, device=v.device))


EXP_LOG_EPS = 1e-6


def floored_power(t: Tensor, gamma: float) -> Tensor:
    """t^gamma above EXP_LOG_EPS, linear below it (matching at EXP_LOG_EPS): exactly 0 at t = 0, and a
    finite gradient there, where t^gamma with gamma < 1 has an infinite one."""
    linear = t.clamp_min(0) * EXP_LOG_EPS ** (gamma - 1)
    return torch.where(t > EXP_LOG_EPS, t.clamp_min(EXP_LOG_EPS).pow(gamma), linear)


def exp_log_loss(
    log_p_y: Tensor,
    labels: Tensor,
    valid: Tensor | None,
    dice: Tensor,
    frequencies: Tensor,
    w_dice: float,
    w_cross: float,
    gamma_dice: float,
    gamma_cross: float,
) -> Tensor:
    """Exponential logarithmic loss (Wong et al. 2018, MICCAI).

    ``w_dice E_c[(-ln Dice_c)^gamma_dice] + w_cross E_x[w_l (-ln p_l)^gamma_cross]``, l the pixel's label,
    ``w_l = (sum_k f_k / f_l)^0.5``. Both ``-ln`` are clamped at 1e-6 so the gradients stay finite.
    ``log_p_y``: each pixel's log-probability of its label (N x S; ``labels`` 0 where ``valid`` is False).
    """
    dice_term = floored_power(-dice.clamp_min(torch.finfo(dice.dtype).tiny).log(), gamma_dice)
    weights = torch.where(frequencies > 0, (frequencies.sum() / frequencies.clamp_min(1e-30)).sqrt(), 0.0)
    cross = weights[labels] * floored_power(-log_p_y, gamma_cross)
    return w_dice * dice_term.mean() + w_cross * masked_mean(cross, valid)


@register_loss("exp_log")
class ExpLogLoss(SegmentationLoss):
    """Exponential logarithmic loss (Wong et al., MICCAI 2018), multiclass only.

    Dice_c uses dice's defaults (smooth 1e-5, sums over the batch); ``f`` are the batch's non-ignored
    pixel counts per class, or ``frequencies`` (data-set counts or fractions) when given.
    """

    modes = (MULTICLASS,)
    info = LossInfo(
        formula="w_d E_c[(-ln Dice_c)^g_d] + w_c E_x[w_l (-ln p_l)^g_c], w_l = (sum_k f_k / f_l)^0.5",
        paper="Wong et al. 2018",
        use_when="strongly imbalanced multi-organ style problems",
    )

    def __init__(
        self,
        *,
        w_dice: float = 0.8,
        w_cross: float = 0.2,
        gamma_dice: float = 0.3,
        gamma_cross: float = 0.3,
        frequencies: Sequence[float] | None = None,
        **base: Any,
    ) -> None:
        super().__init__(**base)  # mode, ignore_index
        self.w_dice = check_nonnegative("w_dice", w_dice, self.name)
        self.w_cross = check_nonnegative("w_cross", w_cross, self.name)
        self.gamma_dice = check_nonnegative("gamma_dice", gamma_dice, self.name)
        self.gamma_cross = check_nonnegative("gamma_cross", gamma_cross, self.name)
        self.frequencies = check_class_vector("frequencies", frequencies, self.name)
        self.smooth = 1e-5

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        num_classes = x.shape[1]
        valid = valid_mask(target, self.ignore_index)
        labels = target if valid is None else torch.where(valid, target, 0)
        log_p = x.log_softmax(1)  # one pass for both terms: p for Dice, the label's log p for the cross term
        log_p_y = log_p.gather(1, labels.unsqueeze(1)).squeeze(1)
        tp, sum_p, sum_g = class_sums(log_p.exp(), target, self.mode, self.ignore_index, True, False)
        if self.frequencies is not None:
            check_class_vector_length("frequencies", self.frequencies, num_classes, self.name)
            freq = self.frequencies.to(x)
        else:
            freq = sum_g.detach()  # the batch's kept pixels per class
        return exp_log_loss(
            log_p_y,
            labels,
            valid,
            dice_score(tp, sum_p, sum_g, self.smooth),
            freq,
            self.w_dice,
            self.w_cross,
            self.gamma_dice,
            self.gamma_cross,
        )
