"""Lovasz-Softmax and Lovasz hinge (Berman, Rannen Triki & Blaschko, CVPR 2018), vectorised.

Every (image, class) group is sorted at once with one batched ``torch.sort`` and the Jaccard gradient
comes from cumulative sums, instead of one sort per class and image in a Python loop (smp, the reference
code): the same formula, one kernel per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import register_loss
from ._common import BINARY, MULTICLASS, MULTILABEL, LossInfo, SegmentationLoss, one_hot, valid_mask


def lovasz_grad(fg_sorted: Tensor) -> Tensor:
    """``g_i = J_i - J_(i-1)`` per row of a sorted 0/1 foreground (G x P), with the Jaccard loss
    ``J_i = 1 - |fg minus the first i| / |fg plus the first i|`` (Berman et al. 2018, Alg. 1)."""
    total = fg_sorted.sum(1, keepdim=True)
    intersection = total - fg_sorted.cumsum(1)
    union = total + (1 - fg_sorted).cumsum(1)
    jaccard = 1 - intersection / union
    return torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)


def lovasz_extension(errors: Tensor, fg: Tensor, valid: Tensor | None) -> Tensor:
    """Lovasz extension of the Jaccard loss for each row of ``errors`` (G x P): ``sum_i e_(i) g_i``, the
    errors sorted in decreasing order and ``g = lovasz_grad`` of the foreground in that order.

    Elements where ``valid`` is False sort last with error 0, so they change neither the value nor the
    gradient.
    """
    if valid is not None:
        errors = torch.where(valid, errors, -torch.inf)
    perm = descending_order(errors.detach())
    errors_sorted = errors.gather(1, perm)
    # counts up to 2^24 are exact in float32; beyond that the cumulative sums need float64
    dtype = errors.dtype if errors.shape[1] < 2**24 else torch.float64
    with torch.no_grad():
        grad = lovasz_grad(fg.gather(1, perm).to(dtype)).to(errors.dtype)
    return (F.relu(errors_sorted) * grad).sum(1)


def descending_order(keys: Tensor) -> Tensor:
    """Row-wise permutation that sorts ``keys`` (G x P) in decreasing order: ``torch.sort`` (the plain
    version, ``descending_order_plain``), except on a CPU, where numpy sorts packed float32 keys
    (``packed_descending_order``) or argsorts the others: that keeps Lovasz at least 2x faster than smp's
    (docs/losses.md, "Kept tricks")."""
    if keys.device.type == "cpu":
        array = np.ascontiguousarray(keys.numpy())
        if array.dtype == np.float32 and array.shape[1] < 2**32:
            return torch.from_numpy(packed_descending_order(array))
        return torch.from_numpy(np.argsort(np.negative(array), axis=1))
    return descending_order_plain(keys)


def packed_descending_order(keys: np.ndarray) -> np.ndarray:
    """Row-wise decreasing order of float32 keys (G x P, P < 2^32) by sorting values instead of indices: each
    key's bits, mapped so that unsigned order is decreasing float order, fill the high 32 bits of a uint64
    and its index the low 32. numpy sorts such integers several times faster than it argsorts floats (its
    SIMD sort); equal keys come out in index order."""
    bits = keys.view(np.uint32)
    # IEEE 754 bits in decreasing-float unsigned order: negatives keep theirs (a larger magnitude sorts later),
    # the others flip all but the sign bit (mask 0x7FFFFFFF; (sign - 1) wraps to all ones for them)
    decreasing = bits ^ (((bits >> np.uint32(31)) - np.uint32(1)) & np.uint32(0x7FFFFFFF))
    packed = decreasing.astype(np.uint64) << np.uint64(32)
    packed |= np.arange(keys.shape[1], dtype=np.uint64)
    packed.sort(axis=1)
    return (packed & np.uint64(0xFFFFFFFF)).astype(np.int64)


def descending_order_plain(keys: Tensor) -> Tensor:
    return torch.sort(keys, dim=1, descending=True).indices


def _groups(t: Tensor, per_image: bool) -> Tensor:
    """N x K x S -> (N K) x S when per image, else K x (N S): one row per group to sort."""
    n, k = t.shape[:2]
    return t.reshape(n * k, -1) if per_image else t.transpose(0, 1).reshape(k, -1)


def lovasz_softmax(
    x: Tensor, target: Tensor, ignore_index: int | None, per_image: bool, classes: str | Sequence[int]
) -> Tensor:
    """Lovasz-Softmax: mean over classes (``"present"``: those in the target) of the Lovasz extension of
    the errors ``|fg_c - p_c|``; per image then averaged over images when ``per_image``."""
    n, c = x.shape[:2]
    prob = x.softmax(1)
    valid = valid_mask(target, ignore_index)
    fg = one_hot(target, c, valid)
    if not isinstance(classes, str):
        index = torch.as_tensor(list(classes), device=x.device)
        prob, fg = prob.index_select(1, index), fg.index_select(1, index)
    k = prob.shape[1]
    errors = torch.where(fg, 1 - prob, prob)
    valid_rows = None if valid is None else _groups(valid.unsqueeze(1).expand(n, k, *valid.shape[1:]), per_image)
    losses = lovasz_extension(_groups(errors, per_image), _groups(fg, per_image), valid_rows)
    losses = losses.view(n, k) if per_image else losses.view(1, k)
    if classes == "present":
        present = _groups(fg, per_image).any(1).view(losses.shape).to(losses.dtype)
        per_group = (losses * present).sum(1) / present.sum(1).clamp_min(1)
    else:
        per_group = losses.mean(1)
    return per_group.mean()


def lovasz_hinge(x: Tensor, target: Tensor, ignore_index: int | None, per_image: bool) -> Tensor:
    """Lovasz hinge: the Lovasz extension of the hinge errors ``relu(1 - x (2 y - 1))`` of the logits, per
    channel (mean over channels), per image then averaged over images when ``per_image``."""
    valid = valid_mask(target, ignore_index)
    y = target.to(x.dtype)
    if valid is not None:
        y = torch.where(valid, y, 0.0)
    errors = 1 - x * (2 * y - 1)
    valid_rows = None if valid is None else _groups(valid, per_image)
    losses = lovasz_extension(_groups(errors, per_image), _groups(y, per_image), valid_rows)
    return losses.mean()


@register_loss("lovasz")
class LovaszLoss(SegmentationLoss):
    """Lovasz-Softmax (multiclass) / Lovasz hinge (binary; multilabel per channel, mean over channels),
    Berman et al., "The Lovasz-Softmax loss", CVPR 2018.

    Equals smp ``LovaszLoss(mode, per_image, ignore_index)`` in multiclass and binary mode (smp's multilabel
    mode pools all channels into one hinge; here each channel is its own group, as in binary mode).

    Args:
        per_image: compute per image, then average over images (else over the whole batch at once).
        classes: ``"present"`` (classes in the target), ``"all"``, or a list of class indices (multiclass).
    """

    info = LossInfo(
        formula="mean_c sum_i e_c(i) (J_c(i) - J_c(i-1)), errors sorted, J the Jaccard loss (Lovasz extension)",
        paper="Berman et al. 2018",
        use_when="fine-tuning for mIoU (usually after a CE warm-up)",
    )

    def __init__(self, *, per_image: bool = False, classes: str | Sequence[int] = "present", **base: Any) -> None:
        super().__init__(**base)  # mode, ignore_index
        self.per_image = bool(per_image)
        if isinstance(classes, str):
            if classes not in ("present", "all"):
                raise ValueError(f"lovasz: classes must be 'present', 'all' or a list of indices, got {classes!r}.")
        elif self.mode != MULTICLASS:
            raise ValueError("lovasz: a list of classes applies to multiclass mode only.")
        elif not classes or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in classes):
            raise ValueError(f"lovasz: classes must be a non-empty list of class indices, got {classes!r}.")
        self.classes = classes if isinstance(classes, str) else [int(c) for c in classes]

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        if self.mode in (BINARY, MULTILABEL):
            return lovasz_hinge(x, target, self.ignore_index, self.per_image)
        if not isinstance(self.classes, str) and max(self.classes) >= x.shape[1]:
            raise ValueError(f"lovasz: classes {self.classes} name a class beyond the logits' {x.shape[1]}.")
        return lovasz_softmax(x, target, self.ignore_index, self.per_image, self.classes)
