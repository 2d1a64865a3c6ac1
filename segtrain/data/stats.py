"""Per-class pixel frequencies, image counts and sizes of a split, for reports and class-weighted losses.

Counts are taken on the decoded masks before augmentation (what the files hold, after palette /
label_map / foreground mapping), so they do not depend on random crops.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segtrain.data import io
from segtrain.modes import BINARY, MULTICLASS, MULTILABEL


def _masks_of(source: Any) -> tuple[list[str], Any, int | None, str]:
    """(names, iterator of target masks, ignore_index, mode) for a data set or a list of mask paths."""
    if hasattr(source, "load_mask") and hasattr(source, "class_names"):
        mode = source.mode
        names = list(source.class_names)
        if mode == BINARY:
            names = ["background", *names]
        return names, (source.load_mask(i) for i in range(len(source))), source.ignore_index, mode
    raise TypeError(
        f"class_frequencies expects a data set with load_mask() (e.g. FolderDataset) or a list of mask "
        f"paths, got {type(source).__name__}"
    )


def class_frequencies(
    source: Any,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Pixel counts and frequencies per class, images containing each class, and image sizes.

    ``source`` is a data set with ``load_mask`` (FolderDataset and the layouts) or a list of mask paths
    (single-channel class-index files; then ``num_classes`` is required). Binary data sets count two
    classes (background, foreground); multilabel ones count positives per channel.
    Returns ``{"class_names", "pixel_counts", "frequencies" (over non-ignored pixels), "image_counts"
    (images containing the class), "ignored_pixels", "num_images", "total_pixels", "sizes" ({"HxW": n})}``.
    """
    if isinstance(source, (list, tuple)) and (not source or isinstance(source[0], (str, Path))):
        if num_classes is None:
            raise ValueError("class_frequencies(paths) needs num_classes.")
        names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
        masks = (io.read_mask(p) for p in source)
        mode = MULTICLASS
        paths = [Path(p) for p in source]
    else:
        names, masks, ignore_index, mode = _masks_of(source)
        paths = None
    k = len(names)
    pixel_counts = np.zeros(k, dtype=np.int64)
    image_counts = np.zeros(k, dtype=np.int64)
    ignored = total = n_images = 0
    sizes: Counter[str] = Counter()
    for i, mask in enumerate(masks):
        n_images += 1
        sizes[f"{mask.shape[0]}x{mask.shape[1]}"] += 1
        total += mask.shape[0] * mask.shape[1]
        if mode == MULTILABEL:
            counts = mask.reshape(-1, mask.shape[-1]).sum(axis=0, dtype=np.int64)
        else:
            flat = mask.reshape(-1).astype(np.int64)
            if ignore_index is not None:
                keep = flat != ignore_index
                ignored += int(flat.size - keep.sum())
                flat = flat[keep]
            if flat.size and (flat.min() < 0 or flat.max() >= k):
                where = f"mask {paths[i]}" if paths else f"mask {i}"
                raise ValueError(
                    f"{where} has values outside 0..{k - 1} (and ignore_index={ignore_index}); "
                    f"expected {k} classes."
                )
            counts = np.bincount(flat, minlength=k)
        pixel_counts += counts
        image_counts += counts > 0
    if n_images == 0:
        raise ValueError("class_frequencies: the split has no masks; expected at least one sample.")
    labelled = total if mode == MULTILABEL else int(pixel_counts.sum())
    freqs = pixel_counts / max(labelled, 1)
    return {
        "class_names": names,
        "pixel_counts": pixel_counts.tolist(),
        "frequencies": freqs.tolist(),
        "image_counts": image_counts.tolist(),
        "ignored_pixels": int(ignored),
        "num_images": n_images,
        "total_pixels": int(total),
        "sizes": dict(sizes),
    }


def dataset_class_frequencies(dataset: Any) -> list[float]:
    """Class frequencies for a loss's ``frequencies: dataset`` (weighted_ce, exp_log).

    Multiclass: C fractions of the non-ignored pixels. Binary: [background, foreground] fractions.
    Multilabel: the positive fraction of each channel.
    """
    return [float(f) for f in class_frequencies(dataset)["frequencies"]]


def image_mean_std(dataset: Any, max_images: int | None = None) -> dict[str, list[float]]:
    """Per-channel mean and std of the images in 0-1 scale (for ``dataset.normalize``)."""
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    if n == 0:
        raise ValueError("image_mean_std: the data set has no images.")
    s = s2 = None
    count = 0
    for i in range(n):
        img = dataset.load_image(i)
        x = img.reshape(-1, img.shape[-1]).astype(np.float64) / io.dtype_max(img)
        s = x.sum(0) if s is None else s + x.sum(0)
        s2 = (x**2).sum(0) if s2 is None else s2 + (x**2).sum(0)
        count += x.shape[0]
    mean = s / count
    std = np.sqrt(np.maximum(s2 / count - mean**2, 0))
    return {"mean": [round(float(v), 4) for v in mean], "std": [round(float(v), 4) for v in std]}
