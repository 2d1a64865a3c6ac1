"""Decoding a folder data set's stored masks into targets, with errors that name the file.

In order: palette (RGB colour -> class) -> mask_scale / binary_threshold -> label_map -> range check (every
value must be a mask class index or ignore_index) -> foreground_classes (binary) or labels (multilabel).
Values are never guessed: masks stored as 0/255 need ``mask_scale: 255`` or ``binary_threshold``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from segtrain.modes import BINARY


def build_palette(
    palette: Sequence[Sequence[int]] | None,
    void_colors: Sequence[Sequence[int]] | None,
    num_source_classes: int,
    ignore_index: int | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(sorted 24-bit colour codes, class value of each) for ``palette`` (one [r, g, b] per mask class, in
    index order) and ``void_colors`` (-> ignore_index); None without a palette."""
    if palette is None:
        if void_colors:
            raise ValueError("dataset.void_colors needs dataset.palette.")
        return None
    if len(palette) != num_source_classes:
        raise ValueError(
            f"dataset.palette has {len(palette)} colours but the masks have {num_source_classes} "
            "classes; give one [r, g, b] per class in index order."
        )
    if void_colors and ignore_index is None:
        raise ValueError("dataset.void_colors maps colours to ignore_index; set dataset.ignore_index.")
    codes, values = [], []
    for value, colours in [(i, [c]) for i, c in enumerate(palette)] + [(ignore_index, list(void_colors or []))]:
        for colour in colours:
            if len(colour) != 3 or not all(0 <= int(x) <= 255 for x in colour):
                raise ValueError(f"dataset.palette colour {colour} is not [r, g, b] with values 0..255.")
            code = (int(colour[0]) << 16) | (int(colour[1]) << 8) | int(colour[2])
            if code in codes:
                raise ValueError(f"dataset.palette colour {list(colour)} is listed twice.")
            codes.append(code)
            values.append(value)
    order = np.argsort(codes)
    return np.asarray(codes, dtype=np.int64)[order], np.asarray(values, dtype=np.uint8)[order]


class MaskDecoder:
    """Stored mask -> target mask: uint8 H x W (multiclass, binary) or H x W x C (multilabel)."""

    def __init__(
        self,
        mode: str,
        ignore_index: int | None,
        num_source_classes: int,
        foreground: Sequence[int] | None = None,
        labels: Sequence[Sequence[int]] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        void_colors: Sequence[Sequence[int]] | None = None,
        mask_scale: int | None = None,
        binary_threshold: int | None = None,
        label_map: Mapping[int, int] | None = None,
    ) -> None:
        if mask_scale is not None and binary_threshold is not None:
            raise ValueError("Set dataset.mask_scale or dataset.binary_threshold, not both.")
        if palette is not None and (mask_scale is not None or binary_threshold is not None):
            raise ValueError("dataset.palette maps colours to classes; it cannot be combined with mask_scale.")
        self.mode = mode
        self.ignore_index = ignore_index
        self.num_source_classes = num_source_classes
        self.foreground = foreground
        self.labels = labels
        self.mask_scale = int(mask_scale) if mask_scale is not None else None
        self.binary_threshold = binary_threshold
        self.palette_lut = build_palette(palette, void_colors, num_source_classes, ignore_index)
        self.label_map = {int(k): int(v) for k, v in (label_map or {}).items()}

    def apply_palette(self, rgb: np.ndarray, path: Path) -> np.ndarray:
        codes, values = self.palette_lut
        flat = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
        pos = np.clip(np.searchsorted(codes, flat), 0, len(codes) - 1)
        bad = codes[pos] != flat
        if bad.any():
            unknown = np.unique(flat[bad])
            shown = ", ".join(f"[{c >> 16}, {(c >> 8) & 255}, {c & 255}]" for c in unknown[:8])
            raise ValueError(
                f"Mask file {path} has {int(bad.sum())} pixels in {len(unknown)} colour(s) not in "
                f"dataset.palette: {shown}. Expected one of the {len(codes)} palette/void colours."
            )
        return values[pos]

    def decode(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """``raw`` as read from ``path`` -> the target mask."""
        if raw.ndim == 3:
            if self.palette_lut is None:
                same = (
                    raw.shape[2] == 3
                    and np.array_equal(raw[..., 0], raw[..., 1])
                    and np.array_equal(raw[..., 0], raw[..., 2])
                )
                hint = " (its channels are equal: save it as a grayscale PNG)" if same else ""
                raise ValueError(
                    f"Mask file {path} has {raw.shape[2]} channels{hint}; expected a single-channel mask of "
                    "class indices. For colour-coded masks configure dataset.palette."
                )
            mask = self.apply_palette(raw, path)
        else:
            if self.palette_lut is not None:
                raise ValueError(
                    f"Mask file {path} is single-channel but dataset.palette expects RGB colour masks; "
                    "remove dataset.palette for index masks."
                )
            mask = raw
            ignore = self.ignore_index
            if self.binary_threshold is not None:
                mask = (mask > self.binary_threshold).astype(np.uint8)
            elif self.mask_scale is not None and self.mask_scale != 1:
                rem = mask % self.mask_scale
                bad = rem != 0 if ignore is None else (rem != 0) & (mask != ignore)
                if bad.any():
                    vals = np.unique(mask[bad])[:10].tolist()
                    raise ValueError(
                        f"Mask file {path} has values {vals} that are not multiples of dataset.mask_scale="
                        f"{self.mask_scale}; expected only 0, {self.mask_scale}, ... (use "
                        "dataset.binary_threshold for lossy masks)."
                    )
                scaled = mask // self.mask_scale
                mask = scaled if ignore is None else np.where(mask == ignore, ignore, scaled)
            if self.label_map:
                lut = np.arange(max(int(mask.max()) + 1, max(self.label_map) + 1), dtype=np.int64)
                for src, dst in self.label_map.items():
                    lut[src] = dst
                mask = lut[mask]
            self.check_values(mask, path)
            mask = mask.astype(np.uint8, copy=False)
        return self.to_target(mask)

    def check_values(self, mask: np.ndarray, path: Path) -> None:
        """Every value is a mask class index or ignore_index; else an error naming the file and values."""
        n = self.num_source_classes
        if mask.size == 0 or (int(mask.max()) < n and int(mask.min()) >= 0):
            return
        bad = (mask >= n) | (mask < 0)
        if self.ignore_index is not None:
            bad &= mask != self.ignore_index
        if not bad.any():
            return
        values = np.unique(mask[bad])
        ignore = f" or ignore_index={self.ignore_index}" if self.ignore_index is not None else ""
        hint = ""
        if self.mode == BINARY and self.foreground is None and set(values.tolist()) <= {255}:
            hint = " For masks stored as 0/255 set dataset.mask_scale=255."
        raise ValueError(
            f"Mask file {path} has {int(bad.sum())} pixels with value(s) {values[:10].tolist()}; "
            f"expected class indices 0..{n - 1} (the data set has {n} mask classes){ignore}.{hint}"
        )

    def to_target(self, mask: np.ndarray) -> np.ndarray:
        """Mask class indices -> binary foreground (0/1, void kept) or multilabel channels; else as is."""
        if self.foreground is not None:
            lut = np.zeros(256, dtype=np.uint8)
            lut[self.foreground] = 1
            if self.ignore_index is not None:
                lut[self.ignore_index] = self.ignore_index
            return lut[mask]
        if self.labels is not None:
            return np.stack([np.isin(mask, group) for group in self.labels], axis=-1).astype(np.uint8)
        return mask
