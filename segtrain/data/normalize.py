"""``dataset.normalize: {mean, std}``: per-channel statistics in 0-1 image scale, checked once for the data
sets and for inference on image files."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def normalize_stats(normalize: Mapping[str, Any] | None, in_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) as float32 arrays of ``in_channels`` values; ``x_normalised = (x - mean) / std``.

    ``mean`` defaults to 0 and ``std`` to 1; one value is repeated to every channel. Unknown keys, a count
    that is neither 1 nor ``in_channels``, and a non-positive std are errors that name the key.
    """
    normalize = dict(normalize or {})
    unknown = sorted(set(normalize) - {"mean", "std"})
    if unknown:
        raise ValueError(f"dataset.normalize has unknown key(s) {unknown}; expected mean and std.")
    out = []
    for key, default in (("mean", 0.0), ("std", 1.0)):
        value = normalize.get(key)
        arr = np.asarray(default if value is None else value, dtype=np.float32).reshape(-1)
        if arr.size == 1:
            arr = np.repeat(arr, in_channels)
        if arr.size != in_channels:
            raise ValueError(f"dataset.normalize.{key} has {arr.size} values but dataset.in_channels={in_channels}.")
        if key == "std" and np.any(arr <= 0):
            raise ValueError(f"dataset.normalize.std must be positive, got {arr.tolist()}.")
        out.append(arr)
    return out[0], out[1]
