"""What each per-case metric is when the reference or the prediction of one image x class is empty.

Metrics Reloaded (Maier-Hein et al., Nat. Methods 2024) asks that empty cases be given an explicit,
reported value rather than left to 0/0. We follow its reference implementation (MetricsReloaded's
``BinaryPairwiseMeasures``): when reference and prediction are both empty the case is a correct true
negative, so the overlap scores are perfect (its F-beta/DSC returns 1) and the distances are 0 (its HD and
HD percentile return 0). We extend the same reading to IoU, NSD and clDice (1). When exactly one of the
two is empty the overlap scores are 0 and the Hausdorff distance is the image diagonal,
``sqrt(sum_i s_i^2)`` in pixels for an image of size ``s`` -- larger than any distance two pixels of the
image can have, so a missed or hallucinated structure always scores worse than any found one.

Both-empty cases are defined values (1 / 0) and so enter every mean; ``aggregate_cases`` reports how many
of each class's cases were both empty so that a reader can tell true negatives from found structures.

``EMPTY_RULES`` is JSON-serialisable: it is written into metrics.json next to the values it explains, and
``surface``/``topology`` read their empty-case values from it, so the two cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

DIAGONAL = "diagonal"  # placeholder in EMPTY_RULES for the image diagonal, resolved per image by ``empty_value``

EMPTY_RULES: dict[str, Any] = {
    "source": "Metrics Reloaded (Maier-Hein et al. 2024), values of its reference implementation",
    "both_empty": {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0, "cldice": 1.0},
    "reference_empty": {"dice": 0.0, "iou": 0.0, "hd95": DIAGONAL, "nsd": 0.0, "cldice": 0.0},
    "prediction_empty": {"dice": 0.0, "iou": 0.0, "hd95": DIAGONAL, "nsd": 0.0, "cldice": 0.0},
    "diagonal": "sqrt(sum of squared image sizes), in pixels",
    "ignore_index": "pixels whose target is ignore_index count as background in both masks and in no TP/FP/FN",
    "cldice": "binary and multilabel modes only; undefined (empty cell) in multiclass mode and where a 3-D "
    "skeleton vanishes",
    "aggregation": "means over cases with a defined value; both-empty cases count (see n_both_empty)",
}


def image_diagonal(shape: Sequence[int]) -> float:
    """The diagonal of an image of spatial size ``shape``, in pixels."""
    return math.sqrt(sum(int(s) ** 2 for s in shape))


def empty_case(ref_empty: bool, pred_empty: bool) -> str | None:
    """The EMPTY_RULES key for a case, or None when both masks have foreground."""
    if ref_empty and pred_empty:
        return "both_empty"
    if ref_empty:
        return "reference_empty"
    if pred_empty:
        return "prediction_empty"
    return None


def empty_value(case: str, metric: str, shape: Sequence[int]) -> float:
    """EMPTY_RULES[case][metric] as a number (the diagonal resolved for an image of size ``shape``)."""
    value = EMPTY_RULES[case][metric]
    return image_diagonal(shape) if value == DIAGONAL else float(value)
