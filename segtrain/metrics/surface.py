"""Boundary metrics of one binary mask pair, 2-D or 3-D, in pixel units: HD95 and normalised surface Dice.

Definitions follow MONAI (``monai.metrics.compute_hausdorff_distance(percentile=95)`` and
``compute_surface_dice`` with ``use_subvoxels=False``, unit spacing):

- boundary ``B(M) = M & ~erode(M)``, erosion by the cross (connectivity-1) structuring element with the
  outside of the image counting as background (scipy's ``binary_erosion``; MONAI crops with a margin of 1
  and pads with zeros, the same thing), so foreground on the image border is boundary;
- ``d(x, B)`` the Euclidean distance from pixel centre ``x`` to the nearest pixel centre of ``B``;
- HD95 ``= max(q95{d(x, B(G)) : x in B(P)}, q95{d(y, B(P)) : y in B(G)})``: the larger of the two
  directed 95th percentiles (not the percentile of the pooled distances), each with linear interpolation
  between order statistics (numpy's and torch's default);
- NSD at tolerance tau (Nikolov et al. 2021, "Clinically applicable segmentation of head and neck
  anatomy for radiotherapy")
  ``= (|{x in B(P): d(x, B(G)) <= tau}| + |{y in B(G): d(y, B(P)) <= tau}|) / (|B(P)| + |B(G)|)``.

Empty masks take the values of ``empty_rules.EMPTY_RULES`` (MONAI gives NaN or inf there).

The distances are exact: for each boundary pixel the nearest boundary pixel of the other mask is found with a
k-d tree over the boundary pixel coordinates (scipy's ``cKDTree``, as MONAI does on the CPU), and the squared
distance to it is recomputed in integers, so the tolerance test ``d^2 <= tau^2`` has no rounding. Boundaries
are sparse, so this is cheaper than a dense distance transform of each mask's bounding box (measured in
docs/performance.md). ``boundaries`` computes the boundaries of a whole stack of masks at once (one pass of
shifted comparisons), so per-case metrics find every class's boundary of a batch in a few array operations.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from segtrain.metrics.empty_rules import empty_case, empty_value


def boundaries(masks: np.ndarray, spatial_dims: int) -> np.ndarray:
    """Boundary of every mask in a boolean stack (leading axes: any, last ``spatial_dims`` axes: the image):
    foreground pixels with a face neighbour (4 in 2-D, 6 in 3-D) off the mask or off the image."""
    interior = masks.copy()
    for axis in range(masks.ndim - spatial_dims, masks.ndim):
        lower = [slice(None)] * masks.ndim
        upper = [slice(None)] * masks.ndim
        lower[axis], upper[axis] = slice(None, -1), slice(1, None)
        interior[tuple(lower)] &= masks[tuple(upper)]  # the next pixel along the axis is on the mask
        interior[tuple(upper)] &= masks[tuple(lower)]  # the previous one is
        for edge in (0, -1):  # the first and last pixels lack a neighbour: outside counts as background
            index = [slice(None)] * masks.ndim
            index[axis] = edge
            interior[tuple(index)] = False
    return masks & ~interior


def boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of one boolean mask (see ``boundaries``)."""
    return boundaries(mask, mask.ndim)


def union_bbox(pred: np.ndarray, ref: np.ndarray) -> tuple[slice, ...] | None:
    """The bounding box of ``pred | ref`` as slices, or None when both are empty."""
    union = pred | ref
    box = []
    for axis in range(union.ndim):
        hits = np.flatnonzero(union.any(axis=tuple(a for a in range(union.ndim) if a != axis)))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def nearest_sq_distances(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each row of ``points`` (integer pixel coordinates), the squared distance to the nearest row of
    ``others``, exact in integers (int64)."""
    _, nearest = cKDTree(others).query(points, k=1)
    diff = points - others[nearest]
    return np.einsum("ij,ij->i", diff, diff)


def metrics_from_boundaries(pred_points: np.ndarray, ref_points: np.ndarray, tolerance: float) -> tuple[float, float]:
    """``(hd95, nsd)`` from the boundary pixel coordinates (P x D and G x D integer arrays, both non-empty)."""
    d2_pred = nearest_sq_distances(pred_points, ref_points)
    d2_ref = nearest_sq_distances(ref_points, pred_points)
    hd95 = max(float(np.percentile(np.sqrt(d2_pred), 95)), float(np.percentile(np.sqrt(d2_ref), 95)))
    tau2 = float(tolerance) ** 2
    nsd = (np.count_nonzero(d2_pred <= tau2) + np.count_nonzero(d2_ref <= tau2)) / (d2_pred.size + d2_ref.size)
    return hd95, float(nsd)


def check_tolerance(tolerance: float) -> None:
    """Raise unless the NSD tolerance is a finite number >= 0."""
    if not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"nsd tolerance must be a finite number >= 0 (pixels), got {tolerance!r}")


def surface_metrics(pred: np.ndarray, ref: np.ndarray, tolerance: float) -> tuple[float, float]:
    """``(hd95, nsd)`` of a prediction and a reference boolean mask (2-D or 3-D), in pixels."""
    check_tolerance(tolerance)
    check_mask_pair(pred, ref)
    case = empty_case(not ref.any(), not pred.any())
    if case is not None:
        return empty_value(case, "hd95", pred.shape), empty_value(case, "nsd", pred.shape)
    return metrics_from_boundaries(np.argwhere(boundary(pred)), np.argwhere(boundary(ref)), tolerance)


def hd95(pred: np.ndarray, ref: np.ndarray) -> float:
    """95th-percentile symmetric Hausdorff distance between the mask boundaries (see the module docstring)."""
    return surface_metrics(pred, ref, 0.0)[0]


def nsd(pred: np.ndarray, ref: np.ndarray, tolerance: float) -> float:
    """Normalised surface Dice at ``tolerance`` pixels (see the module docstring)."""
    return surface_metrics(pred, ref, tolerance)[1]


def check_mask_pair(pred: np.ndarray, ref: np.ndarray) -> None:
    """Raise unless ``pred`` and ``ref`` are boolean 2-D or 3-D arrays of one shape."""
    if pred.dtype != np.bool_ or ref.dtype != np.bool_:
        raise TypeError(f"masks must be boolean arrays, got pred {pred.dtype} and ref {ref.dtype}")
    if pred.shape != ref.shape or pred.ndim not in (2, 3):
        raise ValueError(f"masks must be two 2-D or 3-D arrays of one shape, got {pred.shape} and {ref.shape}")
