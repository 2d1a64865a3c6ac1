"""Pixel-wise (distribution) losses: ce, weighted_ce, bce, focal.

Means divide by the number of non-ignored elements (pixels in multiclass, pixel x channel in the sigmoid
modes, as torch's BCE); weighted means divide by the sum of the weights, as torch's cross-entropy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from . import register_loss
from ._common import (
    BINARY,
    MULTICLASS,
    SIGMOID_MODES,
    LossInfo,
    SegmentationLoss,
    check_class_vector,
    check_class_vector_length,
    check_nonnegative,
    masked_mean,
    valid_mask,
)


def cross_entropy(
    x: Tensor,
    target: Tensor,
    ignore_index: int | None,
    weight: Tensor | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Multiclass cross-entropy ``sum_i w_{y_i} (-log softmax(x_i)_{y_i}) / sum_i w_{y_i}`` over kept pixels.

    Equals ``torch.nn.functional.cross_entropy`` (also with ``weight`` and ``label_smoothing``), except that
    a batch with every pixel ignored gives 0 instead of NaN.
    """
    if ignore_index is None and weight is None:
        return F.cross_entropy(x, target, label_smoothing=label_smoothing)
    ignore = -100 if ignore_index is None else ignore_index  # labels are >= 0, so -100 ignores nothing
    # torch's sum of w_y (-log p_y) over kept pixels (its smoothing mixes in the weighted mean over classes)
    total = F.cross_entropy(
        x, target, weight=weight, ignore_index=ignore, label_smoothing=label_smoothing, reduction="sum"
    )
    valid = valid_mask(target, ignore_index)
    if weight is None:
        return total / valid.sum().clamp_min(1).to(x.dtype)
    w = weight[target if valid is None else torch.where(valid, target, 0)]
    if valid is not None:
        w = torch.where(valid, w, 0.0)
    return total / w.sum().clamp_min(torch.finfo(x.dtype).tiny)


