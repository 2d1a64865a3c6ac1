"""Evaluating a model on a loader: Dice/IoU over the split, each image's Dice and its distribution."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segtrain.inference.predict import predict_logits
from segtrain.metrics import EMPTY_CLASS_POLICY, SegMetrics
from segtrain.modes import MULTICLASS


def dice_distribution(values: Iterable[float], bins: int = 10) -> dict[str, Any]:
    """mean, median, p10, p90, std, min, max and a histogram over [0, 1] of the defined (non-NaN) values."""
    all_values = list(values)
    arr = np.asarray([v for v in all_values if not math.isnan(v)], dtype=np.float64)
    counts, edges = np.histogram(arr, bins=bins, range=(0.0, 1.0))
    stats: dict[str, Any] = {"count": int(arr.size), "undefined": len(all_values) - int(arr.size)}
    if arr.size:
        p10, median, p90 = np.percentile(arr, [10, 50, 90])
        stats.update(
            mean=float(arr.mean()), median=float(median), p10=float(p10), p90=float(p90),
            std=float(arr.std()), min=float(arr.min()), max=float(arr.max()),
        )  # fmt: skip
    else:
        stats.update({k: math.nan for k in ("mean", "median", "p10", "p90", "std", "min", "max")})
    stats["histogram"] = {"bin_edges": [round(float(e), 6) for e in edges], "counts": counts.tolist()}
    return stats


def _image_dice(metrics: SegMetrics, logits: torch.Tensor, target: torch.Tensor) -> float:
    """One image's foreground Dice as SegMetrics defines it (mean over its foreground classes with a
    defined Dice; NaN when it has none): SegMetrics itself on that one image."""
    metrics.reset()
    metrics.update(logits, target)
    dice, _ = metrics.per_class()
    fg = dice[1:] if metrics.mode == MULTICLASS else dice
    kept = [d for d in fg if not math.isnan(d)]
    return sum(kept) / len(kept) if kept else math.nan


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Mapping[str, Any]],
    mode: str,
    num_classes: int,
    ignore_index: int | None = None,
    class_names: Sequence[str] | None = None,
    tta: bool = False,
    device: str | torch.device = "cpu",
    window: int | None = None,
    overlap: float = 0.5,
    blend: str = "gaussian",
    bins: int = 10,
) -> dict[str, Any]:
    """Dice/IoU over the whole of ``loader`` (batches of ``{"image", "mask", "id"}``) with SegMetrics, and
    each image's foreground Dice for a distribution.

    Returns ``{"dice", "iou", "dice_per_image", "per_class": {"dice": {cls: v}, "iou": {...}},
    "per_image_dice": {mean, median, p10, p90, ..., histogram}, "per_image": [{"id", "dice"}, ...],
    "num_images", "tta", "window", "empty_class_policy"}``; NaN where a value is undefined.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    metrics = SegMetrics(num_classes, mode, ignore_index, class_names, device=device)
    single = SegMetrics(num_classes, mode, ignore_index, class_names, device=device)
    per_image: list[dict[str, Any]] = []
    for batch in loader:
        x, y = batch["image"].to(device), batch["mask"].to(device)
        logits = predict_logits(model, x, tta=tta, window=window, overlap=overlap, blend=blend)
        metrics.update(logits, y)
        ids = list(batch.get("id", [])) or [str(len(per_image) + i) for i in range(x.shape[0])]
        for i in range(x.shape[0]):
            per_image.append({"id": str(ids[i]), "dice": _image_dice(single, logits[i : i + 1], y[i : i + 1])})
    if not per_image:
        raise ValueError("evaluate: the loader yielded no batches (empty split?)")
    values = metrics.compute()
    names = metrics.class_names
    return {
        "dice": values["dice"],
        "iou": values["iou"],
        "dice_per_image": values["dice_per_image"],
        "per_class": {
            "dice": {c: values[f"dice/{c}"] for c in names},
            "iou": {c: values[f"iou/{c}"] for c in names},
        },
        "per_image_dice": dice_distribution((r["dice"] for r in per_image), bins),
        "per_image": per_image,
        "num_images": len(per_image),
        "mode": mode,
        "tta": bool(tta),
        "window": window,
        "empty_class_policy": EMPTY_CLASS_POLICY,
    }


def write_per_image_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """``id,dice`` rows (empty where an image's Dice is undefined)."""
    with Path(path).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "dice"])
        for r in rows:
            d = r["dice"]
            writer.writerow([r["id"], "" if d is None or math.isnan(d) else f"{d:.6f}"])
