"""HD95 and NSD against an independent brute-force reference and against MONAI.

Mapping to MONAI (unit spacing, ``use_subvoxels=False``, one-hot B x 1 x S inputs, include_background=True):
``surface_metrics(p, g, tau)`` = ``(compute_hausdorff_distance(P, G, percentile=95),
compute_surface_dice(P, G, class_thresholds=[tau]))`` whenever both masks have foreground (MONAI's HD95 is
float32 torch.quantile, hence the 1e-5 relative tolerance). They differ only on empty masks, where MONAI
gives NaN (both empty) or inf (one empty) for HD95 and NaN (both empty) for NSD, and we give EMPTY_RULES.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from conftest import fresh_seed
from scipy.ndimage import binary_erosion

from segtrain.metrics.empty_rules import EMPTY_RULES, image_diagonal
from segtrain.metrics.surface import boundaries, boundary, hd95, nsd, surface_metrics
from tests._metric_refs import blobs, ref_boundary, ref_hd95, ref_nsd

SHAPES = [(20, 24), (7, 9, 11)]


def _pair(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    ref = blobs(rng, shape)
    pred = blobs(rng, shape) if rng.random() < 0.5 else ref ^ (rng.random(shape) < 0.05)  # unrelated or close
    if not pred.any():
        pred[0, 0] = True
    if not ref.any():
        ref[-1, -1] = True
    return pred, ref


@pytest.mark.parametrize("shape", SHAPES)
def test_boundary_matches_the_neighbour_definition_and_monais_erosion(shape):
    rng = np.random.default_rng(fresh_seed())
    stack = rng.random((3, 2, *shape)) < rng.uniform(0.2, 0.95, size=(3, 2) + (1,) * len(shape))
    together = boundaries(stack, len(shape))
    for index in np.ndindex(3, 2):
        mask = stack[index]
        np.testing.assert_array_equal(boundary(mask), ref_boundary(mask))
        # MONAI's get_mask_edges (spacing=None): binary_erosion(mask) ^ mask, default structure, zero border
        np.testing.assert_array_equal(boundary(mask), binary_erosion(mask) ^ mask)
        np.testing.assert_array_equal(together[index], boundary(mask))


@pytest.mark.parametrize("shape", SHAPES)
def test_hd95_and_nsd_match_the_brute_force_reference(shape):
    rng = np.random.default_rng(fresh_seed())
    for _ in range(25):
        pred, ref = _pair(rng, shape)
        tau = float(rng.choice([0.0, 1.0, 1.5, 2.0, 3.0]))
        got_hd, got_nsd = surface_metrics(pred, ref, tau)
        assert got_hd == pytest.approx(ref_hd95(pred, ref), rel=1e-12, abs=1e-12)
        assert got_nsd == pytest.approx(ref_nsd(pred, ref, tau), rel=1e-12, abs=1e-12)
        assert hd95(pred, ref) == got_hd and nsd(pred, ref, tau) == got_nsd


def test_random_noise_masks_with_many_components_match_the_reference():
    rng = np.random.default_rng(fresh_seed())
    for _ in range(20):
        pred, ref = rng.random((2, 15, 17)) < rng.uniform(0.1, 0.9, size=(2, 1, 1))
        pred[0, 0] = ref[1, 1] = True
        assert hd95(pred, ref) == pytest.approx(ref_hd95(pred, ref), rel=1e-12)
        assert nsd(pred, ref, 1.0) == pytest.approx(ref_nsd(pred, ref, 1.0), rel=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_hd95_and_nsd_match_monai(shape):
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    rng = np.random.default_rng(fresh_seed())
    for _ in range(10):
        pred, ref = _pair(rng, shape)
        tau = float(rng.choice([1.0, 2.0, 2.5]))
        p = torch.from_numpy(pred)[None, None].float()
        g = torch.from_numpy(ref)[None, None].float()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            monai_hd = float(compute_hausdorff_distance(p, g, include_background=True, percentile=95))
            monai_nsd = float(compute_surface_dice(p, g, class_thresholds=[tau], include_background=True))
        got_hd, got_nsd = surface_metrics(pred, ref, tau)
        assert got_hd == pytest.approx(monai_hd, rel=1e-5)
        assert got_nsd == pytest.approx(monai_nsd, rel=1e-6)


def test_known_values_on_two_squares():
    # two 4 x 4 squares, the prediction shifted right by 2: every boundary pixel is 0 or 2 pixels from the
    # other boundary (the two left and the two right columns are 2 apart), so HD95 = 2 and NSD(2) = 1
    ref = np.zeros((10, 12), bool)
    ref[3:7, 2:6] = True
    pred = np.roll(ref, 2, axis=1)
    assert hd95(pred, ref) == pytest.approx(ref_hd95(pred, ref))
    assert hd95(pred, ref) == pytest.approx(2.0)
    assert hd95(ref, ref) == 0.0 and nsd(ref, ref, 0.0) == 1.0
    assert nsd(pred, ref, 2.0) == 1.0
    assert nsd(pred, ref, 1.9) == pytest.approx(ref_nsd(pred, ref, 1.9))


@pytest.mark.parametrize("shape", [(9, 13), (4, 5, 6)])
def test_empty_rules(shape):
    empty = np.zeros(shape, bool)
    full = np.zeros(shape, bool)
    full[1:3, 1:3] = True
    assert surface_metrics(empty, empty, 1.0) == (EMPTY_RULES["both_empty"]["hd95"], EMPTY_RULES["both_empty"]["nsd"])
    diagonal = math.sqrt(sum(s * s for s in shape))
    assert image_diagonal(shape) == diagonal
    assert surface_metrics(full, empty, 1.0) == (diagonal, EMPTY_RULES["reference_empty"]["nsd"])
    assert surface_metrics(empty, full, 1.0) == (diagonal, EMPTY_RULES["prediction_empty"]["nsd"])
    assert surface_metrics(empty, empty, 1.0) == (0.0, 1.0)
    assert surface_metrics(full, empty, 1.0)[1] == 0.0


def test_the_diagonal_exceeds_any_found_hd95():
    # opposite corners: the largest HD95 two non-empty masks can have is still below the empty-case value
    pred, ref = np.zeros((2, 30, 40), bool)
    pred[0, 0] = ref[-1, -1] = True
    assert hd95(pred, ref) == pytest.approx(math.hypot(29, 39))
    assert hd95(pred, ref) < image_diagonal(pred.shape)


def test_bad_inputs_are_rejected():
    mask = np.ones((4, 4), bool)
    with pytest.raises(TypeError, match="boolean"):
        hd95(mask.astype(np.uint8), mask)
    with pytest.raises(ValueError, match="one shape"):
        hd95(mask, np.ones((4, 5), bool))
    with pytest.raises(ValueError, match="tolerance"):
        nsd(mask, mask, -1.0)


def test_boundary_by_slices_equals_scipys_cross_erosion():
    from scipy import ndimage

    from segtrain.metrics.surface import boundary

    rng = np.random.default_rng(fresh_seed())
    for shape in [(36, 48), (1, 5), (2, 2), (7, 9, 11), (1, 1), (40, 3)]:
        for _ in range(10):
            mask = ndimage.gaussian_filter(rng.standard_normal(shape), 1) > rng.uniform(-0.5, 0.5)
            assert np.array_equal(boundary(mask), mask & ~ndimage.binary_erosion(mask, border_value=0)), shape
