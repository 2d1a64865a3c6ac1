"""dataset.cache: decoded images in RAM give the same batches as decoding every time; the choice is logged;
a bad value is an error naming the key."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from segtrain.data import build_loader, cache
from segtrain.data.folder import FolderDataset
from tests._data_fixtures import folder_kwargs, make_folder

# the isbi_em and camvid train pipelines (crop, flips, rotation, brightness/contrast) and camvid's val padding
TRAIN = [
    {"name": "PadIfNeeded", "min_height": 32, "min_width": 40},
    {"name": "RandomCrop", "height": 16, "width": 16},
    {"name": "HorizontalFlip", "p": 0.5},
    {"name": "VerticalFlip", "p": 0.5},
    {"name": "RandomRotate90", "p": 0.5},
    {"name": "RandomBrightnessContrast", "brightness_limit": 0.1, "contrast_limit": 0.1, "p": 0.5},
]
VAL = [
    {"name": "PadIfNeeded", "min_height": None, "min_width": None, "pad_height_divisor": 32, "pad_width_divisor": 32}
]


def _batches(ds: FolderDataset, workers: int) -> list[dict]:
    return list(build_loader(ds, batch_size=3, num_workers=workers, shuffle=True, drop_last=True, seed=5))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("workers", [0, 2])
def test_cached_data_set_gives_bit_identical_batches(tmp_path, channels, workers):
    make_folder(tmp_path, splits=("train", "val"), n=6, channels=channels)
    augment = {"train": TRAIN, "val": VAL}
    for split in ("train", "val"):
        torch.manual_seed(0)
        plain = FolderDataset(**folder_kwargs(tmp_path, split=split, augment=augment, in_channels=channels))
        torch.manual_seed(0)
        cached = FolderDataset(
            **folder_kwargs(tmp_path, split=split, augment=augment, in_channels=channels, cache=True)
        )
        assert plain._cache.items is None and cached._cache.items is not None
        for _ in range(2):  # two epochs: the cached arrays are not changed by the first
            a, b = _batches(plain, workers), _batches(cached, workers)
            assert len(a) == len(b) == 2
            for x, y in zip(a, b, strict=True):
                assert x["id"] == y["id"]
                assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])


def test_cached_arrays_are_read_only_and_equal_a_fresh_decode(tmp_path):
    make_folder(tmp_path, splits=("train",), n=3)
    ds = FolderDataset(**folder_kwargs(tmp_path, split="train", cache=True))
    for i in range(len(ds)):
        image, mask = ds.load_pair(i)
        fresh_image, fresh_mask = ds._decode_pair(i)
        assert np.array_equal(image, fresh_image) and np.array_equal(mask, fresh_mask)
        with pytest.raises(ValueError, match="read-only"):
            image[0, 0, 0] = 1


def test_auto_caches_within_the_budget_and_says_so(tmp_path, caplog, monkeypatch):
    make_folder(tmp_path, splits=("train",), n=3)  # 3 x 24 x 32 x (3 + 1) bytes
    with caplog.at_level(logging.INFO, logger="segtrain"):
        ds = FolderDataset(**folder_kwargs(tmp_path, split="train", cache="auto"))
    assert ds._cache.items is not None
    assert "train: 3 images decoded into RAM" in caplog.text and "dataset.cache=auto, budget" in caplog.text
    monkeypatch.setattr(cache, "available_bytes", lambda: 4 * 3 * 24 * 32 * 4 - 4)  # a quarter: just too small
    with caplog.at_level(logging.INFO, logger="segtrain"):
        ds = FolderDataset(**folder_kwargs(tmp_path, split="train", cache="auto"))
    assert ds._cache.items is None
    assert "train: not cached (dataset.cache=auto): 3 images decode to about" in ds.cache_report
    assert ds.cache_report in caplog.text
    forced = FolderDataset(**folder_kwargs(tmp_path, split="train", cache=True))  # true ignores the budget
    assert forced._cache.items is not None


def test_estimate_is_pixels_times_channels_from_the_headers(tmp_path):
    make_folder(tmp_path, splits=("train",), n=1, channels=1)
    ds = FolderDataset(**folder_kwargs(tmp_path, split="train", in_channels=1))
    pairs = [(s[1], s[2]) for s in ds.samples]
    assert cache.estimate_bytes(pairs, 1, 1) == 24 * 32 * 2


@pytest.mark.parametrize("value", ["yes", 1, None, "True"])
def test_bad_cache_value_names_the_key(tmp_path, value):
    make_folder(tmp_path, splits=("train",), n=1)
    with pytest.raises(ValueError, match=r"dataset.cache=.*expected auto, true or false"):
        FolderDataset(**folder_kwargs(tmp_path, split="train", cache=value))


def test_estimate_counts_16_bit_images_at_two_bytes(tmp_path):
    from tests._data_fixtures import write_image

    write_image(tmp_path / "images/train/a.png", np.full((8, 10), 40000, np.uint16))
    write_image(tmp_path / "masks/train/a.png", np.zeros((8, 10), np.uint8))
    ds = FolderDataset(**folder_kwargs(tmp_path, split="train", in_channels=1, num_classes=2, cache=True))
    assert cache.estimate_bytes([(s[1], s[2]) for s in ds.samples], 1, 1) == 8 * 10 * 3
    assert ds._cache.nbytes == 8 * 10 * 3  # the estimate is the decoded size: uint16 image + uint8 mask
