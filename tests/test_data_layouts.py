"""VOC, CamVid (SegNet) and Cityscapes layouts from tiny fixtures shaped like the real ones."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segtrain.data import build_dataset
from segtrain.data.layouts import CAMVID_CLASSES, CITYSCAPES_CLASSES, VOC_CLASSES
from tests._data_fixtures import write_image


def _kw(root, num_classes, names):
    return dict(mode="multiclass", num_classes=num_classes, class_names=list(names), ignore_index=255,
                in_channels=3, root=root)  # fmt: skip


def test_voc_layout_reads_palette_masks_and_split_lists(tmp_path):
    for i, sample_id in enumerate(["2007_000032", "2007_000039", "2007_000063"]):
        write_image(tmp_path / "JPEGImages" / f"{sample_id}.jpg", np.full((6, 8, 3), 40 * i, np.uint8))
        mask = Image.fromarray(np.array([[0, 15] * 4] * 5 + [[255] * 8], np.uint8), mode="P")
        mask.putpalette([0, 0, 0] * 15 + [192, 128, 128] + [224, 224, 192] * 240)
        (tmp_path / "SegmentationClass").mkdir(exist_ok=True)
        mask.save(tmp_path / "SegmentationClass" / f"{sample_id}.png")
    sets = tmp_path / "ImageSets/Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("2007_000032\n2007_000039\n")
    (sets / "val.txt").write_text("2007_000063\n")
    train = build_dataset("voc", split="train", **_kw(tmp_path, 21, VOC_CLASSES))
    val = build_dataset("voc", split="val", **_kw(tmp_path, 21, VOC_CLASSES))
    assert train.ids == ["2007_000032", "2007_000039"] and val.ids == ["2007_000063"]
    assert set(np.unique(val[0]["mask"].numpy()).tolist()) == {0, 15, 255}


def test_voc_missing_listed_image_is_named(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "SegmentationClass").mkdir()
    sets = tmp_path / "ImageSets/Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("2007_000032\n")
    write_image(tmp_path / "SegmentationClass/2007_000032.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(
        ValueError, match=r"SegmentationClass/2007_000032\.png has no image: expected .*JPEGImages"
    ):
        build_dataset("voc", split="train", **_kw(tmp_path, 21, VOC_CLASSES))


def test_camvid_segnet_layout_maps_void_11_to_255(tmp_path):
    for split in ("train", "val"):
        write_image(tmp_path / split / "0001TP_006690.png", np.zeros((4, 6, 3), np.uint8))
        write_image(
            tmp_path / f"{split}annot" / "0001TP_006690.png", np.array([[0, 10, 11] * 2] * 4, np.uint8)
        )
    ds = build_dataset("camvid_segnet", split="val", **_kw(tmp_path, 11, CAMVID_CLASSES))
    assert ds[0]["mask"][0].tolist() == [0, 10, 255] * 2
    assert ds.background_index is None  # class 0 is sky: no background class unless the config names one
    kept = build_dataset("camvid_segnet", split="val", background_index=0, **_kw(tmp_path, 11, CAMVID_CLASSES))
    assert kept.background_index == 0


def test_cityscapes_label_ids_become_train_ids(tmp_path):
    label_ids = np.array([[7, 8, 26, 0], [33, 1, 24, 5]], np.uint8)  # road sidewalk car unlabeled ...
    for split in ("train", "val"):
        stem = "aachen_000000_000019"
        write_image(
            tmp_path / f"leftImg8bit/{split}/aachen/{stem}_leftImg8bit.png", np.zeros((2, 4, 3), np.uint8)
        )
        d = tmp_path / f"gtFine/{split}/aachen"
        write_image(d / f"{stem}_gtFine_labelIds.png", label_ids)
        write_image(d / f"{stem}_gtFine_color.png", np.zeros((2, 4, 3), np.uint8))  # other gtFine files
        write_image(d / f"{stem}_gtFine_instanceIds.png", np.zeros((2, 4), np.uint8))
    ds = build_dataset("cityscapes", split="val", **_kw(tmp_path, 19, CITYSCAPES_CLASSES))
    assert ds.ids == ["aachen/aachen_000000_000019"]
    assert ds[0]["mask"].tolist() == [[0, 1, 13, 255], [18, 255, 11, 255]]
    assert ds.background_index is None  # train id 0 is road


def test_missing_layout_root_names_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cityscapes does not exist.*leftImg8bit.*gtFine_labelIds"):
        build_dataset("cityscapes", split="train", **_kw(tmp_path / "cityscapes", 19, CITYSCAPES_CLASSES))
