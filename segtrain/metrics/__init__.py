"""Segmentation metrics.

- ``confusion``: Dice/IoU from a confusion matrix accumulated on the device over a split (``SegMetrics``).
- ``surface``: HD95 and normalised surface Dice (NSD) per image and class, from distance transforms.
- ``topology``: clDice (centreline Dice) on hard masks.
- ``empty_rules``: what every per-case metric is when the reference and/or the prediction is empty.
- ``per_case``: one row per image x class with all of the above, their aggregation, and the CSV writer.
"""

from segtrain.metrics.confusion import EMPTY_CLASS_POLICY, SegMetrics

__all__ = ["EMPTY_CLASS_POLICY", "SegMetrics"]
