"""The unified focal losses (Yeung et al. 2022): unified_focal (symmetric) and asym_unified_focal, and the
paper's Combo loss (Taghanaki et al. 2019), registered as combo_taghanaki.

Pixel terms average over units (kept pixels; multilabel: pixel x channel elements), region terms take
per-class sums over the batch (``batch=True``) or per image, then the mean over classes (and images). In the
sigmoid modes each channel is the binary problem {background 1 - p, foreground p}.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from . import register_loss
from ._common import (
    BINARY,
    MULTICLASS,
    MULTILABEL,
    LossInfo,
    SegmentationLoss,
    class_sums,
    masked_mean,
    soft_sums,
    valid_mask,
)
from ._counts import kept_count
from ._keywords import check_flag, check_smooth, check_unit

# floor under the base of a power below 1 that can be exactly 0 (p = 1, TI = 1): keeps gradients finite
POWER_FLOOR = 1e-12


def focal_units(
    x: Tensor, target: Tensor, mode: str, ignore_index: int | None, delta: float, gamma: float, asymmetric: bool
) -> tuple[Tensor, Tensor]:
    """The modified focal loss mF (Yeung et al. 2022) of every unit, ``-w_y (1 - P_y)^gamma log P_y`` with
    ``w_0 = 1 - delta`` (background), ``w_k = delta``; asymmetric: foreground units lose the focal factor. Also
    returns the probabilities p (softmax or sigmoid), shared with the Tversky term.

    Units are pixels with their softmax class (multiclass) or, per channel, the two classes {1 - p, p}. The
    weights come from arithmetic on a 0/1 foreground map rather than ``torch.where``, which is several times
    slower on a CPU. Ignored units hold finite values; the caller leaves them out of its mean."""
    valid = valid_mask(target, ignore_index)
    if mode == MULTICLASS:
        log_softmax = x.log_softmax(1)
        p = log_softmax.exp()
        labels = target if valid is None else torch.where(valid, target, 0)
        log_p = log_softmax.gather(1, labels.unsqueeze(1)).squeeze(1)
        foreground = (labels > 0).to(x.dtype)
        # (1 - P_y)^gamma has an infinite slope at P_y = 1 when gamma < 1: a floor under its base
        factor = (-torch.expm1(log_p)).clamp_min(POWER_FLOOR) ** gamma
    else:
        p = x.sigmoid()
        foreground = (target > 0.5).to(x.dtype)
        z = x * (2 * foreground - 1)  # the logit of the unit's own class: P_y = sigmoid(z)
        log_p = F.logsigmoid(z)
        # (1 - P_y)^gamma = sigmoid(-z)^gamma = exp(gamma (log P_y - z)): exact, with a finite slope everywhere
        factor = torch.exp(gamma * (log_p - z))
    weight = (1 - delta) + (2 * delta - 1) * foreground  # w_y
    if asymmetric:  # -w_y [a + (1 - a) (1 - P_y)^gamma] log P_y, a = 1 on the foreground: one product with gradient
        focal = torch.addcmul(-weight * foreground, -weight * (1 - foreground), factor) * log_p
    else:
        focal = -weight * factor * log_p
    return focal, p


def tversky_term(tp: Tensor, fp: Tensor, fn: Tensor, delta: float, gamma: float, smooth: float, asymmetric: bool):
    """The modified focal Tversky loss mFT per class: ``(1 - TI_k)^(1 - gamma)``,
    ``TI = (TP + s) / (TP + delta FN + (1 - delta) FP + s)``; asymmetric: the background class (0) keeps
    ``1 - TI_0`` without the power."""
    ti = (tp + smooth) / (tp + delta * fn + (1 - delta) * fp + smooth).clamp_min(torch.finfo(tp.dtype).tiny)
    loss = (1 - ti).clamp_min(POWER_FLOOR) ** (1 - gamma)
    if asymmetric:
        loss = torch.cat([1 - ti[..., :1], loss[..., 1:]], -1)
    return loss


def class_counts(
    p: Tensor, x: Tensor, target: Tensor, mode: str, ignore_index: int | None, batch: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """TP, FP, FN per class on the last dim, class 0 the background: the softmax classes (multiclass), or per
    channel the two classes {1 - p, p} (binary, multilabel: channels then flattened with the images)."""
    tp, sum_p, sum_g = class_sums(p, target, mode, ignore_index, batch, squared=False)
    fp, fn = sum_p - tp, sum_g - tp
    if mode == MULTICLASS:
        return tp, fp, fn
    tn = kept_count(x, target, ignore_index, batch) - sum_p - sum_g + tp
    # the background class of a sigmoid channel: its TP is the channel's TN, its FP the FN, its FN the FP
    return torch.stack([tn, tp], -1), torch.stack([fn, fp], -1), torch.stack([fp, fn], -1)


def unified_focal_loss(
    x: Tensor,
    target: Tensor,
    mode: str,
    ignore_index: int | None,
    weight: float,
    delta: float,
    gamma: float,
    smooth: float,
    batch: bool,
    asymmetric: bool,
) -> Tensor:
    """``weight mF + (1 - weight) mFT`` (Yeung et al. 2022, "Unified Focal loss: generalising Dice and cross
    entropy-based losses to handle class imbalanced medical image segmentation")."""
    focal, p = focal_units(x, target, mode, ignore_index, delta, gamma, asymmetric)
    focal = masked_mean(focal, valid_mask(target, ignore_index))
    tversky = tversky_term(*class_counts(p, x, target, mode, ignore_index, batch), delta, gamma, smooth, asymmetric)
    return weight * focal + (1 - weight) * tversky.mean()


class _UnifiedFocal(SegmentationLoss):
    asymmetric = False

    def __init__(
        self,
        *,
        weight: float = 0.5,
        delta: float = 0.6,
        gamma: float = 0.5,
        smooth: float = 1e-7,
        batch: bool = True,
        **base: Any,
    ) -> None:
        super().__init__(**base)  # mode, ignore_index
        self.weight = check_unit("weight", weight, self.name)
        self.delta = check_unit("delta", delta, self.name)
        self.gamma = check_unit("gamma", gamma, self.name)
        self.smooth = check_smooth(smooth, self.name)
        self.batch = check_flag("batch", batch, self.name)

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        return unified_focal_loss(
            x,
            target,
            self.mode,
            self.ignore_index,
            self.weight,
            self.delta,
            self.gamma,
            self.smooth,
            self.batch,
            self.asymmetric,
        )


@register_loss("unified_focal")
class UnifiedFocalLoss(_UnifiedFocal):
    """Symmetric unified focal loss (Yeung et al., CMIG 2022): ``weight mF + (1 - weight) mFT``, mF the focal
    CE with class weights ``1 - delta`` (background) and ``delta``, mFT the focal Tversky loss with
    ``TI = (TP + s) / (TP + delta FN + (1 - delta) FP + s)`` and power ``1 - gamma``.

    ``weight=1, gamma=0, delta=0.5`` is ``0.5 ce``; ``weight=0, gamma=0`` is ``tversky(alpha=1 - delta,
    beta=delta)`` over all classes.
    """

    info = LossInfo(
        formula="weight mF + (1 - weight) mFT: focal CE and focal Tversky with shared delta, gamma",
        paper="Yeung et al. 2022",
        use_when="class imbalance at both the pixel and the region level, one knob pair for both",
    )


@register_loss("asym_unified_focal")
class AsymUnifiedFocalLoss(_UnifiedFocal):
    """Asymmetric unified focal loss (Yeung et al., CMIG 2022): as unified_focal, but the focal factors
    suppress only the background (mF's foreground terms are ``-delta log P_y``, mFT's background term is
    ``1 - TI_0``). Binary, ``batch=False``: ``(1 + w)`` x MONAI ``AsymmetricUnifiedFocalLoss(weight=2w / (1 + w),
    delta, gamma)`` on ``sigmoid(x)``."""

    asymmetric = True
    info = LossInfo(
        formula="as unified_focal, the focal suppression on the background classes only",
        paper="Yeung et al. 2022",
        use_when="a rare foreground whose recall must not be suppressed",
    )


def weighted_bce(x: Tensor, target: Tensor, ignore_index: int | None, beta: float) -> Tensor:
    """``mean over units of -[beta g log p + (1 - beta)(1 - g) log(1 - p)]`` (Taghanaki et al. 2019's wBCE;
    beta > 0.5 penalises false negatives); 0 when no unit is kept. Torch's fused BCE with a per-unit weight
    ``beta g + (1 - beta)(1 - g)`` (g is 0 or 1)."""
    valid = valid_mask(target, ignore_index)
    g = (target > 0.5).to(x.dtype)
    weight = (1 - beta) + (2 * beta - 1) * g
    if valid is None:
        return F.binary_cross_entropy_with_logits(x, g, weight=weight)
    return masked_mean(F.binary_cross_entropy_with_logits(x, g, weight=weight, reduction="none"), valid)


@register_loss("combo_taghanaki")
class ComboTaghanakiLoss(SegmentationLoss):
    """The Combo loss of Taghanaki et al. (CMIG 2019): ``alpha wBCE + (1 - alpha) dice(smooth, batch)``,
    binary and multilabel only.

    The paper subtracts the Dice coefficient; this is that plus ``1 - alpha``, so it is >= 0 and 0 for a perfect
    prediction, with the same gradient. ``beta=0.5`` is ``alpha / 2 bce + (1 - alpha) dice(smooth=1)``.
    (``combo`` is segtrain's generic weighted sum.)
    """

    modes = (BINARY, MULTILABEL)
    info = LossInfo(
        formula="alpha wBCE + (1 - alpha) Dice loss, wBCE weighting positives by beta and negatives by 1 - beta",
        paper="Taghanaki et al. 2019",
        use_when="binary imbalance where false negatives and false positives cost differently",
    )

    def __init__(
        self,
        *,
        mode: str = BINARY,
        alpha: float = 0.5,
        beta: float = 0.5,
        smooth: float = 1.0,
        batch: bool = True,
        **base: Any,
    ) -> None:
        if mode == MULTICLASS:
            raise ValueError("combo_taghanaki is defined for binary and multilabel mode only; use ce_dice.")
        super().__init__(mode=mode, **base)  # ignore_index
        self.alpha = check_unit("alpha", alpha, self.name)
        self.beta = check_unit("beta", beta, self.name)
        self.smooth = check_smooth(smooth, self.name)
        self.batch = check_flag("batch", batch, self.name)

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        tp, sum_p, sum_g = soft_sums(x, target, self.mode, self.ignore_index, self.batch, check=False)
        dice = 1 - (2 * tp + self.smooth) / (sum_p + sum_g + self.smooth).clamp_min(torch.finfo(x.dtype).tiny)
        return self.alpha * weighted_bce(x, target, self.ignore_index, self.beta) + (1 - self.alpha) * dice.mean()
