"""clDice on known line and ring examples, against the formula on whole (uncropped) arrays, and empty rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import fresh_seed
from skimage.morphology import skeletonize

from segtrain.metrics.empty_rules import EMPTY_RULES
from segtrain.metrics.topology import cldice
from tests._metric_refs import blobs


def ref_cldice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Shit et al.'s formula in float64 on the whole arrays; NaN where a skeleton is empty."""
    sp, sg = skeletonize(pred), skeletonize(ref)
    if not sp.any() or not sg.any():
        return math.nan
    tprec = (sp & ref).sum() / sp.sum()
    tsens = (sg & pred).sum() / sg.sum()
    return 0.0 if tprec + tsens == 0 else 2 * tprec * tsens / (tprec + tsens)


def test_a_line_with_a_gap():
    # a one-pixel line is its own skeleton: Tprec = 30/30, Tsens = 30/40, clDice = 2 * 0.75 / 1.75 = 6/7
    ref = np.zeros((9, 50), bool)
    ref[4, 5:45] = True
    pred = ref.copy()
    pred[4, 20:30] = False
    assert cldice(pred, ref) == pytest.approx(6 / 7)
    assert cldice(ref, ref) == 1.0


def test_a_thick_prediction_of_a_thin_line_keeps_a_high_cldice_where_dice_is_half():
    ref = np.zeros((9, 50), bool)
    ref[4, 5:45] = True
    pred = np.zeros_like(ref)
    pred[3:6, 5:45] = True  # three pixels thick: Dice = 2 * 40 / (40 + 120) = 0.5
    assert cldice(pred, ref) == pytest.approx(ref_cldice(pred, ref))
    assert cldice(pred, ref) > 0.95


def test_a_broken_ring_loses_sensitivity_only():
    yy, xx = np.mgrid[:40, :40]
    radius = np.hypot(yy - 19.5, xx - 19.5)
    ring = (radius >= 10) & (radius <= 13)
    broken = ring & ~((xx > 17) & (xx < 22) & (yy < 20))  # a 4-pixel gap through the top of the ring
    skel_ring = skeletonize(ring)
    tsens = (skel_ring & broken).sum() / skel_ring.sum()
    assert 0.8 < tsens < 1  # the gap removes a few skeleton pixels out of a circle of ~70
    # every skeleton pixel of the broken ring lies in the ring: Tprec = 1
    assert cldice(broken, ring) == pytest.approx(2 * tsens / (1 + tsens))
    assert cldice(ring, broken) == pytest.approx(2 * tsens / (1 + tsens))  # symmetric in P and G


@pytest.mark.parametrize("shape", [(24, 30), (8, 10, 12)])
def test_cldice_matches_the_formula_on_whole_arrays(shape):
    rng = np.random.default_rng(fresh_seed())
    for _ in range(15):
        pred, ref = blobs(rng, shape), blobs(rng, shape)
        pred[1, 1] = ref[-2, -2] = True
        expected = ref_cldice(pred, ref)
        got = cldice(pred, ref)
        if math.isnan(expected):
            assert got is None
        else:
            assert got == pytest.approx(expected, rel=1e-12)


def test_a_3d_object_whose_skeleton_vanishes_is_undefined():
    # Lee's 3-D thinning erases a solid 2 x 2 x 2 cube entirely (2-D thinning never empties an object)
    cube = np.zeros((4, 4, 4), bool)
    cube[1:3, 1:3, 1:3] = True
    assert not skeletonize(cube).any()
    assert cldice(cube, cube) is None


def test_empty_rules():
    empty = np.zeros((6, 7), bool)
    line = empty.copy()
    line[3, 1:6] = True
    assert cldice(empty, empty) == EMPTY_RULES["both_empty"]["cldice"] == 1.0
    assert cldice(line, empty) == EMPTY_RULES["reference_empty"]["cldice"] == 0.0
    assert cldice(empty, line) == EMPTY_RULES["prediction_empty"]["cldice"] == 0.0
    far = empty.copy()
    far[0, 0] = True
    assert cldice(far, line) == 0.0  # no skeleton pixel inside the other mask: Tprec = Tsens = 0
