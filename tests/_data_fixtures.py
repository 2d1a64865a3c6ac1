"""Tiny on-disk data sets for the data tests, written with PIL into a tmp_path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def make_pair(
    root: Path,
    split: str | None,
    sample_id: str,
    size: tuple[int, int] = (24, 32),
    channels: int = 3,
    num_classes: int = 3,
    ext: str = ".png",
    seed: int = 0,
) -> tuple[Path, Path]:
    """One image (uint8, ``channels``) and mask (values 0..num_classes-1) in the folder layout."""
    rng = np.random.default_rng(seed)
    h, w = size
    shape = (h, w) if channels == 1 else (h, w, channels)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    mask = rng.integers(0, num_classes, (h, w), dtype=np.uint8)
    sub = f"/{split}" if split else ""
    img_path = write_image(root / f"images{sub}" / f"{sample_id}{ext}", image)
    mask_path = write_image(root / f"masks{sub}" / f"{sample_id}.png", mask)
    return img_path, mask_path


def make_folder(
    root: Path,
    splits: Sequence[str] = ("train", "val"),
    n: int = 3,
    classes: Sequence[str] | None = ("background", "cat", "dog"),
    **kwargs,
) -> Path:
    """A folder-layout data set: ``n`` pairs per split and classes.txt (unless ``classes`` is None)."""
    for s, split in enumerate(splits):
        for i in range(n):
            make_pair(root, split, f"{split}_{i:02d}", seed=100 * s + i, **kwargs)
    if classes is not None:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


def folder_kwargs(root: Path, **overrides) -> dict:
    """Constructor keywords of the 3-class RGB folder data set above."""
    kw = dict(mode="multiclass", num_classes=3, class_names=None, ignore_index=255, in_channels=3, root=root)
    kw.update(overrides)
    return kw
