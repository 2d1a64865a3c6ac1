"""Skeleton and two-sided distance maps of each sample's mask, made in the loader's workers for skeleton_recall
(``skeleton``) and hausdorff_dt (``target_distance``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch.utils.data import Dataset

from segtrain.target_maps import sample_skeleton_maps, sample_target_distance_maps

MAKERS: dict[str, Callable[..., Any]] = {
    "skeleton": sample_skeleton_maps,
    "target_distance": sample_target_distance_maps,
}


class TargetMaps(Dataset):
    """A data set whose samples also carry the maps named in ``keys`` (a subset of ``MAKERS``): C x S, one per
    model output channel, of the mask after its transforms. The losses take them as keyword inputs
    (``loss(logits, target, skeleton=...)``); made here they cost the loader's workers, in parallel with
    training, instead of the training step. Every other attribute is the wrapped data set's."""

    def __init__(self, dataset: Any, keys: Sequence[str]) -> None:
        unknown = sorted(set(keys) - set(MAKERS))
        if unknown or not keys:
            raise ValueError(f"TargetMaps: unknown map names {unknown or list(keys)}; expected some of {list(MAKERS)}.")
        self.dataset = dataset
        self.keys = tuple(keys)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.dataset[index])
        ds = self.dataset
        spatial = sample["image"].shape[1:]
        for key in self.keys:
            sample[key] = MAKERS[key](sample["mask"], spatial, ds.mode, ds.num_classes, ds.ignore_index)
        return sample

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet (unpickling in a worker): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)
