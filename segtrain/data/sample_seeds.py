"""Per-sample augmentation seeds, drawn in the main process and handed to the loader's workers with each index.

A DataLoader worker keeps its random state for as long as it lives; with ``persistent_workers`` that is the
whole run, and a run paused at an epoch boundary and resumed starts new workers whose state the checkpoint
cannot restore. How the indices are split among the workers also depends on ``num_workers``. So a data set
whose augmentations draw from the worker's state gives other crops after a resume or with another worker
count. :class:`SeededSampler` makes the randomness a function of (run seed, rank, epoch, position in the
epoch) instead: it yields ``(index, sample_seed)``, and a data set that declares ``takes_sample_seeds = True``
reseeds its pipeline from ``sample_seed`` before transforming that sample.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler


def takes_sample_seeds(dataset: Any) -> bool:
    """Whether ``dataset`` accepts ``(index, seed)`` pairs (its ``takes_sample_seeds`` attribute, which wrappers
    such as TargetMaps forward)."""
    return getattr(dataset, "takes_sample_seeds", False) is True


class SeededSampler(Sampler):
    """Wraps ``inner`` (RandomSampler, SequentialSampler, DistributedSampler, ...): yields ``(index, seed)`` with
    the indices of ``inner`` in its order and, for the i-th item of epoch e on process ``rank``,
    ``seed = np.random.default_rng([seed, rank, e]).integers(0, 2**32, size=len(inner))[i]``.

    The seeds go by position in the epoch, not by index: a sampler that repeats an index (drawing with
    replacement) still gets a fresh augmentation for each repeat. ``rank`` (the torchrun rank, 0 in a single
    process) keeps the shards of a distributed run from sharing their seeds position by position.
    ``set_epoch`` is forwarded to ``inner`` when it has one (DistributedSampler reshuffles there).
    """

    def __init__(self, inner: Sampler, seed: int, rank: int = 0) -> None:
        if not isinstance(inner, Sized):
            raise TypeError(f"SeededSampler needs a sampler with a length, got {type(inner).__name__}")
        self.inner = inner
        self.seed, self.rank = int(seed), int(rank)
        self.epoch = 0
        self._start = 0

    @property
    def generator(self) -> torch.Generator | None:
        """The inner sampler's generator (RandomSampler's drives the shuffle order; trainers checkpoint it)."""
        return getattr(self.inner, "generator", None)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def start_next_iteration_at(self, position: int) -> None:
        """The next iteration leaves out its first ``position`` items (a resume in the middle of an epoch): the
        order and the seeds are drawn as always, so the items that follow are the same, and the skipped ones
        are never loaded."""
        self._start = int(position)

    def epoch_seeds(self) -> np.ndarray:
        """The seeds of the current epoch, one per position, drawn at once."""
        return np.random.default_rng([self.seed, self.rank, self.epoch]).integers(0, 2**32, size=len(self.inner))

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        seeds = self.epoch_seeds().tolist()
        start, self._start = self._start, 0
        for position, index in enumerate(self.inner):
            if position == len(seeds):
                raise RuntimeError(f"{type(self.inner).__name__} yielded more indices than its length {len(seeds)}")
            if position >= start:
                yield int(index), seeds[position]
