"""Matthews correlation coefficient loss (Abhishek & Hamarneh 2021), ``mcc``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import register_loss
from ._common import LossInfo, SegmentationLoss
from ._counts import confusion_counts
from ._keywords import check_flag, check_smooth


def mcc_loss(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor, smooth: float) -> Tensor:
    """``1 - MCC`` per class (Abhishek & Hamarneh 2021, "Matthews correlation coefficient loss for deep
    convolutional networks: application to skin lesion segmentation"),
    ``MCC = (TP TN - FP FN) / sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN))``, each soft count + s."""
    tp, fp, fn, tn = tp + smooth, fp + smooth, fn + smooth, tn + smooth
    # two square roots of two products each: four counts of 1e10 (3-D batches) would overflow float32
    tiny = torch.finfo(tp.dtype).tiny
    den = ((tp + fp) * (tp + fn)).clamp_min(tiny).sqrt() * ((tn + fp) * (tn + fn)).clamp_min(tiny).sqrt()
    return 1 - (tp * tn - fp * fn) / den


@register_loss("mcc")
class MCCLoss(SegmentationLoss):
    """MCC loss (Abhishek & Hamarneh, ISBI 2021): mean over kept classes (and images with ``batch=False``) of
    ``1 - MCC_c`` from soft counts of p against the one-hot target; ignored pixels are out of all four counts.

    Binary equals smp ``MCCLoss(eps=s)`` on ``sigmoid(x)``. A class absent from the target gives about 0.5 even
    for a perfect prediction (the smoothing).

    Args:
        smooth: s added to every count.
        batch: counts over the batch and space (True) or per image (False).
        include_background: False drops channel 0 (multiclass, multilabel).
    """

    info = LossInfo(
        formula="mean_c 1 - (TP TN - FP FN) / sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN))",
        paper="Abhishek & Hamarneh 2021",
        use_when="strong foreground / background imbalance where TN should count too (skin lesions)",
    )

    def __init__(
        self, *, smooth: float = 1e-5, batch: bool = True, include_background: bool = True, **base: Any
    ) -> None:
        super().__init__(**base)  # mode, ignore_index
        self.smooth = check_smooth(smooth, self.name)
        self.batch = check_flag("batch", batch, self.name)
        self.include_background = check_flag("include_background", include_background, self.name)

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        tp, fp, fn, tn = confusion_counts(x, target, self.mode, self.ignore_index, self.batch)
        loss = mcc_loss(tp, fp, fn, tn, self.smooth)
        if not self.include_background and loss.shape[-1] > 1:
            loss = loss[..., 1:]
        return loss.mean()
