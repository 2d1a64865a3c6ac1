"""Class frequencies of a split, and the hook class-weighted losses use."""

from __future__ import annotations

import numpy as np
import pytest

from segtrain.data import class_frequencies, dataset_class_frequencies
from segtrain.data.folder import FolderDataset
from tests._data_fixtures import folder_kwargs, write_image


def _two_masks(root):
    write_image(root / "images/train/a.png", np.zeros((2, 2, 3), np.uint8))
    write_image(root / "images/train/b.png", np.zeros((2, 3, 3), np.uint8))
    write_image(root / "masks/train/a.png", np.array([[0, 0], [1, 255]], np.uint8))
    write_image(root / "masks/train/b.png", np.array([[0, 0, 0], [0, 0, 1]], np.uint8))
    (root / "classes.txt").write_text("background\nthing\nother\n")


def test_class_frequencies_counts_pixels_images_and_sizes(tmp_path):
    _two_masks(tmp_path)
    stats = class_frequencies(FolderDataset(**folder_kwargs(tmp_path, split="train")))
    assert stats["pixel_counts"] == [7, 2, 0]
    assert stats["frequencies"] == pytest.approx([7 / 9, 2 / 9, 0])
    assert stats["image_counts"] == [2, 2, 0]
    assert stats["ignored_pixels"] == 1 and stats["num_images"] == 2
    assert stats["sizes"] == {"2x2": 1, "2x3": 1}


def test_class_frequencies_from_mask_paths(tmp_path):
    _two_masks(tmp_path)
    paths = sorted((tmp_path / "masks/train").glob("*.png"))
    stats = class_frequencies(paths, num_classes=3, ignore_index=255)
    assert stats["pixel_counts"] == [7, 2, 0]


def test_dataset_class_frequencies_binary_gives_background_and_foreground(tmp_path):
    _two_masks(tmp_path)
    ds = FolderDataset(**folder_kwargs(tmp_path, split="train", mode="binary", num_classes=1,
                                       foreground_classes=[1]))  # fmt: skip
    assert dataset_class_frequencies(ds) == pytest.approx([7 / 9, 2 / 9])


def test_frequencies_feed_weighted_ce_weights(tmp_path):
    _two_masks(tmp_path)
    freqs = dataset_class_frequencies(FolderDataset(**folder_kwargs(tmp_path, split="train")))
    total = sum(freqs)
    weights = [(total - f) / total for f in freqs]  # docs/losses.md: w_c = (F - f_c) / F
    assert weights[1] > weights[0] and len(weights) == 3
