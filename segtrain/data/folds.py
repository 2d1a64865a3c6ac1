"""k-fold cross-validation splits: pooled sample ids -> K seeded, disjoint, balanced folds.

Every id belongs to exactly one fold. With ``group_pattern`` (a regular expression searched in each id; its
first capture group, or else the whole match, names the group) all ids of one group land in one fold, so the
slices of one patient or the frames of one scene never sit on both sides of a split. Groups are shuffled with
``seed`` (not the training seed: every training seed sees the same folds), then placed largest first, each
into the fold with the fewest samples so far (ties: the lowest fold), which balances fold sizes; without
groups the sizes differ by at most one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np


def check_fold_args(folds: int | None, fold: int | None, group_pattern: str | None) -> None:
    """``folds`` and ``fold`` go together; 0 <= fold < folds, folds >= 2; group_pattern only with folds."""
    if folds is None:
        if fold is not None or group_pattern:
            given = "dataset.fold" if fold is not None else "dataset.group_pattern"
            raise ValueError(f"{given} is set but dataset.folds is null; set dataset.folds: K for K-fold CV")
        return
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"dataset.folds must be an integer >= 2 (the number of folds), got {folds!r}")
    if fold is None:
        raise ValueError(f"dataset.folds={folds} but dataset.fold is null; set dataset.fold to 0..{folds - 1}")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < folds:
        raise ValueError(f"dataset.fold must be an integer in 0..{folds - 1} (dataset.folds={folds}), got {fold!r}")


def group_of(sample_ids: Sequence[str], group_pattern: str | None) -> dict[str, str]:
    """id -> its group: the pattern's first capture group (else the whole match); each id alone without one."""
    if not group_pattern:
        return {i: i for i in sample_ids}
    try:
        pattern = re.compile(group_pattern)
    except re.error as exc:
        raise ValueError(f"dataset.group_pattern={group_pattern!r} is not a valid regular expression: {exc}") from None
    out = {}
    for sample_id in sample_ids:
        m = pattern.search(sample_id)
        if m is None:
            raise ValueError(
                f"dataset.group_pattern={group_pattern!r} does not match sample id {sample_id!r}; every id needs a "
                "group (e.g. '^(patient\\d+)_' for ids like patient07_slice012)"
            )
        out[sample_id] = m.group(1) if pattern.groups and m.group(1) is not None else m.group(0)
    return out


def assign_folds(sample_ids: Sequence[str], folds: int, seed: int, group_pattern: str | None = None) -> dict[str, int]:
    """id -> fold in 0..folds-1 (see the module docstring). Deterministic in (the set of ids, folds, seed,
    group_pattern): the order of ``sample_ids`` does not matter."""
    ids = sorted(set(sample_ids))
    if len(ids) != len(sample_ids):
        raise ValueError("assign_folds: sample ids must be unique")
    groups = group_of(ids, group_pattern)
    members: dict[str, list[str]] = {}
    for sample_id in ids:
        members.setdefault(groups[sample_id], []).append(sample_id)
    names = sorted(members)
    if len(names) < folds:
        what = "groups (dataset.group_pattern)" if group_pattern else "samples"
        raise ValueError(f"dataset.folds={folds} but the pooled train+val data have only {len(names)} {what}")
    shuffled = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    shuffled.sort(key=lambda g: -len(members[g]))  # stable: equal sizes keep the seeded order
    sizes = [0] * folds
    out: dict[str, int] = {}
    for g in shuffled:
        k = min(range(folds), key=lambda j: (sizes[j], j))
        sizes[k] += len(members[g])
        for sample_id in members[g]:
            out[sample_id] = k
    return out


def fold_ids(sample_ids: Sequence[str], split: str, folds: int, fold: int, seed: int,
             group_pattern: str | None = None) -> list[str]:  # fmt: skip
    """The ids of ``split`` under k-fold CV: fold ``fold`` for "val", the other folds for "train"; sorted."""
    if split not in ("train", "val"):
        raise ValueError(f"k-fold CV splits train and val only, got split {split!r} (a test split is never pooled)")
    assigned = assign_folds(sample_ids, folds, seed, group_pattern)
    return sorted(i for i, k in assigned.items() if (k == fold) == (split == "val"))
