"""Evaluating a model on a loader: Dice/IoU over the split, each image's Dice and its distribution, and
the per-case records (``evaluate_cases``: one row per image x class with Dice, IoU, HD95, NSD, clDice)
that a training job writes for its selected checkpoint and ``scripts/evaluate.py`` for any checkpoint."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segtrain.inference.predict import predict_logits
from segtrain.metrics import EMPTY_CLASS_POLICY, SegMetrics
from segtrain.metrics.per_case import METRICS, aggregate_cases, per_case_rows
from segtrain.metrics.threshold import ThresholdSweep, shift_logits
from segtrain.modes import BINARY, MULTICLASS, MULTILABEL


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


def hard_predictions(
    logits: torch.Tensor, target: torch.Tensor, mode: str, threshold: Sequence[float] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's hard predictions by SegMetrics' rule (multiclass: argmax; binary and multilabel:
    logit > 0, or sigmoid > ``threshold`` per channel) and its target as int64 of the same shape:
    N x H x W (multiclass, binary) or N x C x H x W."""
    _check_threshold_mode(threshold, mode)
    logits = shift_logits(logits, threshold)
    if mode == MULTICLASS:
        return logits.max(dim=1).indices, target.long()
    if mode == BINARY:
        pred = (logits[:, 0] > 0).long()
        return pred, target.reshape(pred.shape).long()
    if mode == MULTILABEL:
        tgt = target.round() if target.is_floating_point() else target
        return (logits > 0).long(), tgt.long()
    raise ValueError(f"mode must be one of multiclass, binary, multilabel; got {mode!r}")


def _check_threshold_mode(threshold: Sequence[float] | None, mode: str) -> None:
    if threshold is not None and mode == MULTICLASS:
        raise ValueError(
            f"threshold={list(threshold)} given for a multiclass model: its classes are taken by argmax, a "
            "probability threshold applies to binary and multilabel (sigmoid) outputs only"
        )


class LogitCache:
    """A split's logits, targets and case ids kept on the CPU while one pass runs, so that the next pass over
    the same split reads them instead of predicting again (the end of a job with job.tune_threshold: the
    threshold is chosen on val, then val is scored with it). Past ``limit_bytes`` it drops what it holds
    (``complete`` turns false) and the second pass predicts again: the same numbers, more time."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.nbytes = 0
        self.complete = True
        self._batches: list[tuple[torch.Tensor, torch.Tensor, list[str]]] = []

    def add(self, logits: torch.Tensor, target: torch.Tensor, ids: list[str]) -> None:
        if not self.complete:
            return
        self.nbytes += logits.numel() * logits.element_size() + target.numel() * target.element_size()
        if self.nbytes > self.limit_bytes:
            self.complete, self._batches = False, []
            return
        self._batches.append((logits.detach().cpu(), target.detach().cpu(), list(ids)))

    def batches(self) -> list[tuple[torch.Tensor, torch.Tensor, list[str]]]:
        if not self.complete:
            raise RuntimeError("LogitCache.batches: the cache went past its limit and holds nothing")
        return self._batches


@torch.no_grad()
def threshold_sweep(
    model: nn.Module,
    loader: Iterable[Mapping[str, Any]],
    *,
    mode: str,
    num_channels: int,
    ignore_index: int | None = None,
    device: str | torch.device = "cpu",
    amp_dtype: torch.dtype | None = None,
    limit_batches: int | None = None,
    tta: bool = False,
    window: int | None = None,
    overlap: float = 0.5,
    blend: str = "gaussian",
    keep: LogitCache | None = None,
) -> ThresholdSweep:
    """One pass over ``loader`` (logits as ``evaluate_cases`` makes them) into a ``ThresholdSweep``: each
    channel's TP/FP/FN at every grid threshold over the whole split, from which a threshold is chosen.
    ``keep`` collects each batch's logits, target and ids for ``evaluate_cases(batches=...)``."""
    device = torch.device(device)
    model = model.to(device).eval()
    sweep = ThresholdSweep(mode, num_channels, ignore_index)
    for i, batch in enumerate(loader):
        if limit_batches and i >= limit_batches:
            break
        x, y = batch["image"].to(device), batch["mask"].to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = predict_logits(model, x, tta=tta, window=window, overlap=overlap, blend=blend)
        logits = logits.float()
        sweep.update(logits, y)
        if keep is not None and "id" in batch:
            keep.add(logits, y, [str(c) for c in batch["id"]])
        elif keep is not None:  # no case ids: evaluate_cases reads the loader again (and says what it lacks)
            keep.complete = False
    sweep.counts()  # an empty loader is an error here, not a 0.5 chosen from nothing
    return sweep