def binary_cross_entropy(
    x: Tensor,
    target: Tensor,
    ignore_index: int | None,
    pos_weight: Tensor | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    """BCE with logits ``-[w_+ y log s(x) + (1 - y) log(1 - s(x))]``, mean over kept elements."""
    valid = valid_mask(target, ignore_index)
    y = target.to(x.dtype)
    if valid is not None:
        y = torch.where(valid, y, 0.0)
    if label_smoothing:
        y = y * (1 - label_smoothing) + label_smoothing / 2
    if pos_weight is not None:
        pos_weight = pos_weight.to(x).view(1, -1, *([1] * (x.ndim - 2)))
    if valid is None:
        return F.binary_cross_entropy_with_logits(x, y, pos_weight=pos_weight)
    losses = F.binary_cross_entropy_with_logits(x, y, pos_weight=pos_weight, reduction="none")
    return masked_mean(losses, valid)


@register_loss("ce")
class CrossEntropyLoss(SegmentationLoss):
    """Cross-entropy: softmax CE in multiclass mode, BCE with logits in binary and multilabel mode.

    Args:
        weight: per-class weights (multiclass), torch's weighted mean ``sum w_y l / sum w_y``.
        label_smoothing: torch's label smoothing (sigmoid modes: targets y (1 - e) + e / 2).
    """

    info = LossInfo(
        formula="-log p_y (softmax CE; BCE with logits in binary/multilabel)",
        paper="-",
        use_when="the default baseline; well-calibrated probabilities",
    )

    def __init__(self, *, weight: Sequence[float] | None = None, label_smoothing: float = 0.0, **base: Any) -> None:
        super().__init__(**base)  # mode, ignore_index
        self.label_smoothing = check_nonnegative("label_smoothing", label_smoothing, "ce")
        if self.label_smoothing > 1:
            raise ValueError(f"ce: label_smoothing must lie in [0, 1], got {label_smoothing}.")
        if weight is not None and self.mode != MULTICLASS:
            raise ValueError("ce: weight is a per-class weight for multiclass mode; use bce's pos_weight instead.")
        self.weight = check_class_vector("weight", weight, "ce")

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        if self.mode != MULTICLASS:
            return binary_cross_entropy(x, target, self.ignore_index, label_smoothing=self.label_smoothing)
        weight = None
        if self.weight is not None:
            check_class_vector_length("weight", self.weight, x.shape[1], "ce")
            weight = self.weight.to(x)
        return cross_entropy(x, target, self.ignore_index, weight, self.label_smoothing)


def class_balance_weights(counts: Tensor) -> Tensor:
    """``w_c = (F - f_c) / F`` with ``F = sum f``: rare classes weigh about 1, a dominant one about 0."""
    total = counts.sum()
    return (total - counts) / total.clamp_min(torch.finfo(counts.dtype).tiny)


@register_loss("weighted_ce")
class WeightedCrossEntropyLoss(SegmentationLoss):
    """Class-balanced cross-entropy, weights ``w_c = (N - N_c) / N`` (Ronneberger et al.'s balancing idea).

    ``N_c`` are the batch's pixel counts per class (ignored pixels excluded), or ``frequencies`` (counts or
    fractions of the data set) when given. When every present class weighs 0 (one class in the batch)
    the loss falls back to plain CE. Binary mode treats the target as the two classes {0, 1}.
    """

    modes = (MULTICLASS, BINARY)
    info = LossInfo(
        formula="sum w_y (-log p_y) / sum w_y, w_c = (N - N_c) / N from batch or data-set class counts",
        paper="-",
        use_when="moderate class imbalance, and you still want a pixel-wise loss",
    )

    def __init__(self, *, frequencies: Sequence[float] | None = None, **base: Any) -> None:
        super().__init__(**base)  # mode, ignore_index
        self.frequencies = check_class_vector("frequencies", frequencies, "weighted_ce")
        if self.frequencies is not None and self.frequencies.sum() <= 0:
            raise ValueError("weighted_ce: frequencies must not all be 0.")

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        if self.mode == BINARY:
            return self._binary(x, target)
        num_classes = x.shape[1]
        valid = valid_mask(target, self.ignore_index)
        labels = target.long() if valid is None else torch.where(valid, target.long(), 0)
        if self.frequencies is not None:
            check_class_vector_length("frequencies", self.frequencies, num_classes, "weighted_ce")
            weight = class_balance_weights(self.frequencies.to(x))
        else:
            kept = labels.flatten() if valid is None else labels[valid]
            weight = class_balance_weights(torch.bincount(kept, minlength=num_classes).to(x.dtype))
        picked = weight[labels]
        if valid is not None:
            picked = torch.where(valid, picked, 0.0)
        if not bool(picked.sum() > 0):
            picked = valid.to(x.dtype) if valid is not None else torch.ones_like(picked)
        nll = F.cross_entropy(x, labels, reduction="none")  # -log p_y
        return (picked * nll).sum() / picked.sum().clamp_min(torch.finfo(x.dtype).tiny)

    def _binary(self, x: Tensor, target: Tensor) -> Tensor:
        """The two classes {0, 1}: weight ``w_1`` on class-1 pixels, ``w_0`` on class-0 pixels."""
        valid = valid_mask(target, self.ignore_index)
        y = (target == 1).to(x.dtype)  # class 1; 0 for class 0 and for ignored pixels
        kept = float(target.numel()) if valid is None else valid.sum().to(x.dtype)
        positives = y.sum()
        if self.frequencies is not None:
            check_class_vector_length("frequencies", self.frequencies, 2, "weighted_ce")
            w0, w1 = class_balance_weights(self.frequencies.to(x))
        else:
            w0, w1 = class_balance_weights(torch.stack([kept - positives, positives]))
        total_weight = w0 * (kept - positives) + w1 * positives
        if not bool(total_weight > 0):  # one class only: plain BCE over the kept pixels
            w0 = w1 = torch.ones((), dtype=x.dtype, device=x.device)
            total_weight = torch.as_tensor(kept, dtype=x.dtype, device=x.device)
        picked = torch.where(y > 0, w1, w0)
        if valid is not None:
            picked = torch.where(valid, picked, 0.0)
        losses = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        return (picked * losses).sum() / total_weight.clamp_min(torch.finfo(x.dtype).tiny)


@register_loss("bce")
class BCELoss(SegmentationLoss):
    """Binary cross-entropy with logits (binary, multilabel), mean over every kept element.

    Args:
        pos_weight: weight of positives, a number or one per channel (torch's ``pos_weight``).
    """

    modes = SIGMOID_MODES
    info = LossInfo(
        formula="-[w_+ y log s(x) + (1 - y) log(1 - s(x))]", paper="-", use_when="sigmoid outputs; overlapping labels"
    )

    def __init__(self, *, mode: str = BINARY, pos_weight: float | Sequence[float] | None = None, **base: Any) -> None:
        super().__init__(mode=mode, **base)  # ignore_index
        self.pos_weight = check_class_vector("pos_weight", pos_weight, "bce")

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        pos_weight = self.pos_weight
        if pos_weight is not None and pos_weight.numel() != 1:
            check_class_vector_length("pos_weight", pos_weight, x.shape[1], "bce")
        return binary_cross_entropy(x, target, self.ignore_index, pos_weight)


def focal_loss(
    x: Tensor, target: Tensor, mode: str, ignore_index: int | None, gamma: float, alpha: float | Tensor | None
) -> Tensor:
    """Focal loss ``mean_x[-alpha_t (1 - p_t)^gamma log p_t]`` (Lin et al., ICCV 2017).

    Sigmoid modes: per element, ``alpha_t = alpha`` on positives and ``1 - alpha`` on negatives (binary
    alpha=0.25 is torchvision's ``sigmoid_focal_loss``). Multiclass: ``p_t`` the softmax probability of the
    target class, ``alpha_t = alpha[y]`` (a per-class list, or None for 1). ``1 - p_t`` is clamped at a
    tiny epsilon so that gamma < 1 keeps a finite gradient where p_t == 1.
    """
    eps = 1e-30 if x.dtype == torch.float64 else 1e-20
    valid = valid_mask(target, ignore_index)
    if mode == MULTICLASS:
        labels = target if valid is None else torch.where(valid, target, 0)
        log_pt = x.log_softmax(1).gather(1, labels.unsqueeze(1)).squeeze(1)
        losses = -((1 - log_pt.exp()).clamp_min(eps) ** gamma) * log_pt
        if alpha is not None:
            losses = losses * alpha.to(x)[labels]
        return masked_mean(losses, valid)
    y = target.to(x.dtype)
    if valid is not None:
        y = torch.where(valid, y, 0.0)
    p = x.sigmoid()
    p_t = p * y + (1 - p) * (1 - y)
    losses = (1 - p_t).clamp_min(eps) ** gamma * F.binary_cross_entropy_with_logits(x, y, reduction="none")
    if alpha is not None:
        losses = losses * (alpha * y + (1 - alpha) * (1 - y))
    return masked_mean(losses, valid)


@register_loss("focal")
class FocalLoss(SegmentationLoss):
    """Focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

    ``mean over kept pixels of -alpha_t (1 - p_t)^gamma log p_t``.

    Args:
        gamma: focusing parameter (0 gives CE).
        alpha: binary/multilabel: weight of positives (``1 - alpha`` on negatives), a float in [0, 1];
            multiclass: None or a list of C per-class weights.
    """

    info = LossInfo(
        formula="mean -alpha_t (1 - p_t)^gamma log p_t",
        paper="Lin et al. 2017",
        use_when="many easy pixels (a large background) drown the hard ones",
    )

    def __init__(self, *, gamma: float = 2.0, alpha: float | Sequence[float] | None = None, **base: Any) -> None:
        super().__init__(**base)  # mode, ignore_index
        self.gamma = check_nonnegative("gamma", gamma, "focal")
        self.alpha: float | Tensor | None
        if alpha is None:
            self.alpha = None
        elif self.mode == MULTICLASS:
            if isinstance(alpha, int | float):
                raise ValueError(
                    f"focal: in multiclass mode alpha is None or a list of per-class weights, got the number {alpha}."
                )
            self.alpha = check_class_vector("alpha", alpha, "focal")
        else:
            if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
                raise ValueError(f"focal: in {self.mode} mode alpha is None or a number in [0, 1], got {alpha!r}.")
            self.alpha = float(alpha)

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        if isinstance(self.alpha, Tensor):
            check_class_vector_length("alpha", self.alpha, x.shape[1], "focal")
        return focal_loss(x, target, self.mode, self.ignore_index, self.gamma, self.alpha)
