"""Per-case metrics: one row per split x image x class, their means, and per_case.csv.

Computed once, at the end of a job, on the selected checkpoint's hard predictions (not per epoch: the
boundary distances per image x class cost far more than the confusion matrix of ``SegMetrics``).

Columns (``COLUMNS``): ``split, case, class, dice, iou, hd95, nsd, cldice, tp, fp, fn, ref_pixels,
pred_pixels``. Per image and class c, with P the predicted and G the reference mask of c:

- ``tp = |P & G|``, ``fp = |P & ~G|``, ``fn = |~P & G|``, ``ref_pixels = |G|``, ``pred_pixels = |P|``;
- ``dice = 2 tp / (2 tp + fp + fn)``, ``iou = tp / (tp + fp + fn)``;
- ``hd95``, ``nsd`` (tolerance in pixels) from ``surface``; ``cldice`` from ``topology`` (binary and
  multilabel modes; None in multiclass mode);
- empty masks: ``empty_rules.EMPTY_RULES``.

Pixels whose target is ``ignore_index`` (multiclass and binary modes) are in no count, and are background
in both P and G for the distance metrics: a boundary next to an ignored region is still a boundary. A class
whose index equals ``ignore_index`` has no pixels to score and gets no rows.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segtrain.atomic import atomic_write
from segtrain.metrics.empty_rules import empty_case, empty_value
from segtrain.metrics.surface import boundaries, check_tolerance, metrics_from_boundaries
from segtrain.metrics.topology import cldice

COLUMNS = (
    "split",
    "case",
    "class",
    "dice",
    "iou",
    "hd95",
    "nsd",
    "cldice",
    "tp",
    "fp",
    "fn",
    "ref_pixels",
    "pred_pixels",
)
METRICS = ("dice", "iou", "hd95", "nsd", "cldice")
MODES = ("multiclass", "binary", "multilabel")


def per_case_rows(
    pred: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    *,
    mode: str,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    ignore_index: int | None = None,
    nsd_tolerance: float = 1.0,
    case_ids: Sequence[str] | None = None,
    split: str = "val",
    spatial_dims: int = 2,
) -> list[dict[str, Any]]:
    """One row per image x class of a batch of hard predictions (see the module docstring).

    Shapes (S the ``spatial_dims`` spatial sizes): multiclass ``pred``/``target`` N x S class indices;
    binary N x S (or N x 1 x S) in {0, 1}; multilabel N x C x S in {0, 1}. ``target`` may also hold
    ``ignore_index`` (multiclass and binary). ``case_ids`` name the images (default ``"0"``, ``"1"``, ...).
    """
    p, g = _masks(pred, target, mode, num_classes, ignore_index, spatial_dims)
    n, k = p.shape[:2]
    names = _class_names(class_names, num_classes)
    cases = [str(i) for i in range(n)] if case_ids is None else [str(c) for c in case_ids]
    if len(cases) != n:
        raise ValueError(f"per_case_rows: {len(cases)} case_ids for a batch of {n} images")
    check_tolerance(nsd_tolerance)
    spatial = p.shape[2:]
    axes = tuple(range(2, p.ndim))
    # counts for the whole batch at once; ignored pixels are already False in both p and g
    tp = np.count_nonzero(p & g, axis=axes)
    ref_pixels = np.count_nonzero(g, axis=axes)
    pred_pixels = np.count_nonzero(p, axis=axes)
    fp, fn = pred_pixels - tp, ref_pixels - tp
    # every boundary of the batch in one pass, its pixel coordinates grouped by image x class
    pred_points, pred_starts = _points_by_mask(boundaries(p, len(spatial)))
    ref_points, ref_starts = _points_by_mask(boundaries(g, len(spatial)))
    rows = []
    for i in range(n):
        for c in range(k):
            if mode == "multiclass" and ignore_index == c:
                continue
            row: dict[str, Any] = {"split": split, "case": cases[i], "class": names[c]}
            case = empty_case(ref_pixels[i, c] == 0, pred_pixels[i, c] == 0)
            if case is not None:
                for metric in METRICS:
                    row[metric] = empty_value(case, metric, spatial)
            else:
                t, f_p, f_n = int(tp[i, c]), int(fp[i, c]), int(fn[i, c])
                row["dice"] = 2 * t / (2 * t + f_p + f_n)
                row["iou"] = t / (t + f_p + f_n)
                j = i * k + c
                row["hd95"], row["nsd"] = metrics_from_boundaries(
                    pred_points[pred_starts[j] : pred_starts[j + 1]],
                    ref_points[ref_starts[j] : ref_starts[j + 1]],
                    nsd_tolerance,
                )
                row["cldice"] = cldice(p[i, c], g[i, c]) if mode != "multiclass" else None
            if mode == "multiclass":
                row["cldice"] = None  # the empty rules give it a value; label maps have no clDice
            row.update(
                tp=int(tp[i, c]),
                fp=int(fp[i, c]),
                fn=int(fn[i, c]),
                ref_pixels=int(ref_pixels[i, c]),
                pred_pixels=int(pred_pixels[i, c]),
            )
            rows.append({key: row[key] for key in COLUMNS})
    return rows


def aggregate_cases(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Means of the rows of one split, per class and over classes, leaving undefined values out.

    Returns ``{"per_class": {class: {"n_cases", "n_both_empty", metric: {"mean", "n"}}}, "mean": {metric:
    {"mean", "n_classes"}}}``: ``n`` is how many cases a class mean covers; the mean over classes is the
    mean of the class means that are defined (as ``SegMetrics`` averages classes), None where none is.
    """
    per_class: dict[str, dict[str, Any]] = {}
    values: dict[str, dict[str, list[float]]] = {}
    splits = set()
    for row in rows:
        splits.add(row["split"])
        name = row["class"]
        if name not in per_class:
            per_class[name] = {"n_cases": 0, "n_both_empty": 0}
            values[name] = {m: [] for m in METRICS}
        per_class[name]["n_cases"] += 1
        per_class[name]["n_both_empty"] += int(row["ref_pixels"] == 0 and row["pred_pixels"] == 0)
        for metric in METRICS:
            v = row[metric]
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                values[name][metric].append(float(v))
    if len(splits) > 1:
        raise ValueError(f"aggregate_cases: rows of several splits {sorted(splits)}; aggregate one split at a time")
    for name, by_metric in values.items():
        for metric, vs in by_metric.items():
            per_class[name][metric] = {"mean": sum(vs) / len(vs) if vs else None, "n": len(vs)}
    mean = {}
    for metric in METRICS:
        class_means = [pc[metric]["mean"] for pc in per_class.values() if pc[metric]["mean"] is not None]
        mean[metric] = {
            "mean": sum(class_means) / len(class_means) if class_means else None,
            "n_classes": len(class_means),
        }
    return {"per_class": per_class, "mean": mean}