@torch.no_grad()
def evaluate_cases(
    model: nn.Module,
    loader: Iterable[Mapping[str, Any]],
    *,
    mode: str,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    ignore_index: int | None = None,
    nsd_tolerance: float,
    split: str,
    device: str | torch.device = "cpu",
    amp_dtype: torch.dtype | None = None,
    limit_batches: int | None = None,
    tta: bool = False,
    window: int | None = None,
    overlap: float = 0.5,
    blend: str = "gaussian",
    workers: int = 2,
    on_logits: Callable[[torch.Tensor, torch.Tensor, list[str]], None] | None = None,
    threshold: Sequence[float] | None = None,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, list[str]]] | None = None,
) -> list[dict[str, Any]]:
    """``per_case_rows`` of every image of ``loader`` (batches of ``{"image", "mask", "id"}``): one row per
    image x class (``segtrain.metrics.per_case.COLUMNS``), ``case`` = the item's id, in loader order.

    Logits come from ``predict_logits`` (padded to the model's output stride; ``tta``, ``window``,
    ``overlap``, ``blend`` as there) under autocast with ``amp_dtype`` (None: float32); hard predictions
    follow ``hard_predictions`` (SegMetrics' rule; ``threshold``: sigmoid > t per channel, binary and
    multilabel only, None: 0.5). The per-case metrics of a batch run one image per task
    on ``workers`` threads while the model computes the next batch (the exact distance transform, their
    main cost, runs outside the GIL, and so does the forward pass); rows come back in loader order.
    ``limit_batches`` stops after that many batches (the trainer's ``limit_val_batches``).
    ``on_logits(logits, target, ids)`` sees every batch's raw logits (``evaluate`` adds its confusion-matrix
    metrics there, so one forward pass serves both). ``batches``: (logits, target, ids) a previous pass over
    the same split kept (``LogitCache``), scored instead of predicting again; ``loader`` is then not read.
    """
    _check_threshold_mode(threshold, mode)
    if workers < 1:
        raise ValueError(f"evaluate_cases: workers must be >= 1, got {workers}")
    device = torch.device(device)
    model = model.to(device).eval()
    pending: list[Future] = []
    n_images = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="per-case") as pool:
        predicted = _predicted(model, loader, device, amp_dtype, limit_batches, tta, window, overlap, blend)
        for logits, y, ids in batches if batches is not None else predicted:
            logits, y = logits.to(device), y.to(device)
            if on_logits is not None:
                on_logits(logits, y, ids)
            pred, tgt = hard_predictions(logits, y, mode, threshold)
            pred, tgt = pred.cpu().numpy(), tgt.cpu().numpy()
            n_images += len(ids)
            for j in range(len(ids)):  # one task per image, so that several workers share a batch
                pending.append(
                    pool.submit(
                        per_case_rows,
                        pred[j : j + 1],
                        tgt[j : j + 1],
                        mode=mode,
                        num_classes=num_classes,
                        class_names=class_names,
                        ignore_index=ignore_index,
                        nsd_tolerance=nsd_tolerance,
                        case_ids=ids[j : j + 1],
                        split=split,
                    )  # fmt: skip
                )
        rows = [row for future in pending for row in future.result()]
    if not n_images:
        raise ValueError(f"evaluate_cases: the loader of split '{split}' yielded no images (empty split?)")
    return rows


