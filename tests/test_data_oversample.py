"""Foreground oversampling (dataset.oversample_foreground): share, class choice, fallback, padding, seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segtrain.data import build_dataset, build_loader
from segtrain.data.folder import FolderDataset
from segtrain.data.oversample import ForegroundCrop, check_share, choose_window, present_classes
from segtrain.data.transforms import build_transforms
from tests._data_fixtures import folder_kwargs, make_folder, write_image

DRAWS = 4000


def within(count: int, n: int, p: float, sds: float = 4.0) -> bool:
    """``count`` of ``n`` Bernoulli(p) draws is within ``sds`` standard deviations of n p."""
    return abs(count - n * p) <= sds * math.sqrt(n * p * (1 - p))


def contains(mask: np.ndarray, y: int, x: int, top: int, left: int, size: int) -> bool:
    return top <= y < top + size and left <= x < left + size


# ---------------------------------------------------------------------------------------------- the rule
@pytest.mark.parametrize("share", [0.0, 0.33, 0.66, 1.0])
def test_share_of_centred_crops_is_p(share):
    mask = np.zeros((64, 64), np.uint8)
    mask[32, 32] = 1  # one foreground pixel in the middle
    rng = np.random.default_rng(0)
    draws = [choose_window(mask, 16, 16, share, rng) for _ in range(DRAWS)]
    centred = sum(c for _, _, c in draws)
    assert centred == 0 if share == 0 else within(centred, DRAWS, share)
    # a centred crop has the pixel within +-4 (jitter 0.25 x 16) of its centre; a uniform one holds it
    # with probability (16/49)^2 (top and left each uniform over 0..48)
    for top, left, c in draws:
        if c:
            assert 4 <= 32 - top <= 12 and 4 <= 32 - left <= 12
    hits = sum(contains(mask, 32, 32, t, lf, 16) for t, lf, _ in draws)
    assert within(hits, DRAWS, share + (1 - share) * (16 / 49) ** 2)


def test_rare_class_gets_half_of_the_centred_crops_not_its_pixel_share():
    mask = np.zeros((64, 64), np.uint8)
    mask[:40, :40] = 1  # a common class: 1600 pixels
    mask[60, 60] = 2  # a rare one: 1 pixel; class 3 is absent
    rng = np.random.default_rng(1)
    draws = [choose_window(mask, 8, 8, 1.0, rng) for _ in range(DRAWS)]
    # only a crop centred on class 2 can hold (60, 60): class-1 crops end before row 40 + 4 + 2
    rare = sum(contains(mask, 60, 60, t, lf, 8) for t, lf, _ in draws)
    assert within(rare, DRAWS, 0.5)
    assert present_classes(mask, 255).tolist() == [1, 2]


def test_multilabel_channels_are_the_classes():
    mask = np.zeros((64, 64, 3), np.uint8)
    mask[:40, :40, 0] = 1
    mask[:40, :40, 1] = 1  # overlaps channel 0
    mask[60, 60, 1] = 1
    # channel 2 is empty: never chosen
    assert present_classes(mask, None).tolist() == [0, 1]
    rng = np.random.default_rng(2)
    draws = [choose_window(mask, 8, 8, 1.0, rng) for _ in range(DRAWS)]
    # channel 1 is drawn half the time, and (60, 60) is 1 of its 1601 pixels
    rare = sum(contains(mask, 60, 60, t, lf, 8) for t, lf, _ in draws)
    assert within(rare, DRAWS, 0.5 / 1601, sds=5)
    assert all(c for _, _, c in draws)


def test_binary_ignore_index_is_not_foreground():
    mask = np.full((64, 64), 255, np.uint8)  # mostly void
    mask[:, :8] = 0
    mask[50, 3] = 1
    assert present_classes(mask, 255).tolist() == [1]
    rng = np.random.default_rng(3)
    assert all(contains(mask, 50, 3, *choose_window(mask, 8, 8, 1.0, rng, ignore_index=255)[:2], 8) for _ in range(500))


def test_background_index_names_the_class_that_is_not_foreground():
    # class 0 covers the left half, class 1 one pixel at the far right: with background 0 every centred crop
    # holds that pixel; with no background class (CamVid's sky, Cityscapes' road) class 0 gets half of them
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    mask[10, 60] = 1
    assert present_classes(mask, 255).tolist() == [1]
    assert present_classes(mask, 255, background=None).tolist() == [0, 1]
    assert present_classes(mask, 255, background=1).tolist() == [0]
    rng = np.random.default_rng(6)
    draws = [choose_window(mask, 8, 8, 1.0, rng, ignore_index=255, background=None) for _ in range(DRAWS)]
    assert all(c for _, _, c in draws)
    # a crop centred on class 0 (columns 0..31) starts at column <= 31 - 4 + 2; one on (10, 60) at >= 54
    on_class_0 = sum(lf <= 29 for _, lf, _ in draws)
    assert within(on_class_0, DRAWS, 0.5) and all(lf <= 29 or lf >= 54 for _, lf, _ in draws)
    rng = np.random.default_rng(6)
    assert all(contains(mask, 10, 60, *choose_window(mask, 8, 8, 1.0, rng, 255)[:2], 8) for _ in range(500))


def test_image_of_the_background_class_only_has_foreground_without_one():
    mask = np.zeros((20, 20), np.uint8)  # class 0 only
    rng = np.random.default_rng(7)
    assert not any(choose_window(mask, 8, 8, 1.0, rng)[2] for _ in range(200))
    assert all(choose_window(mask, 8, 8, 1.0, rng, background=None)[2] for _ in range(200))


def test_image_without_foreground_gets_a_uniform_crop():
    # by definition: there is no foreground pixel to centre on
    mask = np.zeros((20, 20), np.uint8)
    mask[5, 5] = 255
    rng = np.random.default_rng(4)
    draws = [choose_window(mask, 8, 8, 1.0, rng, ignore_index=255) for _ in range(DRAWS)]
    assert not any(c for _, _, c in draws)
    tops = np.bincount([t for t, _, _ in draws], minlength=13)
    assert len(tops) == 13 and tops.min() > 0.6 * DRAWS / 13  # every start 0..12, about evenly


def test_centred_crop_stays_inside_an_image_at_least_the_crop_size():
    mask = np.zeros((32, 32), np.uint8)
    mask[0, 31] = 1  # a corner pixel
    rng = np.random.default_rng(5)
    for _ in range(200):
        top, left, centred = choose_window(mask, 8, 8, 1.0, rng)
        assert centred and (top, left) == (0, 24)


def test_crop_of_a_smaller_image_is_padded_with_ignore_index(tmp_path):
    make_folder(tmp_path, splits=("train",), n=2)  # 24 x 32 images, classes 0..2
    aug = {"train": [{"name": "RandomCrop", "height": 40, "width": 40, "pad_if_needed": True}]}
    ds = FolderDataset(**folder_kwargs(tmp_path, split="train", augment=aug, oversample_foreground=1.0))
    torch.manual_seed(0)
    for i in range(len(ds)):
        s = ds[i]
        m = s["mask"]
        assert m.shape == (40, 40) and s["image"].shape == (3, 40, 40)
        assert (m == 255).sum() == 40 * 40 - 24 * 32  # the padding, and only the padding, is void
        inside = m != 255
        assert inside.any(0).sum() == 32 and inside.any(1).sum() == 24


# ------------------------------------------------------------------------------------ the pipeline
def test_random_crop_is_replaced_only_when_the_share_is_positive():
    spec = [{"name": "PadIfNeeded", "min_height": 8, "min_width": 8}, {"name": "RandomCrop", "height": 8, "width": 8}]
    names = [type(t).__name__ for t in build_transforms(spec, mask_fill=255, oversample_foreground=0.0).transforms]
    assert names == ["PadIfNeeded", "RandomCrop"]
    steered = build_transforms(spec, mask_fill=255, oversample_foreground=0.5, ignore_index=255).transforms
    assert [type(t).__name__ for t in steered] == ["PadIfNeeded", "ForegroundCrop"]
    crop = steered[1]
    assert (crop.height, crop.width, crop.share, crop.ignore_index, crop.fill_mask) == (8, 8, 0.5, 255, 255)


def test_pipeline_without_one_random_crop_is_refused():
    with pytest.raises(ValueError, match=r"dataset.oversample_foreground=0.33 steers the RandomCrop.*HorizontalFlip"):
        build_transforms([{"name": "HorizontalFlip"}], oversample_foreground=0.33)
    two = [{"name": "RandomCrop", "height": 4, "width": 4}] * 2
    with pytest.raises(ValueError, match="exactly one.*it has 2"):
        build_transforms(two, oversample_foreground=0.33)


def test_only_the_train_split_is_oversampled(tmp_path):
    make_folder(tmp_path, splits=("train", "val"), n=1)
    aug = {"train": [{"name": "RandomCrop", "height": 8, "width": 8}], "val": []}  # val has no crop: fine
    kw = folder_kwargs(tmp_path, augment=aug, oversample_foreground=0.33)
    assert isinstance(FolderDataset(**kw, split="train").transform.transforms[0], ForegroundCrop)
    assert FolderDataset(**kw, split="val").transform.transforms == []


@pytest.mark.parametrize("bad", [-0.1, 1.5, "abc", True, None, float("nan")])
def test_bad_share_names_the_key(tmp_path, bad):
    with pytest.raises(ValueError, match=r"dataset.oversample_foreground=.*number in \[0, 1\]"):
        check_share(bad)
    make_folder(tmp_path, splits=("val",), n=1)
    with pytest.raises(ValueError, match="dataset.oversample_foreground"):
        FolderDataset(**folder_kwargs(tmp_path, split="val", oversample_foreground=bad))
    with pytest.raises(ValueError, match="dataset.oversample_foreground"):
        build_dataset("shapes", split="val", crop_size=32, oversample_foreground=bad)


def test_folder_data_set_steers_its_crop_by_background_index(tmp_path):
    make_folder(tmp_path, splits=("train",), n=1)
    aug = {"train": [{"name": "RandomCrop", "height": 8, "width": 8}]}
    kw = folder_kwargs(tmp_path, split="train", augment=aug, oversample_foreground=0.5)
    assert FolderDataset(**kw).transform.transforms[0].background == 0  # the key left out: as before it
    ds = FolderDataset(**kw, background_index=None)
    assert ds.background_index is None and ds.transform.transforms[0].background is None
    assert FolderDataset(**kw, background_index=2).transform.transforms[0].background == 2
    # binary targets are 0/1 whatever the key says: 0 stays the background of the crop
    binary = {**kw, "mode": "binary", "num_classes": 1, "class_names": ["dog"], "foreground_classes": ["dog"]}
    assert FolderDataset(**binary, background_index=None).transform.transforms[0].background == 0


@pytest.mark.parametrize("bad", [3, 99, -1, "sky", "0", True, 1.0])
def test_bad_background_index_names_the_key(tmp_path, bad):
    make_folder(tmp_path, splits=("val",), n=1)
    with pytest.raises(ValueError, match=r"dataset.background_index=.*class index in 0..2.*or null"):
        FolderDataset(**folder_kwargs(tmp_path, split="val", background_index=bad))
    with pytest.raises(ValueError, match=r"dataset.background_index=.*class index in 0..3"):
        build_dataset("shapes", split="val", background_index=bad if bad != 3 else 4)


def test_shapes_without_a_background_class_centres_crops_on_the_background_too():
    kw = dict(length=100, image_size=64, foreground_fraction=0.02, crop_size=16, oversample_foreground=1.0)
    torch.manual_seed(0)
    fg = build_dataset("shapes", split="train", **kw)
    every = build_dataset("shapes", split="train", background_index=None, **kw)
    # background 0: every crop holds a shape; no background class: about half are centred on class 0
    assert all(bool((fg[i]["mask"] > 0).any()) for i in range(100))
    all_background = sum(not bool((every[i]["mask"] > 0).any()) for i in range(100))
    assert all_background > 10


# ------------------------------------------------------------------------------------ the seeding
def _crop_dataset(tmp_path, share: float | None, flip: bool = True) -> FolderDataset:
    """One 64 x 64 image (a rare 'dog' pixel, a 4 x 4 'cat'), repeated 8 times, cropped to 16 x 16."""
    write_image(tmp_path / "images/train/a.png", (np.arange(64 * 64) % 251).astype(np.uint8).reshape(64, 64))
    mask = np.zeros((64, 64), np.uint8)
    mask[40:44, 10:14] = 1
    mask[5, 50] = 2
    write_image(tmp_path / "masks/train/a.png", mask)
    (tmp_path / "classes.txt").write_text("background\ncat\ndog\n")
    aug = {"train": [{"name": "RandomCrop", "height": 16, "width": 16}]}
    if flip:
        aug["train"].append({"name": "HorizontalFlip", "p": 0.5})
    kw = folder_kwargs(tmp_path, split="train", in_channels=1, augment=aug)
    ds = FolderDataset(**kw) if share is None else FolderDataset(**kw, oversample_foreground=share)
    ds.samples = ds.samples * 8
    return ds


def test_share_zero_is_todays_pipeline_and_draws_nothing_from_torch(tmp_path):
    ds0, today = _crop_dataset(tmp_path, 0.0), _crop_dataset(tmp_path, None)  # None: the key left out
    assert [type(t).__name__ for t in ds0.transform.transforms] == ["RandomCrop", "HorizontalFlip"]
    before = torch.get_rng_state()
    ds0[0]
    assert torch.equal(torch.get_rng_state(), before)  # no randomness drawn beyond the pipeline's own
    a = [b["mask"] for b in build_loader(ds0, batch_size=2, num_workers=2, seed=7, shuffle=True)]
    b = [b["mask"] for b in build_loader(today, batch_size=2, num_workers=2, seed=7, shuffle=True)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_oversampled_crops_are_deterministic_per_seed_and_do_not_depend_on_the_workers(tmp_path):
    ds = _crop_dataset(tmp_path, 0.5)

    def masks(seed, workers):
        return [b["mask"] for b in build_loader(ds, batch_size=1, num_workers=workers, shuffle=False, seed=seed)]

    a, again, other = masks(3, 2), masks(3, 0), masks(4, 2)
    assert all(torch.equal(x, y) for x, y in zip(a, again, strict=True))
    assert any(not torch.equal(x, y) for x, y in zip(a, other, strict=True))
    assert any(not torch.equal(a[0], x) for x in a[1:])  # the same image, other sample seeds


def test_same_sample_seed_gives_the_same_crop_window_and_draws_nothing_from_torch(tmp_path):
    ds = _crop_dataset(tmp_path, 0.5)  # one image 8 times: equal crops mean equal windows (and flips)
    crop = ds.transform.transforms[0]
    before = torch.get_rng_state()
    for seed in range(20):
        first = ds[(0, seed)]
        centred = crop.last_centred
        again = ds[(5, seed)]
        assert crop.last_centred == centred
        assert torch.equal(first["image"], again["image"]) and torch.equal(first["mask"], again["mask"])
    assert torch.equal(torch.get_rng_state(), before)  # the crop draws from the pipeline's generator only
    windows = {tuple(ds[(0, seed)]["image"][0, 0, :2].tolist()) for seed in range(20)}
    assert len(windows) > 5  # other seeds, other windows


# ---------------------------------------------------------------------------------------------- shapes
def test_shapes_crops_only_the_train_split_and_centres_a_share_on_shapes():
    kw = dict(length=200, image_size=64, foreground_fraction=0.02, crop_size=16)
    torch.manual_seed(0)
    train0 = build_dataset("shapes", split="train", **kw)
    train1 = build_dataset("shapes", split="train", oversample_foreground=1.0, **kw)
    assert train0[0]["image"].shape == (3, 16, 16) and train0[0]["mask"].shape == (16, 16)
    assert build_dataset("shapes", split="val", oversample_foreground=1.0, **kw)[0]["mask"].shape == (64, 64)
    with_fg0 = sum(bool((train0[i]["mask"] > 0).any()) for i in range(200))
    with_fg1 = sum(bool((train1[i]["mask"] > 0).any()) for i in range(200))
    assert with_fg1 == 200 and with_fg0 < 150


@pytest.mark.parametrize("mode,classes", [("binary", 1), ("multilabel", 3)])
def test_shapes_binary_and_multilabel_crops(mode, classes):
    ds = build_dataset(
        "shapes", split="train", mode=mode, num_classes=classes, length=50, image_size=64, foreground_fraction=0.02,
        crop_size=16, oversample_foreground=1.0,
    )  # fmt: skip
    torch.manual_seed(0)
    masks = [ds[i]["mask"] for i in range(50)]
    shape = (16, 16) if mode == "binary" else (3, 16, 16)
    assert all(m.shape == shape and m.any() for m in masks)


def test_shapes_without_crops_cannot_oversample_and_stay_as_today():
    with pytest.raises(ValueError, match=r"dataset.oversample_foreground=0.33.*whole generated images.*crop_size"):
        build_dataset("shapes", split="train", oversample_foreground=0.33)
    with pytest.raises(ValueError, match=r"dataset.crop_size=100.*1..image_size \(64\)"):
        build_dataset("shapes", split="train", crop_size=100)
    before = torch.get_rng_state()
    a = build_dataset("shapes", split="train", oversample_foreground=0)[3]
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a["image"], build_dataset("shapes", split="train")[3]["image"])


# ---------------------------------------------------------------------------------------------- config
def test_share_is_sweepable_from_the_command_line():
    from omegaconf import OmegaConf
    from test_sweeps import compose, expand_sweep

    from segtrain.build import build_split

    jobs = expand_sweep(["dataset.crop_size=32", "dataset.oversample_foreground=0,0.33,0.66"])
    assert [j["dataset.oversample_foreground"] for j in jobs] == ["0", "0.33", "0.66"]
    for job in jobs:
        cfg = compose(["dataset.crop_size=32", f"dataset.oversample_foreground={job['dataset.oversample_foreground']}"])
        ds = build_split(OmegaConf.to_container(cfg.dataset, resolve=True), "train")
        assert ds.oversample_foreground == float(job["dataset.oversample_foreground"])
