"""The folder data set: layouts, sample contract, bit depths, palettes, binary/multilabel mappings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from segtrain.data import build_dataset, build_loader
from segtrain.data.folder import FolderDataset
from tests._data_fixtures import folder_kwargs, make_folder, make_pair, write_image


def test_sample_contract_multiclass(tmp_path):
    make_folder(tmp_path)
    ds = build_dataset("folder", split="train", **folder_kwargs(tmp_path))
    assert len(ds) == 3 and ds.class_names == ["background", "cat", "dog"]
    s = ds[0]
    assert s["image"].dtype == torch.float32 and s["image"].shape == (3, 24, 32)
    assert s["mask"].dtype == torch.int64 and s["mask"].shape == (24, 32)
    assert s["id"] == "train_00"
    stored = np.asarray(Image.open(tmp_path / "masks/train/train_00.png"))
    assert np.array_equal(s["mask"].numpy(), stored)


def test_normalize_scales_by_bit_depth(tmp_path):
    img8 = np.full((8, 8), 255, np.uint8)
    img16 = np.full((8, 8), 65535, np.uint16)
    write_image(tmp_path / "images/train/a.png", img8)
    write_image(tmp_path / "images/train/b.tif", img16)
    for i in "ab":
        write_image(tmp_path / f"masks/train/{i}.png", np.zeros((8, 8), np.uint8))
    ds = FolderDataset(**folder_kwargs(tmp_path, split="train", in_channels=1, num_classes=2,
                                       normalize={"mean": [0.5], "std": [0.25]}))  # fmt: skip
    for i in range(2):
        assert torch.allclose(ds[i]["image"], torch.full((1, 8, 8), 2.0))


def test_gray_image_repeated_to_three_channels(tmp_path):
    make_folder(tmp_path, channels=1)
    s = FolderDataset(**folder_kwargs(tmp_path, split="val"))[0]
    assert s["image"].shape == (3, 24, 32)
    assert torch.equal(s["image"][0], s["image"][2])


def test_jpeg_images_and_rgba_are_read(tmp_path):
    make_folder(tmp_path, ext=".jpg", splits=("train",))
    make_pair(tmp_path, "train", "rgba", channels=4)
    ds = FolderDataset(**folder_kwargs(tmp_path, split="train"))
    assert len(ds) == 4 and all(ds[i]["image"].shape[0] == 3 for i in range(4))


def test_flat_layout_with_split_files(tmp_path):
    for i in range(4):
        make_pair(tmp_path, None, f"s{i}")
    (tmp_path / "train.txt").write_text("s0\ns1\ns2\n")
    (tmp_path / "val.txt").write_text("s3\n")
    kw = folder_kwargs(tmp_path, num_classes=3, images_dir="images", masks_dir="masks",
                       split_files={"train": "train.txt", "val": "val.txt"})  # fmt: skip
    assert FolderDataset(split="train", **kw).ids == ["s0", "s1", "s2"]
    assert FolderDataset(split="val", **kw).ids == ["s3"]


def test_flat_layout_seeded_split_is_disjoint_and_reproducible(tmp_path):
    for i in range(10):
        make_pair(tmp_path, None, f"s{i}")
    kw = folder_kwargs(tmp_path, images_dir="images", masks_dir="masks", val_fraction=0.3, split_seed=1)
    train, val = FolderDataset(split="train", **kw), FolderDataset(split="val", **kw)
    assert len(val) == 3 and len(train) == 7 and not set(train.ids) & set(val.ids)
    assert FolderDataset(split="val", **kw).ids == val.ids
    with pytest.raises(ValueError, match="split_files.test"):
        FolderDataset(split="test", **kw)


def test_palette_masks(tmp_path):
    colours = [[0, 0, 0], [255, 0, 0], [0, 255, 0]]
    idx = np.array([[0, 1, 2, 2], [1, 1, 0, 0]], np.uint8)
    rgb = np.asarray(colours, np.uint8)[idx]
    rgb[0, 0] = [255, 255, 255]
    write_image(tmp_path / "images/train/a.png", np.zeros((2, 4, 3), np.uint8))
    write_image(tmp_path / "masks/train/a.png", rgb)
    ds = FolderDataset(
        **folder_kwargs(tmp_path, split="train", palette=colours, void_colors=[[255, 255, 255]])
    )
    expected = idx.astype(np.int64)
    expected[0, 0] = 255
    assert np.array_equal(ds[0]["mask"].numpy(), expected)


def test_palette_png_masks_give_their_indices(tmp_path):
    idx = np.array([[0, 1], [2, 255]], np.uint8)
    mask = Image.fromarray(idx, mode="P")
    mask.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [224, 224, 192] * 253)
    (tmp_path / "masks/train").mkdir(parents=True)
    mask.save(tmp_path / "masks/train/a.png")
    write_image(tmp_path / "images/train/a.png", np.zeros((2, 2, 3), np.uint8))
    ds = FolderDataset(**folder_kwargs(tmp_path, split="train"))
    assert ds[0]["mask"].tolist() == [[0, 1], [2, 255]]


def test_binary_from_multiclass_keeps_ignore(tmp_path):
    write_image(tmp_path / "images/train/a.png", np.zeros((2, 3, 3), np.uint8))
    write_image(tmp_path / "masks/train/a.png", np.array([[0, 1, 2], [2, 255, 1]], np.uint8))
    (tmp_path / "classes.txt").write_text("background\ncat\ndog\n")
    ds = FolderDataset(**folder_kwargs(tmp_path, split="train", mode="binary", num_classes=1,
                                       foreground_classes=["dog"]))  # fmt: skip
    assert ds.class_names == ["dog"]
    assert ds[0]["mask"].tolist() == [[0, 0, 1], [1, 255, 0]]


def test_multilabel_channels_from_class_lists(tmp_path):
    write_image(tmp_path / "images/train/a.png", np.zeros((1, 3, 3), np.uint8))
    write_image(tmp_path / "masks/train/a.png", np.array([[0, 1, 2]], np.uint8))
    (tmp_path / "classes.txt").write_text("background\ncat\ndog\n")
    ds = FolderDataset(**folder_kwargs(tmp_path, split="train", mode="multilabel", num_classes=2,
                                       ignore_index=None, labels=[["cat", "dog"], [2]]))  # fmt: skip
    m = ds[0]["mask"]
    assert m.dtype == torch.float32 and m.tolist() == [[[0, 1, 1]], [[0, 0, 1]]]
    assert ds.class_names == ["cat+dog", "dog"]


def test_binary_masks_stored_as_0_255_need_mask_scale(tmp_path):
    write_image(tmp_path / "images/train/a.png", np.zeros((1, 2), np.uint8))
    write_image(tmp_path / "masks/train/a.png", np.array([[0, 255]], np.uint8))
    kw = folder_kwargs(
        tmp_path, split="train", mode="binary", num_classes=1, ignore_index=None, in_channels=1
    )
    with pytest.raises(ValueError, match="mask_scale=255"):
        FolderDataset(**kw)[0]
    assert FolderDataset(**kw, mask_scale=255)[0]["mask"].tolist() == [[0, 1]]
    assert FolderDataset(**kw, binary_threshold=127)[0]["mask"].tolist() == [[0, 1]]


def test_padding_fills_mask_with_ignore_index(tmp_path):
    make_folder(tmp_path, splits=("val",))
    aug = {"val": [{"name": "PadIfNeeded", "min_height": 32, "min_width": 32}]}
    s = FolderDataset(**folder_kwargs(tmp_path, split="val", augment=aug))[0]
    assert s["mask"].shape == (32, 32) and (s["mask"][:4] == 255).all()


def test_loader_collates_and_workers_draw_different_crops(tmp_path):
    make_folder(tmp_path, splits=("train",), n=4)
    aug = {"train": [{"name": "RandomCrop", "height": 8, "width": 8}]}
    ds = FolderDataset(**folder_kwargs(tmp_path, split="train", augment=aug))
    # the same image twice: two workers must not crop it identically
    ds.samples = [ds.samples[0]] * 8
    loader = build_loader(ds, batch_size=1, num_workers=2, shuffle=False, seed=3)
    crops = [b["image"] for b in loader]
    assert any(not torch.equal(crops[0], c) for c in crops[1:2])
    again = [b["image"] for b in build_loader(ds, batch_size=1, num_workers=2, shuffle=False, seed=3)]
    assert all(torch.equal(a, b) for a, b in zip(crops, again, strict=True))


def test_missing_root_says_where_and_which_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*images/<split>.*SEGTRAIN_DATA"):
        FolderDataset(**folder_kwargs(tmp_path / "nope", split="train"))


class _OpenCVThreads(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        import cv2

        return cv2.getNumThreads()


def test_loader_workers_run_opencv_single_threaded():
    assert [int(v) for v in build_loader(_OpenCVThreads(), batch_size=1, num_workers=2)] == [1, 1]


@pytest.mark.parametrize("channels", [1, 3])
def test_uint8_normalisation_table_gives_the_bits_of_the_formula(tmp_path, channels):
    rng = np.random.default_rng(0)
    shape = (16, 16) if channels == 1 else (16, 16, 3)
    image = rng.permutation(np.arange(256 * channels, dtype=np.int64) % 256).astype(np.uint8).reshape(shape)
    write_image(tmp_path / "images/train/a.png", image)
    write_image(tmp_path / "masks/train/a.png", np.zeros((16, 16), np.uint8))
    norm = {"mean": [0.485, 0.456, 0.406][:channels], "std": [0.229, 0.224, 0.225][:channels]}
    ds = FolderDataset(**folder_kwargs(tmp_path, split="train", in_channels=channels, normalize=norm))
    raw = image.reshape(16, 16, channels).astype(np.float32)
    expected = np.ascontiguousarray(((raw / 255.0 - ds.mean) / ds.std).transpose(2, 0, 1))
    got = ds[0]["image"]
    assert got.dtype == torch.float32 and got.is_contiguous() and got.shape == (channels, 16, 16)
    assert torch.equal(got, torch.from_numpy(expected))
