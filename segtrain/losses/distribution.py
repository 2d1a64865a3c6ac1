"""Pixel-wise (distribution) losses: ce, weighted_ce, bce, focal.

Means divide by the number of non-ignored elements (pixels in multiclass, pixel x channel in the sigmoid
modes, as torch's BCE); weighted means divide by the sum of the weights, as torch's cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from . import LOSSES
from ._common import (
    BINARY,
    MULTICLASS,
    SIGMOID_MODES,
    SegmentationLoss,
    check_class_vector,
    check_class_vector_length,
    check_nonnegative,
    label_log_probability,
    masked_mean,
    per_class,
    probabilities,
    valid_mask,
)


def _weighted_mean(values: Tensor, weights: Tensor) -> Tensor:
    """sum w l / sum w (ignored elements carry w = 0); 0 when every weight is 0."""
    return values.sum() / weights.sum().clamp_min(torch.finfo(values.dtype).tiny)


def _kept_mean(weighted_sum: Callable[[Tensor | None], Tensor], x: Tensor, valid: Tensor | None) -> Tensor:
    """Mean over the kept elements of x from a function that sums per-element losses with weights
    (None: all 1; else the kept mask as floats, 0 where ignored); 0 when nothing is kept."""
    if valid is None:
        return weighted_sum(None) / max(x.numel(), 1)
    kept = valid.expand_as(x).to(x.dtype)
    return weighted_sum(kept) / kept.sum().clamp_min(1)


class BCEWithLogitsSum(torch.autograd.Function):
    """``sum_i w_i (softplus(x_i) - x_i y_i)``, BCE with logits summed with weights ``w`` (1 when None),
    with the gradient ``w (sigmoid(x) - y)`` written out.

    torch's ``binary_cross_entropy_with_logits`` materialises ``log_sigmoid(x)`` with its buffer,
    ``(1 - y) x`` and the loss map; summing inside the function takes one ``softplus`` and a dot product
    forward and one ``sigmoid`` backward (4M elements on a CPU: 1.3x faster than torch's mean).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor, w: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, y, w)
        if w is None:
            return F.softplus(x).sum() - torch.dot(x.reshape(-1), y.reshape(-1))
        return torch.dot(F.softplus(x).addcmul_(x, y, value=-1).reshape(-1), w.reshape(-1))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, y, w = ctx.saved_tensors
        dx = torch.sigmoid(x).sub_(y)
        if w is not None:
            dx.mul_(w)
        return dx.mul_(grad), None, None


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
    if label_smoothing:  # torch's definition of smoothing together with class weights, kept as it is
        return _smoothed_cross_entropy(x, target, ignore_index, weight, label_smoothing)
    valid = valid_mask(target, ignore_index)
    labels = target if valid is None else torch.where(valid, target, 0)
    w = None
    if weight is not None:
        w = per_class(weight, labels)
        if valid is not None:
            w = torch.where(valid, w, 0.0)
    elif valid is not None:
        w = valid.to(x.dtype)
    log_p = label_log_probability(x, labels).flatten()  # negated after the sum: one op less per pixel
    if w is None:
        return -log_p.sum() / max(target.numel(), 1)
    return -torch.dot(log_p, w.flatten()) / w.sum().clamp_min(torch.finfo(x.dtype).tiny)


def _smoothed_cross_entropy(
    x: Tensor, target: Tensor, ignore_index: int | None, weight: Tensor | None, label_smoothing: float
) -> Tensor:
    ignore = -100 if ignore_index is None else ignore_index
    if weight is None:
        total = F.cross_entropy(x, target, ignore_index=ignore, label_smoothing=label_smoothing, reduction="sum")
        if ignore_index is None:
            return total / max(target.numel(), 1)
        return total / (target != ignore_index).sum().clamp_min(1).to(x.dtype)
    losses = F.cross_entropy(
        x, target, weight=weight, ignore_index=ignore, label_smoothing=label_smoothing, reduction="none"
    )
    valid = valid_mask(target, ignore_index)
    picked = per_class(weight, target.clamp(0, weight.numel() - 1))
    if valid is not None:
        picked = torch.where(valid, picked, 0.0)
    return _weighted_mean(losses, picked)


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
        losses = F.binary_cross_entropy_with_logits(x, y, pos_weight=pos_weight, reduction="none")
        return masked_mean(losses, valid)
    return _kept_mean(lambda kept: BCEWithLogitsSum.apply(x, y, kept), x, valid)


@LOSSES.register("ce")
class CrossEntropyLoss(SegmentationLoss):
    """Cross-entropy: softmax CE in multiclass mode, BCE with logits in binary and multilabel mode.

    Args:
        weight: per-class weights (multiclass), torch's weighted mean ``sum w_y l / sum w_y``.
        label_smoothing: torch's label smoothing (sigmoid modes: targets y (1 - e) + e / 2).
    """

    name = "ce"
    formula = "-log p_y (softmax CE; BCE with logits in binary/multilabel)"
    paper = "-"
    use_when = "the default baseline; well-calibrated probabilities"

    def __init__(
        self,
        *,
        mode: str = MULTICLASS,
        ignore_index: int | None = None,
        weight: Sequence[float] | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(mode=mode, ignore_index=ignore_index)
        self.label_smoothing = check_nonnegative("label_smoothing", label_smoothing, "ce")
        if self.label_smoothing > 1:
            raise ValueError(f"ce: label_smoothing must lie in [0, 1], got {label_smoothing}.")
        # the gather of LogSoftmaxAtLabel checks every label; torch's smoothed CE would skip a label -100
        self.labels_index_checked = not self.label_smoothing
        if weight is not None and mode != MULTICLASS:
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


@LOSSES.register("weighted_ce")
class WeightedCrossEntropyLoss(SegmentationLoss):
    """Class-balanced cross-entropy, weights ``w_c = (N - N_c) / N`` (Ronneberger et al.'s balancing idea).

    ``N_c`` are the batch's pixel counts per class (ignored pixels excluded), or ``frequencies`` (counts or
    fractions of the data set) when given. When every present class weighs 0 (one class in the batch)
    the loss falls back to plain CE. Binary mode treats the target as the two classes {0, 1}.
    """

    name = "weighted_ce"
    labels_index_checked = True  # gathers every label's log-probability
    modes = (MULTICLASS, BINARY)
    formula = "sum w_y (-log p_y) / sum w_y, w_c = (N - N_c) / N from batch or data-set class counts"
    paper = "-"
    use_when = "moderate class imbalance, and you still want a pixel-wise loss"

    def __init__(
        self,
        *,
        mode: str = MULTICLASS,
        ignore_index: int | None = None,
        frequencies: Sequence[float] | None = None,
    ) -> None:
        super().__init__(mode=mode, ignore_index=ignore_index)
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
        picked = per_class(weight, labels)
        if valid is not None:
            picked = torch.where(valid, picked, 0.0)
        if not bool(picked.sum() > 0):
            picked = valid.to(x.dtype) if valid is not None else torch.ones_like(picked)
        log_p = label_log_probability(x, labels)
        return -torch.dot(log_p.flatten(), picked.flatten()) / picked.sum().clamp_min(torch.finfo(x.dtype).tiny)

    def _binary(self, x: Tensor, target: Tensor) -> Tensor:
        """The two classes {0, 1} with per-pixel weights ``w_0 + (w_1 - w_0) y``: arithmetic on the target
        instead of indexing a weight table with it (4M-pixel batches: 1.8x faster)."""
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
        picked = y.mul(w1 - w0).add_(w0)
        if valid is not None:
            picked.mul_(valid)
        return BCEWithLogitsSum.apply(x, y, picked) / total_weight.clamp_min(torch.finfo(x.dtype).tiny)


@LOSSES.register("bce")
class BCELoss(SegmentationLoss):
    """Binary cross-entropy with logits (binary, multilabel), mean over every kept element.

    Args:
        pos_weight: weight of positives, a number or one per channel (torch's ``pos_weight``).
    """

    name = "bce"
    modes = SIGMOID_MODES
    formula = "-[w_+ y log s(x) + (1 - y) log(1 - s(x))]"
    paper = "-"
    use_when = "sigmoid outputs; overlapping labels"

    def __init__(
        self,
        *,
        mode: str = BINARY,
        ignore_index: int | None = None,
        pos_weight: float | Sequence[float] | None = None,
    ) -> None:
        super().__init__(mode=mode, ignore_index=ignore_index)
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
    target class, ``alpha_t = alpha[y]`` (a per-class list, or None for 1).
    """
    valid = valid_mask(target, ignore_index)
    if mode == MULTICLASS:
        labels = target if valid is None else torch.where(valid, target, 0)
        log_pt = label_log_probability(x, labels)
        losses = FocalTerm.apply(log_pt, float(gamma)) if gamma else -log_pt
        if alpha is not None:
            losses = losses * per_class(alpha.to(x), labels)
        return masked_mean(losses, valid)
    y = target.to(x.dtype)
    p = probabilities(x, mode).detach()  # shared with a compound's region part
    if valid is not None:
        y = torch.where(valid, y, 0.0)
    return _kept_mean(lambda kept: SigmoidFocalSum.apply(x, p, y, float(gamma), alpha, kept), x, valid)


def _focal_eps(x: Tensor) -> float:
    return 1e-30 if x.dtype == torch.float64 else 1e-20


class FocalTerm(torch.autograd.Function):
    """``-(1 - p)^gamma log p`` from ``log p`` (each pixel's log-probability of its label), with the
    derivative ``q^(gamma - 1) (gamma p log p - q)``, ``q = 1 - p``, written out: a few passes over N x S
    instead of autograd's chain of small tensors (on a CPU each small op also pays a thread hand-off).
    q is clamped at a tiny epsilon so that gamma < 1 keeps a finite gradient where p == 1.
    """

    @staticmethod
    def forward(ctx: Any, log_p: Tensor, gamma: float) -> Tensor:
        p = log_p.exp()
        q = torch.rsub(p, 1).clamp_min_(_focal_eps(log_p))
        q_gamma_1 = q if gamma == 2 else q.pow(gamma - 1)
        ctx.save_for_backward(log_p, p, q, q_gamma_1)
        ctx.gamma = gamma
        return torch.mul(q_gamma_1, q).mul_(log_p).neg_()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        log_p, p, q, q_gamma_1 = ctx.saved_tensors
        return torch.mul(p, log_p).mul_(ctx.gamma).sub_(q).mul_(q_gamma_1).mul_(grad), None


class SigmoidFocalSum(torch.autograd.Function):
    """Sigmoid focal loss summed with weights, ``sum_i w_i alpha_t q^gamma BCE(x_i, y_i)``, with its
    gradient written out,

    ``d/dx = w alpha_t q^(gamma - 1) [q (p - y) + gamma (1 - 2y) p (1 - p) BCE]`` with ``p = sigmoid(x)``
    and ``q = 1 - p_t = y + p (1 - 2y)``: a few in-place passes instead of the dozen tensors autograd
    would keep (about 3x faster on a CPU; the same values as the composed formula, to float rounding).
    ``p``: the sigmoid of x, passed in so that a compound shares it; ``w``: 0 at ignored elements (None:
    all 1).
    """

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, p: Tensor, y: Tensor, gamma: float, alpha: float | None, w: Tensor | None
    ) -> Tensor:
        ce = F.softplus(x).addcmul_(x, y, value=-1)  # BCE with logits
        s = torch.rsub(y, 1, alpha=2)  # 1 - 2y
        q = torch.addcmul(y, p, s).clamp_min_(_focal_eps(x))
        weight = w
        if alpha is not None:  # alpha on positives, 1 - alpha on negatives, in one pass
            weight = torch.add(y.new_tensor(1 - alpha), y, alpha=2 * alpha - 1)
            if w is not None:
                weight.mul_(w)
        losses = q * q if gamma == 2 else q.pow(gamma)
        losses.mul_(ce)
        ctx.save_for_backward(p, y, s, ce, q, weight)
        ctx.gamma = gamma
        return losses.sum() if weight is None else torch.dot(losses.reshape(-1), weight.reshape(-1))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        p, y, s, ce, q, weight = ctx.saved_tensors
        gamma = ctx.gamma
        dx = torch.sub(p, y)
        if gamma:
            dx.mul_(q).add_(torch.rsub(p, 1).mul_(p).mul_(s).mul_(ce), alpha=gamma)
            if gamma != 1:
                dx.mul_(q if gamma == 2 else q.pow(gamma - 1))
        if weight is not None:
            dx.mul_(weight)
        return dx.mul_(grad), None, None, None, None, None


@LOSSES.register("focal")
class FocalLoss(SegmentationLoss):
    """Focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

    ``mean over kept pixels of -alpha_t (1 - p_t)^gamma log p_t``.

    Args:
        gamma: focusing parameter (0 gives CE).
        alpha: binary/multilabel: weight of positives (``1 - alpha`` on negatives), a float in [0, 1];
            multiclass: None or a list of C per-class weights.
    """

    name = "focal"
    labels_index_checked = True  # multiclass: gathers every label's log-probability
    formula = "mean -alpha_t (1 - p_t)^gamma log p_t"
    paper = "Lin et al. 2017"
    use_when = "many easy pixels (a large background) drown the hard ones"

    def __init__(
        self,
        *,
        mode: str = MULTICLASS,
        ignore_index: int | None = None,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
    ) -> None:
        super().__init__(mode=mode, ignore_index=ignore_index)
        self.gamma = check_nonnegative("gamma", gamma, "focal")
        self.alpha: float | Tensor | None
        if alpha is None:
            self.alpha = None
        elif mode == MULTICLASS:
            if isinstance(alpha, int | float):
                raise ValueError(
                    f"focal: in multiclass mode alpha is None or a list of per-class weights, got the number {alpha}."
                )
            self.alpha = check_class_vector("alpha", alpha, "focal")
        else:
            if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
                raise ValueError(f"focal: in {mode} mode alpha is None or a number in [0, 1], got {alpha!r}.")
            self.alpha = float(alpha)

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        if isinstance(self.alpha, Tensor):
            check_class_vector_length("alpha", self.alpha, x.shape[1], "focal")
        return focal_loss(x, target, self.mode, self.ignore_index, self.gamma, self.alpha)
