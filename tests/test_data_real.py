"""The real data sets under $SEGTRAIN_DATA: skipped when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from segtrain.data import build_dataset, build_loader, check_dataset, dataset_class_frequencies

DATA = Path(os.environ.get("SEGTRAIN_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
ISBI = dict(mode="binary", num_classes=1, class_names=["membrane"], ignore_index=None, in_channels=1)
CAMVID = dict(mode="multiclass", num_classes=11, class_names=None, ignore_index=255, in_channels=3)


def _need(name: str) -> Path:
    root = DATA / name
    if not (root / "images").is_dir():
        pytest.skip(f"real data set {root} not present")
    return root


def test_isbi_em_train_crops_and_full_val():
    root = _need("isbi_em")
    aug = {
        "train": [{"name": "RandomCrop", "height": 256, "width": 256}, {"name": "HorizontalFlip"}],
        "val": [],
    }
    train = build_dataset("folder", split="train", root=root, augment=aug, **ISBI)
    val = build_dataset("folder", split="val", root=root, augment=aug, **ISBI)
    assert (len(train), len(val)) == (24, 6)
    batch = next(iter(build_loader(train, batch_size=4, shuffle=True)))
    assert batch["image"].shape == (4, 1, 256, 256) and batch["mask"].shape == (4, 256, 256)
    assert set(torch.unique(batch["mask"]).tolist()) <= {0, 1}
    assert val[0]["image"].shape == (1, 512, 512)
    freqs = dataset_class_frequencies(val)
    assert 0.1 < freqs[1] < 0.35  # membranes are ~22% of pixels


def test_camvid_val_pads_to_divisible_size_with_void():
    root = _need("camvid")
    aug = {"val": [{"name": "PadIfNeeded", "min_height": None, "min_width": None,
                    "pad_height_divisor": 32, "pad_width_divisor": 32}]}  # fmt: skip
    val = build_dataset("folder", split="val", root=root, augment=aug, **CAMVID)
    assert len(val) == 101 and len(val.class_names) == 11
    s = val[0]
    assert s["image"].shape == (3, 384, 480) and s["mask"].shape == (384, 480)
    assert int(s["mask"].max()) == 255


def test_real_data_sets_check_clean():
    root = _need("isbi_em")
    assert check_dataset("folder", splits=("train", "val"), root=root, **ISBI) == []
