"""Config-declared albumentations pipelines: joint, mask-safe, validated, seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from segtrain.data.transforms import build_transforms, pipeline_for_split


def test_empty_pipeline_is_identity():
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = build_transforms(None)(image=img, mask=img)
    assert np.array_equal(out["image"], img) and np.array_equal(out["mask"], img)


def test_unknown_transform_suggests_close_names():
    with pytest.raises(ValueError, match=r"unknown albumentations transform 'RandomCorp'.*RandomCrop"):
        build_transforms([{"name": "RandomCorp", "height": 4, "width": 4}])


def test_unknown_argument_lists_accepted_ones():
    with pytest.raises(
        ValueError, match=r"HorizontalFlip\) got unknown argument\(s\) \['prob'\].*accepts: p"
    ):
        build_transforms([{"name": "HorizontalFlip", "prob": 0.5}])


def test_non_nearest_mask_interpolation_is_refused():
    with pytest.raises(ValueError, match="nearest-neighbour"):
        build_transforms([{"name": "Resize", "height": 4, "width": 4, "mask_interpolation": 1}])


def test_normalize_in_pipeline_is_refused():
    with pytest.raises(ValueError, match="dataset.normalize"):
        build_transforms([{"name": "Normalize"}])


def test_resize_and_rotation_keep_mask_values_in_the_label_set():
    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 3, 5, 255], np.uint8), size=(37, 41))
    img = rng.integers(0, 256, (37, 41, 3), dtype=np.uint8)
    t = build_transforms(
        [
            {"name": "Resize", "height": 64, "width": 50},
            {"name": "Affine", "rotate": [-30, 30], "scale": [0.7, 1.3], "p": 1.0},
            {"name": "RandomResizedCrop", "size": [32, 32]},
        ],
        mask_fill=255,
        seed=1,
    )
    out = t(image=img, mask=mask)
    assert set(np.unique(out["mask"]).tolist()) <= {0, 3, 5, 255}
    assert out["image"].shape == (32, 32, 3)


def test_padding_uses_mask_fill_unless_given():
    img, mask = np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8)
    out = build_transforms([{"name": "PadIfNeeded", "min_height": 4, "min_width": 4}], mask_fill=255)(
        image=img, mask=mask
    )
    assert out["mask"][0, 0] == 255
    spec = [{"name": "PadIfNeeded", "min_height": 4, "min_width": 4, "fill_mask": 7}]
    assert build_transforms(spec, mask_fill=255)(image=img, mask=mask)["mask"][0, 0] == 7


def test_same_seed_same_augmentation():
    img = np.arange(100, dtype=np.uint8).reshape(10, 10)
    spec = [{"name": "RandomCrop", "height": 5, "width": 5}]
    a = build_transforms(spec, seed=4)(image=img, mask=img)["image"]
    b = build_transforms(spec, seed=4)(image=img, mask=img)["image"]
    assert np.array_equal(a, b)


def test_pipeline_for_split_falls_back_from_test_to_val():
    aug = {"train": [{"name": "HorizontalFlip"}], "val": [{"name": "CenterCrop", "height": 2, "width": 2}]}
    assert pipeline_for_split(aug, "test") == aug["val"]
    assert pipeline_for_split(None, "train") == []
    with pytest.raises(ValueError, match="unknown split key"):
        pipeline_for_split({"training": []}, "train")


@pytest.mark.parametrize(
    "config", sorted(p.name for p in (Path(__file__).resolve().parents[1] / "configs/dataset").glob("*.yaml"))
)
def test_every_dataset_config_pipeline_builds(config):
    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/dataset" / config).read_text())
    for split in ("train", "val", "test"):
        build_transforms(pipeline_for_split(cfg.get("augment"), split), mask_fill=255)