def write_per_case_csv(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write ``rows`` to ``path`` with the ``COLUMNS`` header; None (undefined) becomes an empty cell."""
    rows = list(rows)
    for j, row in enumerate(rows):
        if set(row) != set(COLUMNS):
            raise ValueError(f"per_case row {j} has keys {sorted(row)}; expected the columns {list(COLUMNS)}")

    def write(f) -> None:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(["" if row[c] is None else row[c] for c in COLUMNS] for row in rows)

    return atomic_write(path, write, text=True)  # a failed write leaves the previous per_case.csv


def _points_by_mask(bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (M x D) of the True pixels of an N x K x S stack, and offsets: mask ``j = n K + k`` owns
    rows ``starts[j]:starts[j + 1]`` (pixels come in C order, so each mask's rows are contiguous)."""
    n, k = bounds.shape[:2]
    spatial = bounds.shape[2:]
    mask_index, pixel = np.divmod(np.flatnonzero(bounds), int(np.prod(spatial)))  # one index array: cheaper
    starts = np.searchsorted(mask_index, np.arange(n * k + 1))
    return np.stack(np.unravel_index(pixel, spatial), axis=1), starts


def _class_names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return [f"class_{i}" for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"per_case_rows: {len(class_names)} class_names for num_classes={num_classes}")
    return [str(c) for c in class_names]


def _to_numpy(x: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"per_case_rows: {name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def _masks(
    pred: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    mode: str,
    num_classes: int,
    ignore_index: int | None,
    spatial_dims: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean N x K x S prediction and reference masks, ignored pixels False in both."""
    if mode not in MODES:
        raise ValueError(f"per_case_rows: mode must be one of {MODES}, got {mode!r}")
    if spatial_dims not in (2, 3):
        raise ValueError(f"per_case_rows: spatial_dims must be 2 or 3, got {spatial_dims}")
    if mode == "binary" and num_classes != 1:
        raise ValueError(f"per_case_rows: binary mode has one class (the foreground), got num_classes={num_classes}")
    if mode == "multilabel" and ignore_index is not None:
        raise ValueError("per_case_rows: ignore_index applies to multiclass and binary modes; pass None")
    p, t = _to_numpy(pred, "pred"), _to_numpy(target, "target")
    if mode == "binary" and p.ndim == spatial_dims + 2 and p.shape[1] == 1 and t.shape == p.shape:
        p, t = p[:, 0], t[:, 0]
    channels = 1 if mode == "multilabel" else 0
    expected = {
        "multiclass": "N x S class indices",
        "binary": "N x S (or N x 1 x S) in {0, 1}",
        "multilabel": f"N x {num_classes} x S in {{0, 1}}",
    }[mode]
    if p.shape != t.shape or p.ndim != 1 + channels + spatial_dims or (channels and p.shape[1] != num_classes):
        raise ValueError(
            f"per_case_rows ({mode}, {spatial_dims}-D): pred {p.shape} and target {t.shape}; expected {expected}"
        )
    labels = range(num_classes) if mode == "multiclass" else range(2)
    _check_values(p, labels, "pred")
    if mode == "multilabel":
        _check_values(t, labels, "target")
        return p == 1, t == 1
    valid = t != ignore_index if ignore_index is not None else np.ones(t.shape, dtype=bool)
    _check_values(t[valid], labels, "target")
    if mode == "binary":
        return ((p == 1) & valid)[:, None], ((t == 1) & valid)[:, None]
    classes = np.arange(num_classes).reshape(1, -1, *[1] * spatial_dims)
    return (p[:, None] == classes) & valid[:, None], (t[:, None] == classes) & valid[:, None]


def _check_values(x: np.ndarray, labels: range, name: str) -> None:
    if x.size == 0:
        return
    lo, hi = x.min(), x.max()
    if lo < labels.start or hi >= labels.stop or (x.dtype.kind == "f" and not np.array_equal(x, np.round(x))):
        raise ValueError(
            f"per_case_rows: {name} holds values in [{lo}, {hi}]; expected integers in "
            f"[{labels.start}, {labels.stop - 1}]" + (" or ignore_index" if name == "target" else "")
        )
