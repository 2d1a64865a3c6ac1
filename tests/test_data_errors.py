"""Bad data gets an error that names the file and says what was expected; check_dataset lists them all."""

from __future__ import annotations

import numpy as np
import pytest

from segtrain.data import check_dataset
from segtrain.data.folder import FolderDataset
from tests._data_fixtures import folder_kwargs, make_folder, make_pair, write_image


def _train(root, **kw):
    return FolderDataset(**folder_kwargs(root, split="train", **kw))


def test_image_and_mask_of_different_sizes(tmp_path):
    make_folder(tmp_path, splits=("train",), n=1)
    write_image(tmp_path / "masks/train/train_00.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=r"train_00\.png.*24x32.*10x10.*same size"):
        _train(tmp_path)[0]


def test_mask_value_out_of_range(tmp_path):
    make_folder(tmp_path, splits=("train",), n=1)
    write_image(tmp_path / "masks/train/train_00.png", np.array([[0, 1], [7, 255]], np.uint8))
    with pytest.raises(ValueError, match=r"masks/train/train_00\.png.*\[7\].*0\.\.2.*ignore_index=255"):
        _train(tmp_path).load_mask(0)


def test_image_without_mask(tmp_path):
    make_folder(tmp_path, splits=("train",), n=2)
    (tmp_path / "masks/train/train_01.png").unlink()
    with pytest.raises(
        ValueError, match=r"images/train/train_01\.png has no mask: expected .*masks/train/train_01"
    ):
        _train(tmp_path)


def test_mask_without_image(tmp_path):
    make_folder(tmp_path, splits=("train",), n=2)
    (tmp_path / "images/train/train_01.png").unlink()
    with pytest.raises(
        ValueError, match=r"masks/train/train_01\.png has no image: expected .*images/train/train_01"
    ):
        _train(tmp_path)


@pytest.mark.parametrize("which", ["images", "masks"])
def test_truncated_file(tmp_path, which):
    make_folder(tmp_path, splits=("train",), n=1, size=(64, 64))
    path = tmp_path / which / "train/train_00.png"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=rf"Cannot read .*{which}/train/train_00\.png.*truncated"):
        _train(tmp_path)[0]


def test_not_an_image(tmp_path):
    make_folder(tmp_path, splits=("train",), n=1)
    (tmp_path / "images/train/train_00.png").write_text("hello")
    with pytest.raises(ValueError, match=r"Cannot read image file .*train_00\.png.*Expected a complete PNG"):
        _train(tmp_path)[0]


def test_empty_split(tmp_path):
    make_folder(tmp_path, splits=("train",), n=1)
    (tmp_path / "images/val").mkdir()
    (tmp_path / "masks/val").mkdir()
    with pytest.raises(ValueError, match=r"Split 'val' .* is empty: no image/mask pairs in .*images/val"):
        FolderDataset(**folder_kwargs(tmp_path, split="val"))


def test_missing_split_folder_lists_the_ones_there(tmp_path):
    make_folder(tmp_path, splits=("train",), n=1)
    with pytest.raises(
        FileNotFoundError, match=r"images/test for split 'test' does not exist. It has: train"
    ):
        FolderDataset(**folder_kwargs(tmp_path, split="test"))


def test_three_channel_mask_without_palette(tmp_path):
    make_folder(tmp_path, splits=("train",), n=1)
    write_image(tmp_path / "masks/train/train_00.png", np.zeros((24, 32, 3), np.uint8))
    with pytest.raises(ValueError, match=r"train_00\.png has 3 channels.*expected a single-channel.*palette"):
        _train(tmp_path)[0]


def test_colour_not_in_palette(tmp_path):
    make_folder(tmp_path, splits=("train",), n=1)
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[0, 0] = [9, 9, 9]
    write_image(tmp_path / "masks/train/train_00.png", rgb)
    with pytest.raises(ValueError, match=r"train_00\.png has 1 pixels .*\[9, 9, 9\].*palette"):
        _train(tmp_path, palette=[[0, 0, 0], [1, 1, 1], [2, 2, 2]])[0]


def test_num_classes_disagrees_with_classes_txt(tmp_path):
    make_folder(tmp_path, splits=("train",), n=1)
    with pytest.raises(
        ValueError, match=r"num_classes=5 but .*classes\.txt lists 3 classes \(background, cat, dog\)"
    ):
        _train(tmp_path, num_classes=5)


def test_colour_image_where_one_channel_expected(tmp_path):
    make_folder(tmp_path, splits=("train",), n=1)
    with pytest.raises(ValueError, match=r"train_00\.png has 3 channels but dataset.in_channels=1"):
        _train(tmp_path, in_channels=1)[0]


def test_duplicate_ids(tmp_path):
    make_folder(tmp_path, splits=("train",), n=1)
    make_pair(tmp_path, "train", "train_00", ext=".jpg")
    with pytest.raises(ValueError, match=r"train_00\.(jpg|png) and .*train_00\.(jpg|png) have the same id"):
        _train(tmp_path)


def test_check_dataset_lists_every_problem(tmp_path):
    make_folder(tmp_path, n=4)
    (tmp_path / "masks/train/train_01.png").unlink()  # image without mask
    (tmp_path / "images/val/val_00.png").unlink()  # mask without image
    write_image(tmp_path / "masks/train/train_02.png", np.full((24, 32), 9, np.uint8))  # bad values
    write_image(tmp_path / "masks/train/train_03.png", np.zeros((5, 5), np.uint8))  # wrong size
    bad = tmp_path / "images/val/val_01.png"
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    problems = check_dataset("folder", splits=("train", "val"), **folder_kwargs(tmp_path))
    text = "\n".join(problems)
    assert len(problems) == 5, text
    for needle in ("train_01.png has no mask", "val_00.png has no image", "train_02.png has", "5x5",
                   "Cannot read image file"):  # fmt: skip
        assert needle in text


def test_check_dataset_reports_construction_errors(tmp_path):
    make_folder(tmp_path, splits=("train",), n=1)
    problems = check_dataset("folder", splits=("train", "val"), **folder_kwargs(tmp_path))
    assert len(problems) == 1 and problems[0].startswith("[val]") and "does not exist" in problems[0]
    assert check_dataset("folder", splits=("train",), **folder_kwargs(tmp_path)) == []
