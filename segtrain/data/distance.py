"""Signed distance maps of each sample's mask, made in the loader's workers for the boundary losses."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from segtrain.distance import sample_distance_maps


class DistanceMaps(Dataset):
    """A data set whose samples also carry ``"distance"``: float32 C x S signed distance maps of the mask
    after its transforms, one per model output channel (Kervadec et al. 2019's level sets).

    The boundary losses take them as ``loss(logits, target, distance=...)``; computed here they cost the
    loader's workers, in parallel with training, instead of the training step (as in the paper's code).
    Every other attribute (``num_classes``, ``mode``, ...) is the wrapped data set's.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.dataset[index])
        ds = self.dataset
        spatial = sample["image"].shape[1:]
        sample["distance"] = sample_distance_maps(sample["mask"], spatial, ds.mode, ds.num_classes, ds.ignore_index)
        return sample

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet (unpickling in a worker): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)
