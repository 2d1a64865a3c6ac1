"""Decoded images and masks of a folder data set held in RAM (``dataset.cache: auto | true | false``).

Decoding a PNG costs the same every epoch; a split that fits in memory is decoded once, when the data set is
built, in the main process, so loader workers forked afterwards share the arrays (copy-on-write pages that
are only read) instead of each decoding its own copy. ``auto`` caches a split when its decoded size,
estimated from the file headers, is at most ``BUDGET_SHARE`` of the memory available at that moment; the
choice and the sizes go to the log. The arrays are read-only, so a transform that tried to write into its
input would raise instead of changing the cache: a cached sample is the same array a fresh decode gives.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from segtrain.data.io import is_16bit

log = logging.getLogger("segtrain")

BUDGET_SHARE = 0.25  # of the memory available when the split is built; several jobs may share the machine


def check_cache(value: object) -> str | bool:
    """``dataset.cache`` as given: auto, true or false; anything else is an error naming the key."""
    if value is True or value is False or value == "auto":
        return value
    raise ValueError(f"dataset.cache={value!r}: expected auto, true or false")


def available_bytes() -> int:
    """Memory the kernel could give this process now (MemAvailable), else the free physical pages."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def estimate_bytes(pairs: Sequence[tuple[Path, Path]], in_channels: int, mask_channels: int) -> int:
    """Decoded size of (image, mask) file pairs from their headers: H x W x in_channels at 1 or 2 bytes
    (16-bit files), plus H x W x mask_channels bytes."""
    total = 0
    for image_path, _ in pairs:
        with Image.open(image_path) as img:
            w, h = img.size
            depth = 2 if is_16bit(img) else 1
        total += h * w * (in_channels * depth + mask_channels)
    return total


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB"


class DecodedCache:
    """The decoded (image, mask) of every sample of one split, read-only; ``report`` says what it chose."""

    def __init__(
        self,
        setting: str | bool,
        pairs: Sequence[tuple[Path, Path]],
        load: Callable[[int], tuple[np.ndarray, np.ndarray]],
        in_channels: int,
        mask_channels: int,
        split: str,
    ) -> None:
        self.items: list[tuple[np.ndarray, np.ndarray]] | None = None
        setting = check_cache(setting)
        if setting is False:
            self.report = f"{split}: not cached (dataset.cache=false)"
            return
        budget = int(BUDGET_SHARE * available_bytes())
        estimate = estimate_bytes(pairs, in_channels, mask_channels)
        if setting == "auto" and estimate > budget:
            self.report = (
                f"{split}: not cached (dataset.cache=auto): {len(pairs)} images decode to about {_mb(estimate)}, "
                f"over the budget of {_mb(budget)} ({BUDGET_SHARE:.0%} of the available memory)"
            )
            log.info("dataset cache %s", self.report)
            return
        threads = min(8, os.cpu_count() or 1)  # PIL and zlib release the GIL while they decode
        with ThreadPoolExecutor(threads) as pool:
            items = list(pool.map(load, range(len(pairs))))
        for image, mask in items:
            image.setflags(write=False)
            mask.setflags(write=False)
        self.items = items
        self.nbytes = sum(a.nbytes + b.nbytes for a, b in items)
        why = "dataset.cache=true" if setting is True else f"dataset.cache=auto, budget {_mb(budget)}"
        self.report = f"{split}: {len(items)} images decoded into RAM, {_mb(self.nbytes)} ({why})"
        log.info("dataset cache %s", self.report)

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        return None if self.items is None else self.items[index]
