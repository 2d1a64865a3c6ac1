"""clDice (centreline Dice) of hard masks, 2-D or 3-D: Shit et al. 2021, "clDice - a Novel Topology-Preserving
Loss Function for Tubular Structure Segmentation" (CVPR).

    Tprec = |S(P) & G| / |S(P)|,   Tsens = |S(G) & P| / |S(G)|,   clDice = 2 Tprec Tsens / (Tprec + Tsens)

with ``S`` the skeleton by ``skimage.morphology.skeletonize`` (Zhang-Suen in 2-D, Lee et al. in 3-D).
It measures whether the centrelines of tubular structures (vessels, membranes, roads) are found and
connected, so it is reported in binary and multilabel modes and left undefined for multiclass label maps.
Empty masks take the values of ``empty_rules.EMPTY_RULES``; ``Tprec = Tsens = 0`` gives 0. In 3-D, Lee's
thinning can erase a compact non-empty object entirely (no 2-D case found); its Tprec or Tsens is then 0/0 and
clDice is undefined (None), as in the authors' reference code (NaN).

The skeletons are computed on the bounding box of ``P | G``: skeletonize treats the outside of the array as
background, so removing all-background margins changes no skeleton pixel.
"""

from __future__ import annotations

import numpy as np
from skimage.morphology import skeletonize

from segtrain.metrics.empty_rules import empty_case, empty_value
from segtrain.metrics.surface import check_mask_pair, union_bbox


def cldice(pred: np.ndarray, ref: np.ndarray) -> float | None:
    """clDice of a prediction and a reference boolean mask (see the module docstring)."""
    check_mask_pair(pred, ref)
    case = empty_case(not ref.any(), not pred.any())
    if case is not None:
        return empty_value(case, "cldice", pred.shape)
    box = union_bbox(pred, ref)
    pred, ref = pred[box], ref[box]
    skel_pred, skel_ref = skeletonize(pred), skeletonize(ref)
    n_pred, n_ref = np.count_nonzero(skel_pred), np.count_nonzero(skel_ref)
    if n_pred == 0 or n_ref == 0:
        return None
    tprec = np.count_nonzero(skel_pred & ref) / n_pred
    tsens = np.count_nonzero(skel_ref & pred) / n_ref
    if tprec + tsens == 0:
        return 0.0
    return 2 * tprec * tsens / (tprec + tsens)
