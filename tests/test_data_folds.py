"""k-fold CV of folder data sets: disjoint folds that cover the pooled train+val, groups kept together,
test untouched, deterministic across training seeds, clear errors."""

from __future__ import annotations

import pytest

from segtrain.data.folder import FolderDataset
from segtrain.data.folds import assign_folds, fold_ids
from tests._data_fixtures import folder_kwargs, make_folder, make_pair


def test_folds_are_disjoint_balanced_and_cover_every_id():
    ids = [f"s{i:02d}" for i in range(23)]
    assigned = assign_folds(ids, 5, seed=0)
    assert set(assigned) == set(ids)
    sizes = sorted(list(assigned.values()).count(k) for k in range(5))
    assert sum(sizes) == 23 and max(sizes) - min(sizes) <= 1
    vals = [fold_ids(ids, "val", 5, k, 0) for k in range(5)]
    assert sorted(i for v in vals for i in v) == sorted(ids)  # each id is val in exactly one fold
    for k in range(5):
        assert sorted(fold_ids(ids, "train", 5, k, 0) + vals[k]) == sorted(ids)


def test_folds_are_deterministic_seeded_and_independent_of_the_id_order():
    ids = [f"case{i}" for i in range(30)]
    a = assign_folds(ids, 3, seed=7)
    assert assign_folds(list(reversed(ids)), 3, seed=7) == a
    assert assign_folds(ids, 3, seed=8) != a


def test_group_pattern_keeps_a_patient_in_one_fold():
    ids = [f"patient{p}_slice{s:03d}" for p in range(7) for s in range(1 + p % 3)]
    assigned = assign_folds(ids, 3, seed=0, group_pattern=r"^(patient\d+)_")
    for p in range(7):
        assert len({assigned[i] for i in ids if i.startswith(f"patient{p}_")}) == 1
    # the whole match names the group when the pattern has no capture group
    whole = assign_folds(ids, 3, seed=0, group_pattern=r"^patient\d+")
    assert whole == assigned


def test_fold_errors_name_the_problem():
    ids = ["a_1", "a_2", "b_1", "c_1"]
    with pytest.raises(ValueError, match="only 3 groups"):
        assign_folds(ids, 4, seed=0, group_pattern=r"^(\w)_")
    with pytest.raises(ValueError, match="does not match sample id 'zz'"):
        assign_folds([*ids, "zz"], 2, seed=0, group_pattern=r"^(\w)_")
    with pytest.raises(ValueError, match="only 4 samples"):
        assign_folds(ids, 5, seed=0)


def test_folder_data_set_pools_train_and_val_and_leaves_test_alone(tmp_path):
    make_folder(tmp_path, splits=("train", "val", "test"), n=4)
    kw = folder_kwargs(tmp_path, folds=4, split_seed=3)
    pooled = {f"{s}_{i:02d}" for s in ("train", "val") for i in range(4)}
    vals = []
    for k in range(4):
        train = FolderDataset(split="train", fold=k, **kw).ids
        val = FolderDataset(split="val", fold=k, **kw).ids
        assert not set(train) & set(val) and set(train) | set(val) == pooled and len(val) == 2
        assert FolderDataset(split="test", fold=k, **kw).ids == [f"test_{i:02d}" for i in range(4)]
        vals += val
    assert sorted(vals) == sorted(pooled)
    # the same fold twice (another training seed): the same split
    assert FolderDataset(split="val", fold=1, **kw).ids == FolderDataset(split="val", fold=1, **kw).ids


def test_flat_folder_with_group_pattern(tmp_path):
    for p in range(5):
        for s in range(3):
            make_pair(tmp_path, None, f"p{p}_s{s}")
    kw = folder_kwargs(tmp_path, images_dir="images", masks_dir="masks", folds=5, group_pattern=r"^(p\d)_")
    for k in range(5):
        val = FolderDataset(split="val", fold=k, **kw).ids
        assert len(val) == 3 and len({i.split("_")[0] for i in val}) == 1
    with pytest.raises(ValueError, match="val_fraction.*folds.*both choose"):
        FolderDataset(split="val", fold=0, **{**kw, "val_fraction": 0.2})


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"folds": 5, "fold": 5}, r"dataset.fold must be an integer in 0..4"),
        ({"folds": 1, "fold": 0}, r"dataset.folds must be an integer >= 2"),
        ({"folds": 3}, r"dataset.fold is null"),
        ({"fold": 1}, r"dataset.fold is set but dataset.folds is null"),
        ({"folds": 7, "fold": 0}, r"dataset.folds=7 but the pooled train\+val data have only 6 samples"),
    ],
)
def test_bad_fold_settings_are_clear_errors(tmp_path, extra, message):
    make_folder(tmp_path)
    with pytest.raises(ValueError, match=message):
        FolderDataset(split="train", **folder_kwargs(tmp_path, **extra))
