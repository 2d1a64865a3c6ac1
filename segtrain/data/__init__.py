"""Data sets behind the ``dataset`` registry.

Every data set returns samples ``{"image": float32 C x H x W, "mask": ..., "id": str}`` where the mask is
int64 H x W (multiclass: class indices, ``ignore_index`` for void; binary: {0, 1} and ``ignore_index``)
or float32 C x H x W in {0, 1} (multilabel).
"""

from __future__ import annotations

from segtrain.data import folder, layouts, synthetic  # noqa: F401  (register shapes, folder, voc, ...)
from segtrain.data.base import DATASETS, SegDataset
from segtrain.data.folder import FolderDataset
from segtrain.data.loader import build_loader
from segtrain.data.stats import class_frequencies, dataset_class_frequencies, image_mean_std
from segtrain.data.target_maps import DistanceMaps, TargetMaps, map_names
from segtrain.data.transforms import build_transforms, seed_worker
from segtrain.data.validate import check_dataset

__all__ = [
    "DATASETS",
    "DistanceMaps",
    "FolderDataset",
    "SegDataset",
    "TargetMaps",
    "available_datasets",
    "build_dataset",
    "build_loader",
    "build_transforms",
    "check_dataset",
    "class_frequencies",
    "dataset_class_frequencies",
    "image_mean_std",
    "map_names",
    "seed_worker",
]


def build_dataset(name: str, split: str, **kwargs) -> SegDataset:
    """Build registered data set ``name`` for ``split`` ("train", "val", "test")."""
    return DATASETS.build(name, split=split, **kwargs)


def available_datasets() -> list[str]:
    return DATASETS.names()
