"""Target-side maps of each sample's mask, made in the loader's workers for the losses that take them as extra
inputs (``aux_inputs``): the boundary losses' ``distance``, skeleton_recall's ``skeleton`` and hausdorff_dt's
``target_distance``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from torch.utils.data import Dataset

from segtrain.losses.target_maps import sample_distance_maps, sample_skeleton_maps, sample_target_distance_maps

MAKERS: dict[str, Callable[..., Any]] = {
    "distance": sample_distance_maps,
    "skeleton": sample_skeleton_maps,
    "target_distance": sample_target_distance_maps,
}


def map_names(aux_inputs: Iterable[str]) -> list[str]:
    """The names among a loss's ``aux_inputs`` that ``TargetMaps`` makes (empty: the loss takes none)."""
    wanted = set(aux_inputs)
    return [key for key in MAKERS if key in wanted]


class TargetMaps(Dataset):
    """A data set whose samples also carry the maps named in ``keys`` (a subset of ``MAKERS``): C x S, one per
    model output channel, of the mask after its transforms (``distance``: float32 signed distance maps, Kervadec
    et al. 2019's level sets; ``skeleton``: uint8 skeleton tubes; ``target_distance``: float32 two-sided distance
    maps). The losses take them as keyword inputs (``loss(logits, target, skeleton=...)``); made here they cost
    the loader's workers, in parallel with training, instead of the training step (as in the papers' code).
    Every other attribute (``num_classes``, ``mode``, ...) is the wrapped data set's."""

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
        if name in ("dataset", "keys"):  # not set yet (unpickling in a worker): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)


class DistanceMaps(TargetMaps):
    """``TargetMaps(dataset, ["distance"])``: the boundary losses' signed distance maps."""

    def __init__(self, dataset: Any) -> None:
        super().__init__(dataset, ["distance"])
