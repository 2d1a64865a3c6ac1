"""Dice and IoU from a confusion matrix accumulated on the device over a whole split.

Per class c: IoU_c = TP / (TP + FP + FN) and Dice_c = 2 TP / (2 TP + FP + FN), from hard predictions
(argmax in multiclass mode, logit > 0 in binary and multilabel modes). A class absent from both target
and prediction over the whole split has 0/0: it is NaN and left out of the class mean (nnU-Net's
policy). ``dice``/``iou`` are the means over classes (binary: the foreground class only; multilabel:
over channels). ``dice_per_image`` is the mean over images of each image's foreground Dice (the mean
over foreground classes with a defined Dice in that image; images with none are left out).

``update`` only launches device kernels (a ``scatter_add`` into per-image bins): no host synchronisation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

EMPTY_CLASS_POLICY = (
    "Dice/IoU per class from the confusion matrix summed over the whole split; a class absent from both "
    "target and prediction is NaN and left out of the class mean; per-image Dice is the mean over images "
    "of the mean foreground Dice, images without foreground in target and prediction left out"
)


class SegMetrics:
    """Accumulates per-image confusion matrices; ``compute`` turns them into Dice/IoU.

    Args:
        num_classes: model output channels (1 in binary mode).
        mode: "multiclass", "binary" or "multilabel".
        ignore_index: target value left out of every count (multiclass and binary).
        class_names: one per output channel; used for the per-class keys.
    """

    def __init__(
        self,
        num_classes: int,
        mode: str = "multiclass",
        ignore_index: int | None = None,
        class_names: Sequence[str] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if mode not in ("multiclass", "binary", "multilabel"):
            raise ValueError(f"mode must be multiclass, binary or multilabel, got {mode!r}")
        if mode == "binary" and num_classes != 1:
            raise ValueError(f"binary mode has one output channel, got num_classes={num_classes}")
        self.mode = mode
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names else [f"class_{i}" for i in range(num_classes)]
        # Multiclass: one K x K matrix; binary: one 2 x 2 (background, foreground); multilabel: C of 2 x 2.
        self._groups, self._k = {"multiclass": (1, num_classes), "binary": (1, 2), "multilabel": (num_classes, 2)}[mode]
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        g, k = self._groups, self._k
        self.confmat = torch.zeros(g, k, k, dtype=torch.int64, device=self.device)
        self._image_dice_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self._image_count = torch.zeros((), dtype=torch.int64, device=self.device)

    def _predictions(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hard predictions and targets as int64 of shape N x G x P (G groups, P pixels)."""
        n = logits.shape[0]
        if self.mode == "multiclass":
            pred = logits.max(dim=1).indices.reshape(n, 1, -1)  # max().indices: same ties, ~10x faster on CPU
            tgt = target.reshape(n, 1, -1).long()
        else:
            pred = (logits > 0).long().reshape(n, self._groups, -1)
            tgt = target.reshape(n, self._groups, -1)
            tgt = tgt.long() if not tgt.is_floating_point() else tgt.round().long()
        if pred.shape != tgt.shape:
            raise ValueError(
                f"metrics ({self.mode}): logits {tuple(logits.shape)} and target {tuple(target.shape)} do not match"
            )
        return pred, tgt

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: logits N x C x ..., target as the loss takes it. Stays on the device."""
        pred, tgt = self._predictions(logits.detach(), target.detach())
        n, g, k = pred.shape[0], self._groups, self._k
        valid = torch.ones_like(tgt, dtype=torch.bool)
        if self.ignore_index is not None and self.mode != "multilabel":
            valid = tgt != self.ignore_index
        # Out-of-range targets would land in another image's bins: fold them into ignored instead only
        # where they are ignore_index; anything else is a data error caught by the loss's validation.
        tgt = torch.where(valid, tgt, torch.zeros_like(tgt))
        image_idx = torch.arange(n, device=pred.device).view(n, 1, 1)
        group_idx = torch.arange(g, device=pred.device).view(1, g, 1)
        flat = ((image_idx * g + group_idx) * k + tgt) * k + pred
        size = n * g * k * k
        # ignored pixels go to one spare bin; scatter_add (unlike bincount or boolean indexing) never
        # asks the device for a size, so update() queues kernels without a host synchronisation
        flat = torch.where(valid.expand_as(flat), flat, size).reshape(-1)
        counts = torch.zeros(size + 1, dtype=torch.int64, device=flat.device)
        counts.scatter_add_(0, flat, torch.ones_like(flat))
        per_image = counts[:size].view(n, g, k, k)
        self.confmat += per_image.sum(0)
        self._add_image_dice(per_image)

    def _add_image_dice(self, per_image: torch.Tensor) -> None:
        tp = per_image.diagonal(dim1=-2, dim2=-1)  # N x G x K
        fp = per_image.sum(-2) - tp
        fn = per_image.sum(-1) - tp
        denom = 2 * tp + fp + fn
        dice = (2 * tp).double() / denom.clamp(min=1).double()
        defined = denom > 0
        if self.mode == "multiclass":  # foreground classes: 1..K-1
            dice, defined = dice[:, 0, 1:], defined[:, 0, 1:]
        else:  # foreground = index 1 of every group
            dice, defined = dice[..., 1], defined[..., 1]
        counts = defined.sum(-1)
        image_dice = (dice * defined).sum(-1) / counts.clamp(min=1)
        has = counts > 0
        self._image_dice_sum += torch.where(has, image_dice, 0.0).sum()
        self._image_count += has.sum()

    def sync(self) -> None:
        """Sum the state across ranks (DistributedDataParallel) before ``compute``."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for t in (self.confmat, self._image_dice_sum, self._image_count):
                torch.distributed.all_reduce(t)

    def per_class(self) -> tuple[list[float], list[float]]:
        """(dice, iou) per output channel; NaN where the class is absent from target and prediction."""
        cm = self.confmat.double().cpu()
        tp = cm.diagonal(dim1=-2, dim2=-1)
        fp = cm.sum(-2) - tp
        fn = cm.sum(-1) - tp
        if self.mode == "multiclass":
            tp, fp, fn = tp[0], fp[0], fn[0]
        else:
            tp, fp, fn = tp[:, 1], fp[:, 1], fn[:, 1]
        with torch.no_grad():
            dice = (2 * tp / (2 * tp + fp + fn)).tolist()  # 0/0 -> nan by IEEE
            iou = (tp / (tp + fp + fn)).tolist()
        return dice, iou

    def compute(self) -> dict[str, float]:
        """``{"dice", "iou", "dice_per_image", "dice/<class>", "iou/<class>"}`` (one host sync)."""
        dice, iou = self.per_class()
        out = {"dice": _nanmean(dice), "iou": _nanmean(iou)}
        count = int(self._image_count)
        out["dice_per_image"] = float(self._image_dice_sum) / count if count else math.nan
        for name, d, j in zip(self.class_names, dice, iou, strict=True):
            out[f"dice/{name}"] = d
            out[f"iou/{name}"] = j
        return out


def _nanmean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan
