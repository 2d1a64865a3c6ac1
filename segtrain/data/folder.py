"""The ``folder`` data set: users' own images and masks on disk, read with clear errors.

Layouts (``{split}`` in a directory template is replaced by ``train`` / ``val`` / ``test``)::

    root/images/{split}/<id>.<png|jpg|tif|...>     any common format, grayscale or RGB, 8- or 16-bit
    root/masks/{split}/<id>.png                    single channel, value = class index, ignore_index = void
    root/classes.txt                               optional: one class name per line, in index order

or, with ``images_dir: images`` and ``masks_dir: masks`` (no ``{split}``), one flat folder split by
``split_files: {train: train.txt, val: val.txt}`` (one id per line, relative to root) or by a seeded
random ``val_fraction``. Colour masks are mapped through ``palette`` (one RGB colour per class, plus
``void_colors`` for ignore_index); masks stored as 0/255 need ``mask_scale: 255`` (exact) or
``binary_threshold: 127`` (for lossy files): values are never guessed.

The jobs are split: classes.py resolves the classes, samples.py finds the image/mask pairs, masks.py
decodes masks (palette -> mask_scale / binary_threshold -> label_map -> range check -> foreground_classes
or labels); this module wires them into the data set and reads samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from segtrain.data import io
from segtrain.data.base import DATASETS, SegDataset
from segtrain.data.cache import DecodedCache, check_cache
from segtrain.data.classes import resolve_classes
from segtrain.data.masks import MaskDecoder
from segtrain.data.normalize import normalize_stats
from segtrain.data.oversample import check_share
from segtrain.data.samples import SampleFinder, format_problems
from segtrain.data.transforms import build_transforms, pipeline_for_split, seed_pipeline
from segtrain.modes import MODES, MULTILABEL


@DATASETS.register("folder")
class FolderDataset(SegDataset):
    """Images and masks from folders; see the module docstring for the layouts and mask decoding.

    Keyword arguments beyond :class:`SegDataset`'s (all plain values, as a dataset config gives them):
    root, augment ({train: [...], val: [...]}), normalize ({mean, std} in 0-1 image scale),
    images_dir / masks_dir (templates with ``{split}``), image_suffix / mask_suffix (stem endings that
    are not part of the id), image_extensions / mask_extensions, recursive (ids are relative paths),
    split_files, val_fraction, split_seed, folds / fold / group_pattern (k-fold CV, see samples.py),
    classes_file, source_classes, palette, void_colors, mask_scale, binary_threshold, label_map,
    foreground_classes, labels, collect_problems,
    oversample_foreground (share of training crops centred on a foreground pixel; segtrain.data.oversample),
    background_index (the multiclass background class, not foreground there; None: every class is an object
    class; SegDataset),
    cache (auto | true | false: decoded images and masks held in RAM, segtrain.data.cache).

    ``dataset[(index, seed)]`` reseeds the augmentations from ``seed`` before transforming sample ``index``
    (``takes_sample_seeds``: the loader then hands every sample its seed, segtrain.data.sample_seeds);
    ``dataset[index]`` continues the pipeline's own random stream.
    """

    takes_sample_seeds = True

    LAYOUT = (
        "root/images/<split>/<id>.<png|jpg|tif> and root/masks/<split>/<id>.png (single-channel class "
        "indices), optional root/classes.txt"
    )
    IMAGES_DIR = "images/{split}"
    MASKS_DIR = "masks/{split}"
    IMAGE_SUFFIX = ""
    MASK_SUFFIX = ""
    RECURSIVE = False
    SPLIT_FILES: dict[str, str] = {}
    LABEL_MAP: dict[int, int] = {}

    def __init__(
        self,
        split: str,
        mode: str,
        num_classes: int,
        class_names: Sequence[str] | None,
        ignore_index: int | None,
        in_channels: int,
        root: str | Path,
        augment: Mapping[str, Any] | None = None,
        normalize: Mapping[str, Any] | None = None,
        images_dir: str | None = None,
        masks_dir: str | None = None,
        image_suffix: str | None = None,
        mask_suffix: str | None = None,
        image_extensions: Sequence[str] | None = None,
        mask_extensions: Sequence[str] | None = None,
        recursive: bool | None = None,
        split_files: Mapping[str, str] | None = None,
        val_fraction: float | None = None,
        split_seed: int = 0,
        folds: int | None = None,
        fold: int | None = None,
        group_pattern: str | None = None,
        classes_file: str | None = "classes.txt",
        source_classes: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        void_colors: Sequence[Sequence[int]] | None = None,
        mask_scale: int | None = None,
        binary_threshold: int | None = None,
        label_map: Mapping[int, int] | None = None,
        foreground_classes: Sequence[int | str] | None = None,
        labels: Sequence[Sequence[int | str]] | None = None,
        collect_problems: bool = False,
        oversample_foreground: float = 0.0,
        background_index: int | None = 0,
        cache: str | bool = False,
    ) -> None:
        check_cache(cache)
        if mode not in MODES:
            raise ValueError(f"dataset.mode must be one of {MODES}, got {mode!r}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"Data set root {self.root} does not exist. Expected layout: {self.LAYOUT}. "
                "Set dataset.root, or the data root with the SEGTRAIN_DATA environment variable or "
                "paths.data_dir. "
                "segtrain does not download data sets."
            )
        self.problems: list[str] = []
        self._collect = collect_problems

        classes = resolve_classes(
            self.root, mode, num_classes, class_names, classes_file, source_classes, foreground_classes, labels
        )
        self.num_source_classes = classes.num_source
        self.foreground, self.labels = classes.foreground, classes.labels
        super().__init__(split, mode, num_classes, classes.names, ignore_index, in_channels, background_index)

        if ignore_index is not None and not 0 <= int(ignore_index) <= 255:
            raise ValueError(
                f"dataset.ignore_index={ignore_index}: folder data sets store void as a mask value, so it "
                "must be in 0..255 (255 is usual)."
            )
        if ignore_index is not None and int(ignore_index) < self.num_source_classes:
            raise ValueError(
                f"dataset.ignore_index={ignore_index} is also a class index (the masks have "
                f"{self.num_source_classes} classes, 0..{self.num_source_classes - 1}); use e.g. 255."
            )
        self.masks = MaskDecoder(
            mode,
            self.ignore_index,
            self.num_source_classes,
            self.foreground,
            self.labels,
            palette,
            void_colors,
            mask_scale,
            binary_threshold,
            self.LABEL_MAP if label_map is None else label_map,
        )

        # None means the layout's default (class attributes, overridden by voc / cityscapes / ...).
        self.images_dir = self.IMAGES_DIR if images_dir is None else images_dir
        self.masks_dir = self.MASKS_DIR if masks_dir is None else masks_dir
        finder = SampleFinder(
            root=self.root,
            split=split,
            images_dir=self.images_dir,
            masks_dir=self.masks_dir,
            image_suffix=self.IMAGE_SUFFIX if image_suffix is None else image_suffix,
            mask_suffix=self.MASK_SUFFIX if mask_suffix is None else mask_suffix,
            image_extensions=image_extensions or io.IMAGE_EXTENSIONS,
            mask_extensions=mask_extensions or io.MASK_EXTENSIONS,
            recursive=self.RECURSIVE if recursive is None else bool(recursive),
            split_files=self.SPLIT_FILES if split_files is None else split_files,
            val_fraction=val_fraction,
            split_seed=split_seed,
            layout=self.LAYOUT,
            folds=folds,
            fold=fold,
            group_pattern=group_pattern,
        )
        self.samples: list[tuple[str, Path, Path]] = finder.find()
        self.problems += finder.problems
        if not self.samples:
            self.problems.append(
                f"Split '{split}' of the data set at {self.root} is empty: no image/mask pairs in "
                f"{finder.describe_split()}. Expected layout: {self.LAYOUT}."
            )
        if self.problems and not self._collect:
            raise ValueError(format_problems(f"Data set at {self.root}, split '{split}':", self.problems))

        fill = int(ignore_index) if ignore_index is not None and mode != MULTILABEL else 0
        self.mask_fill = fill
        # only training crops are oversampled; the share is checked for every split alike
        share = check_share(oversample_foreground)
        self.transform = build_transforms(
            pipeline_for_split(augment, split),
            mask_fill=fill,
            oversample_foreground=share if split == "train" else 0.0,
            ignore_index=self.ignore_index,
            background_index=self.crop_background,
        )
        self.mean, self.std = normalize_stats(normalize, self.in_channels)
        self._lut: np.ndarray | None = None  # uint8 value -> normalised float32, per channel (made on first use)
        # a data set built to list its problems (check_dataset) reads every file itself
        self._cache = DecodedCache(
            False if collect_problems else cache,
            [(image, mask) for _, image, mask in self.samples],
            self._decode_pair,
            self.in_channels,
            self.num_classes if mode == MULTILABEL else 1,
            split,
        )
        self.cache_report = self._cache.report

    @classmethod
    def has_split(
        cls,
        split: str,
        root: str | Path = ".",
        images_dir: str | None = None,
        split_files: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> bool:
        """Per-split folders: the image folder of ``split`` exists; one flat folder: ``split_files`` names
        ``split`` (a ``val_fraction`` split has train and val only)."""
        template = cls.IMAGES_DIR if images_dir is None else images_dir
        if "{split}" in template:
            return (Path(root).expanduser() / template.format(split=split)).is_dir()
        return split in (cls.SPLIT_FILES if split_files is None else split_files)

    def decode_mask(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Stored mask -> target mask: uint8 H x W (multiclass, binary) or H x W x C (multilabel)."""
        return self.masks.decode(raw, path)

    # ------------------------------------------------------------------ samples
    def __len__(self) -> int:
        return len(self.samples)

    @property
    def ids(self) -> list[str]:
        return [s[0] for s in self.samples]

    def load_image(self, index: int) -> np.ndarray:
        return io.read_image(self.samples[index][1], self.in_channels)

    def load_mask(self, index: int) -> np.ndarray:
        """The decoded, checked target mask of sample ``index`` before augmentation."""
        path = self.samples[index][2]
        return self.decode_mask(io.read_mask(path), path)

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The decoded image (H x W x C) and target mask of sample ``index``: from the cache when there is
        one (read-only arrays), else from the files."""
        cached = self._cache.get(index)
        return cached if cached is not None else self._decode_pair(index)

    def _decode_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        _, image_path, mask_path = self.samples[index]
        image = io.read_image(image_path, self.in_channels)
        mask = self.decode_mask(io.read_mask(mask_path), mask_path)
        if image.shape[:2] != mask.shape[:2]:
            raise ValueError(
                f"Image {image_path} is {image.shape[0]}x{image.shape[1]} (HxW) but its mask {mask_path} is "
                f"{mask.shape[0]}x{mask.shape[1]}; expected image and mask of the same size."
            )
        return image, mask

    def check_sample(self, index: int) -> list[str]:
        """Every problem of sample ``index`` (unreadable files, size, channels, mask values), as messages."""
        _, image_path, mask_path = self.samples[index]
        problems, image, mask = [], None, None
        try:
            image = io.read_image(image_path, self.in_channels)
        except (ValueError, FileNotFoundError) as exc:
            problems.append(str(exc))
        try:
            mask = self.decode_mask(io.read_mask(mask_path), mask_path)
        except (ValueError, FileNotFoundError) as exc:
            problems.append(str(exc))
        if image is not None and mask is not None and image.shape[:2] != mask.shape[:2]:
            problems.append(
                f"Image {image_path} is {image.shape[0]}x{image.shape[1]} (HxW) but its mask {mask_path} is "
                f"{mask.shape[0]}x{mask.shape[1]}; expected image and mask of the same size."
            )
        return problems

    def reseed(self, seed: int) -> None:
        """Reseed the augmentation pipeline (called per DataLoader worker by ``seed_worker``)."""
        seed_pipeline(self.transform, seed)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(item, tuple):
            index, seed = item
            seed_pipeline(self.transform, seed)
        else:
            index = item
        image, mask = self.load_pair(index)
        scale = io.dtype_max(image)
        if image.dtype != np.uint8:  # albumentations works on uint8 or float32 in 0..1
            image = image.astype(np.float32) / scale
            scale = 1.0
        out = self.transform(image=image, mask=mask)
        image, mask = out["image"], out["mask"]
        if image.ndim == 2:
            image = image[..., None]
        if image.dtype == np.uint8:
            image_t = torch.from_numpy(self._normalize_uint8(image))
        else:
            image = (image.astype(np.float32) / scale - self.mean) / self.std
            image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if self.mode == MULTILABEL:
            mask_t = torch.from_numpy(mask.transpose(2, 0, 1).astype(np.float32))
        else:
            mask_t = torch.from_numpy(mask.astype(np.int64))
        return {"image": image_t, "mask": mask_t, "id": self.samples[index][0]}

    def _normalize_uint8(self, image: np.ndarray) -> np.ndarray:
        """H x W x C uint8 -> C x H x W float32 ``(v / 255 - mean) / std`` through a 256-entry table per
        channel (``cv2.LUT`` on each uint8 plane): one lookup per pixel instead of five passes over float
        arrays, the largest cost per sample in the loader's workers. The table holds the float32 results
        of the same operations, so the values are the same bits as computing them pixel by pixel."""
        if self._lut is None:
            values = np.arange(256, dtype=np.float32)[:, None]
            self._lut = np.ascontiguousarray(((values / 255.0 - self.mean) / self.std).T)
        planes = np.ascontiguousarray(image.transpose(2, 0, 1))
        out = np.empty(planes.shape, dtype=np.float32)
        for k in range(planes.shape[0]):
            out[k] = cv2.LUT(planes[k], self._lut[k])
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, mode={self.mode!r}, "
            f"num_classes={self.num_classes}, samples={len(self)})"
        )
