"""Soft confusion counts TP, FP, FN, TN per class, from ``soft_sums`` (TP, sum p, sum g) and the number of kept
pixels: mcc and the unified focal losses need TN, which the region losses do not."""

from __future__ import annotations

from torch import Tensor

from ._common import soft_sums, valid_mask


def kept_count(x: Tensor, target: Tensor, ignore_index: int | None, batch: bool) -> Tensor | float:
    """The number of kept pixels behind each sum: a float when nothing is ignored, else per image (N x 1, or
    N x C for a binary target's single channel) or summed over the batch."""
    valid = valid_mask(target, ignore_index)
    n, spatial = x.shape[0], x[0, 0].numel()
    if valid is None:
        return float(spatial * n if batch else spatial)
    counts = valid.reshape(n, -1).sum(1, keepdim=True).to(x.dtype)  # multiclass N x S; binary N x 1 x S
    return counts.sum(0) if batch else counts


def confusion_counts(
    x: Tensor, target: Tensor, mode: str, ignore_index: int | None, batch: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Soft TP, FP, FN, TN of p (softmax / sigmoid of x) against the (one-hot) target, per class (C) or per
    image and class (N x C); ignored pixels are out of all four. ``target`` is canonical (``check_inputs``)."""
    tp, sum_p, sum_g = soft_sums(x, target, mode, ignore_index, batch, check=False)
    total = kept_count(x, target, ignore_index, batch)
    fp, fn = sum_p - tp, sum_g - tp
    return tp, fp, fn, total - sum_p - sum_g + tp
