"""Brute-force float64 references for the per-case metrics, written independently of segtrain.metrics:
boundaries by comparing every pixel with its padded face neighbours (no morphology), distances by cdist over
all pairs of boundary pixel coordinates, skeleton-free overlap counts by plain sums."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.spatial.distance import cdist


def ref_boundary(mask: np.ndarray) -> np.ndarray:
    """Foreground pixels with at least one face neighbour (4 in 2-D, 6 in 3-D) off the mask or off the image."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = tuple(slice(1, -1) for _ in range(mask.ndim))
    all_fg = np.ones(mask.shape, dtype=bool)
    for axis in range(mask.ndim):
        for step in (-1, 1):
            shifted = tuple(
                slice(1 + step, padded.shape[a] - 1 + step) if a == axis else inner[a] for a in range(mask.ndim)
            )
            all_fg &= padded[shifted]
    return mask & ~all_fg


def ref_directed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each boundary pixel of ``a``, the distance to the nearest boundary pixel of ``b`` (float64)."""
    pa = np.argwhere(ref_boundary(a)).astype(np.float64)
    pb = np.argwhere(ref_boundary(b)).astype(np.float64)
    return cdist(pa, pb).min(axis=1)


def ref_hd95(pred: np.ndarray, ref: np.ndarray) -> float:
    return max(np.percentile(ref_directed(pred, ref), 95), np.percentile(ref_directed(ref, pred), 95))


def ref_nsd(pred: np.ndarray, ref: np.ndarray, tau: float) -> float:
    d_pg, d_gp = ref_directed(pred, ref), ref_directed(ref, pred)
    return ((d_pg <= tau).sum() + (d_gp <= tau).sum()) / (d_pg.size + d_gp.size)


def blobs(rng: np.random.Generator, shape: tuple[int, ...], sigma: float = 1.5) -> np.ndarray:
    """A random boolean mask of smooth blobs (thresholded smoothed noise), a few holes and islands."""
    field = gaussian_filter(rng.standard_normal(shape), sigma)
    return field > rng.uniform(-0.3, 0.3) * field.std()