def _predicted(model, loader, device, amp_dtype, limit_batches, tta, window, overlap, blend):
    """(float32 logits, target, ids) per batch of ``loader``, as ``evaluate_cases`` scores them."""
    for i, batch in enumerate(loader):
        if limit_batches and i >= limit_batches:
            break
        if "id" not in batch:
            raise ValueError(f"evaluate_cases: batch {i} has no 'id' (keys: {sorted(batch)}); expected case ids")
        x, y = batch["image"].to(device), batch["mask"].to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = predict_logits(model, x, tta=tta, window=window, overlap=overlap, blend=blend)
        yield logits.float(), y, [str(c) for c in batch["id"]]


def case_summary(rows: Sequence[Mapping[str, Any]], split: str) -> dict[str, Any]:
    """metrics.json's section for one split's per-case rows: ``{"split", "num_cases", dice, iou, hd95,
    nsd, cldice (means over classes of the class means), "per_class", "mean"}`` (``aggregate_cases``)."""
    summary = aggregate_cases(rows)
    means = {m: summary["mean"][m]["mean"] for m in METRICS}
    return {"split": split, "num_cases": len({r["case"] for r in rows}), **means, **summary}


def _image_dice(metrics: SegMetrics, logits: torch.Tensor, target: torch.Tensor) -> float:
    """One image's foreground Dice as SegMetrics defines it (mean over its foreground classes with a
    defined Dice; NaN when it has none): SegMetrics itself on that one image."""
    metrics.reset()
    metrics.update(logits, target)
    dice, _ = metrics.per_class()
    fg = dice[1:] if metrics.mode == MULTICLASS else dice
    kept = [d for d in fg if not math.isnan(d)]
    return sum(kept) / len(kept) if kept else math.nan


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
    nsd_tolerance: float = 2.0,
    split: str = "val",
    threshold: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Dice/IoU over the whole of ``loader`` (batches of ``{"image", "mask", "id"}``) with SegMetrics, each
    image's foreground Dice for a distribution, and the per-case rows of ``evaluate_cases`` (one forward
    pass serves all three).

    Returns ``{"dice", "iou", "dice_per_image", "per_class": {"dice": {cls: v}, "iou": {...}},
    "per_image_dice": {mean, median, p10, p90, ..., histogram}, "per_image": [{"id", "dice"}, ...],
    "per_case": [rows], "num_images", "tta", "window", "empty_class_policy"}``; NaN where a value is
    undefined. ``nsd_tolerance`` (pixels) and ``split`` go into the per-case rows. ``threshold`` (one per
    sigmoid channel; None: 0.5) makes every hard prediction, the confusion matrix's included.
    """
    device = torch.device(device)
    metrics = SegMetrics(num_classes, mode, ignore_index, class_names, device=device)
    single = SegMetrics(num_classes, mode, ignore_index, class_names, device=device)
    per_image: list[dict[str, Any]] = []

    def confusion(logits: torch.Tensor, y: torch.Tensor, ids: list[str]) -> None:
        logits = shift_logits(logits, threshold)  # SegMetrics cuts at logit 0
        metrics.update(logits, y)
        for i in range(logits.shape[0]):
            per_image.append({"id": ids[i], "dice": _image_dice(single, logits[i : i + 1], y[i : i + 1])})

    per_case = evaluate_cases(
        model, loader, mode=mode, num_classes=num_classes, class_names=class_names, ignore_index=ignore_index,
        nsd_tolerance=nsd_tolerance, split=split, device=device, tta=tta, window=window, overlap=overlap,
        blend=blend, on_logits=confusion, threshold=threshold,
    )  # fmt: skip
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
        "per_case": per_case,
        "num_images": len(per_image),
        "mode": mode,
        "tta": bool(tta),
        "window": window,
        "threshold": None if threshold is None else list(threshold),
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
