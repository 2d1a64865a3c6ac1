"""per_case_rows / aggregate_cases / write_per_case_csv: counts and metrics against per-mask references,
ignore_index, empty rules in rows, the three modes, 3-D, the CSV file and input validation."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from conftest import fresh_seed

from segtrain.metrics.empty_rules import image_diagonal
from segtrain.metrics.per_case import COLUMNS, aggregate_cases, per_case_rows, write_per_case_csv
from segtrain.metrics.surface import surface_metrics
from segtrain.metrics.topology import cldice
from tests._metric_refs import blobs, ref_hd95, ref_nsd


def _labels(rng: np.random.Generator, n: int, k: int, shape: tuple[int, ...]) -> np.ndarray:
    """N x S label maps of smooth regions: argmax over K smoothed noise fields."""
    return np.stack([np.argmax(np.stack([blobs(rng, shape) * rng.random() for _ in range(k)]), 0) for _ in range(n)])


def _check_row(row: dict, pred: np.ndarray, ref: np.ndarray, tau: float, with_cldice: bool) -> None:
    """One row against brute-force sums and the reference distances of the two boolean masks."""
    tp, fp, fn = int((pred & ref).sum()), int((pred & ~ref).sum()), int((~pred & ref).sum())
    assert (row["tp"], row["fp"], row["fn"]) == (tp, fp, fn)
    assert (row["ref_pixels"], row["pred_pixels"]) == (int(ref.sum()), int(pred.sum()))
    if ref.any() and pred.any():
        assert row["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
        assert row["iou"] == pytest.approx(tp / (tp + fp + fn))
        assert row["hd95"] == pytest.approx(ref_hd95(pred, ref), rel=1e-12)
        assert row["nsd"] == pytest.approx(ref_nsd(pred, ref, tau), rel=1e-12)
    else:
        assert (row["hd95"], row["nsd"]) == surface_metrics(pred, ref, tau)
    assert row["cldice"] == (cldice(pred, ref) if with_cldice else None)


def test_multiclass_rows_match_references_per_image_and_class():
    rng = np.random.default_rng(fresh_seed())
    target = _labels(rng, 3, 4, (18, 22))
    pred = np.where(rng.random(target.shape) < 0.1, rng.integers(0, 4, target.shape), target)
    pred[1][pred[1] == 3] = 0  # class 3 missing from the prediction of image 1
    rows = per_case_rows(
        torch.from_numpy(pred), torch.from_numpy(target), mode="multiclass", num_classes=4,
        class_names=["bg", "a", "b", "c"], nsd_tolerance=1.5, case_ids=["x", "y", "z"], split="test",
    )  # fmt: skip
    assert len(rows) == 12 and all(tuple(r) == COLUMNS for r in rows)
    assert [(r["case"], r["class"]) for r in rows[:5]] == [("x", "bg"), ("x", "a"), ("x", "b"), ("x", "c"), ("y", "bg")]
    assert {r["split"] for r in rows} == {"test"}
    for j, row in enumerate(rows):
        i, c = divmod(j, 4)
        _check_row(row, pred[i] == c, target[i] == c, 1.5, with_cldice=False)


def test_ignored_pixels_count_nowhere_and_are_background_in_both_masks():
    rng = np.random.default_rng(fresh_seed())
    target = _labels(rng, 2, 3, (20, 20))
    pred = np.where(rng.random(target.shape) < 0.15, rng.integers(0, 3, target.shape), target)
    target[:, 5:9, 3:15] = 255
    rows = per_case_rows(pred, target, mode="multiclass", num_classes=3, ignore_index=255, nsd_tolerance=1.0)
    valid = target != 255
    for j, row in enumerate(rows):
        i, c = divmod(j, 3)
        _check_row(row, (pred[i] == c) & valid[i], (target[i] == c) & valid[i], 1.0, with_cldice=False)
    # whatever is predicted on ignored pixels changes no row
    other = pred.copy()
    other[~valid] = (other[~valid] + 1) % 3
    assert per_case_rows(other, target, mode="multiclass", num_classes=3, ignore_index=255) == rows


def test_a_class_equal_to_ignore_index_gets_no_rows():
    target = np.array([[[0, 1, 2], [2, 1, 0]]])
    rows = per_case_rows(target, target, mode="multiclass", num_classes=3, ignore_index=0, class_names="abc")
    assert [r["class"] for r in rows] == ["b", "c"]
    assert rows[0]["tp"] == 2 and rows[0]["dice"] == 1.0


def test_empty_rules_in_rows():
    target = np.zeros((1, 6, 8), np.int64)
    target[0, 1:3, 1:3] = 1
    pred = np.zeros_like(target)
    pred[0, 4:6, 5:7] = 2
    rows = {r["class"]: r for r in per_case_rows(pred, target, mode="multiclass", num_classes=4)}
    diagonal = image_diagonal((6, 8))
    assert diagonal == 10.0
    # class_1: reference only; class_2: prediction only; class_3: neither
    assert [rows["class_1"][m] for m in ("dice", "iou", "hd95", "nsd")] == [0.0, 0.0, diagonal, 0.0]
    assert [rows["class_2"][m] for m in ("dice", "iou", "hd95", "nsd")] == [0.0, 0.0, diagonal, 0.0]
    assert [rows["class_3"][m] for m in ("dice", "iou", "hd95", "nsd")] == [1.0, 1.0, 0.0, 1.0]
    assert rows["class_3"]["cldice"] is None  # multiclass: never defined


@pytest.mark.parametrize("with_channel", [False, True])
def test_binary_rows_and_ignore_index(with_channel):
    rng = np.random.default_rng(fresh_seed())
    target = np.stack([blobs(rng, (16, 20)) for _ in range(3)]).astype(np.int64)
    pred = target ^ (rng.random(target.shape) < 0.1)
    target[0, :3] = 255
    args = (pred[:, None], target[:, None]) if with_channel else (pred, target)
    rows = per_case_rows(*args, mode="binary", num_classes=1, class_names=["fg"], ignore_index=255)
    assert [r["class"] for r in rows] == ["fg"] * 3
    valid = target != 255
    for i, row in enumerate(rows):
        _check_row(row, (pred[i] == 1) & valid[i], (target[i] == 1) & valid[i], 1.0, with_cldice=True)


def test_multilabel_rows_with_cldice_per_channel():
    rng = np.random.default_rng(fresh_seed())
    target = np.stack([np.stack([blobs(rng, (16, 18)) for _ in range(2)]) for _ in range(2)])
    pred = target ^ (rng.random(target.shape) < 0.08)
    rows = per_case_rows(
        torch.from_numpy(pred).float(), torch.from_numpy(target).float(), mode="multilabel", num_classes=2,
        nsd_tolerance=2.0,
    )  # fmt: skip
    assert len(rows) == 4
    for j, row in enumerate(rows):
        i, c = divmod(j, 2)
        _check_row(row, pred[i, c], target[i, c], 2.0, with_cldice=True)
        assert row["cldice"] is not None


def test_3d_multiclass_rows():
    rng = np.random.default_rng(fresh_seed())
    target = _labels(rng, 2, 3, (6, 8, 9))
    pred = np.where(rng.random(target.shape) < 0.1, rng.integers(0, 3, target.shape), target)
    rows = per_case_rows(pred, target, mode="multiclass", num_classes=3, spatial_dims=3, nsd_tolerance=1.0)
    for j, row in enumerate(rows):
        i, c = divmod(j, 3)
        _check_row(row, pred[i] == c, target[i] == c, 1.0, with_cldice=False)


def test_aggregate_cases_means_counts_and_undefined_values():
    def row(cls, dice, hd95, cldice=None, ref=5, pred=5):
        return {"split": "val", "case": "0", "class": cls, "dice": dice, "iou": dice, "hd95": hd95, "nsd": dice,
                "cldice": cldice, "tp": 0, "fp": 0, "fn": 0, "ref_pixels": ref, "pred_pixels": pred}  # fmt: skip

    rows = [row("a", 0.5, 2.0), row("a", 1.0, 0.0, ref=0, pred=0), row("b", 0.2, 10.0), row("b", math.nan, None)]
    out = aggregate_cases(rows)
    a, b = out["per_class"]["a"], out["per_class"]["b"]
    assert (a["n_cases"], a["n_both_empty"], b["n_cases"], b["n_both_empty"]) == (2, 1, 2, 0)
    assert a["dice"] == {"mean": 0.75, "n": 2} and a["hd95"] == {"mean": 1.0, "n": 2}
    assert b["dice"] == {"mean": 0.2, "n": 1} and b["hd95"] == {"mean": 10.0, "n": 1}
    assert a["cldice"] == {"mean": None, "n": 0}
    assert out["mean"]["dice"] == {"mean": pytest.approx(0.475), "n_classes": 2}
    assert out["mean"]["cldice"] == {"mean": None, "n_classes": 0}
    with pytest.raises(ValueError, match="several splits"):
        aggregate_cases([*rows, {**rows[0], "split": "test"}])


def test_write_per_case_csv(tmp_path):
    target = np.zeros((2, 5, 5), np.int64)
    target[0, 1:4, 1:4] = 1
    rows = per_case_rows(target, target, mode="binary", num_classes=1, class_names=["cell"], case_ids=["a", "b"])
    path = write_per_case_csv(tmp_path / "eval" / "per_case.csv", rows)
    with path.open() as f:
        read = list(csv.reader(f))
    assert tuple(read[0]) == COLUMNS
    assert read[1] == ["val", "a", "cell", "1.0", "1.0", "0.0", "1.0", "1.0", "9", "0", "0", "9", "9"]
    multiclass = per_case_rows(target, target, mode="multiclass", num_classes=2)
    write_per_case_csv(path, multiclass)
    with path.open() as f:
        assert next(csv.DictReader(f))["cldice"] == ""  # undefined: an empty cell
    with pytest.raises(ValueError, match="expected the columns"):
        write_per_case_csv(path, [{"split": "val"}])


def test_bad_inputs_are_rejected():
    labels = np.zeros((2, 4, 4), np.int64)
    with pytest.raises(ValueError, match="expected N x S class indices"):
        per_case_rows(labels, labels[:1], mode="multiclass", num_classes=2)
    with pytest.raises(ValueError, match=r"target holds values in \[0, 5\]"):
        per_case_rows(labels, labels + np.eye(4, dtype=np.int64) * 5, mode="multiclass", num_classes=2)
    with pytest.raises(ValueError, match="ignore_index applies"):
        per_case_rows(labels[:, None], labels[:, None], mode="multilabel", num_classes=1, ignore_index=255)
    with pytest.raises(ValueError, match="1 case_ids"):
        per_case_rows(labels, labels, mode="multiclass", num_classes=2, case_ids=["a"])
    with pytest.raises(ValueError, match="3 class_names"):
        per_case_rows(labels, labels, mode="multiclass", num_classes=2, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="binary mode has one class"):
        per_case_rows(labels, labels, mode="binary", num_classes=2)
    with pytest.raises(ValueError, match=r"pred holds values in \[0.0, 0.5\]"):
        per_case_rows(labels * 0.5 + np.eye(4) * 0.5, labels, mode="binary", num_classes=1)
