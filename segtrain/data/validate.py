"""Scan a whole data set and list every problem at once, instead of failing on the first mid-epoch.

``check_dataset("folder", root=..., mode=..., ...)`` builds each split with problems collected rather
than raised, then reads every image and mask (decode, channels, size, mask values). The result is a
list of sentences, each naming the file and what was expected; an empty list means the data set is clean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from segtrain.data.base import DATASETS


def check_dataset(
    name: str,
    splits: Sequence[str] = ("train", "val"),
    progress: Callable[[str, int, int], None] | None = None,
    **kwargs: Any,
) -> list[str]:
    """Every problem of data set ``name`` in ``splits``; ``kwargs`` are the dataset config's keys.

    ``progress(split, done, total)`` is called after each sample when given.
    """
    problems: list[str] = []
    for split in splits:
        try:
            dataset = DATASETS.build(name, split=split, collect_problems=True, **kwargs)
        except (ValueError, FileNotFoundError, TypeError) as exc:
            problems.append(f"[{split}] {exc}")
            continue
        problems.extend(f"[{split}] {p}" for p in getattr(dataset, "problems", []))
        check = getattr(dataset, "check_sample", None)
        if check is None:
            continue
        for i in range(len(dataset)):
            problems.extend(f"[{split}] {p}" for p in check(i))
            if progress is not None:
                progress(split, i + 1, len(dataset))
    return problems
