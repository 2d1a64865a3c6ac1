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

Mask decoding, in order: palette -> mask_scale / binary_threshold -> label_map -> range check (every
value must be a source class index or ignore_index) -> foreground_classes (binary) or labels (multilabel).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segtrain.data import io
from segtrain.data.base import DATASETS, SegDataset
from segtrain.data.normalize import normalize_stats
from segtrain.data.transforms import build_transforms, pipeline_for_split
from segtrain.modes import BINARY, MODES, MULTICLASS, MULTILABEL

log = logging.getLogger(__name__)

MAX_LISTED = 20


def format_problems(header: str, problems: Sequence[str]) -> str:
    """One error message listing the problems (the first MAX_LISTED of them)."""
    lines = [f"  - {p}" for p in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        lines.append(
            f"  ... and {len(problems) - MAX_LISTED} more; run scripts/check_dataset.py to list them all."
        )
    return header + "\n" + "\n".join(lines)


def read_class_names(path: Path) -> list[str]:
    """Class names from a text file, one per line in index order (blank lines and # comments skipped)."""
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    if not names:
        raise ValueError(f"Class file {path} lists no class names; expected one name per line.")
    return names


def _split_ids_file(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"Split file {path} does not exist; expected one sample id per line.")
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ids.append(line.split()[0])
    return ids


@DATASETS.register("folder")
class FolderDataset(SegDataset):
    """Images and masks from folders; see the module docstring for the layouts and mask decoding.

    Keyword arguments beyond :class:`SegDataset`'s (all plain values, as a dataset config gives them):
    root, augment ({train: [...], val: [...]}), normalize ({mean, std} in 0-1 image scale),
    images_dir / masks_dir (templates with ``{split}``), image_suffix / mask_suffix (stem endings that
    are not part of the id), image_extensions / mask_extensions, recursive (ids are relative paths),
    split_files, val_fraction, split_seed, classes_file, source_classes, palette, void_colors,
    mask_scale, binary_threshold, label_map, foreground_classes, labels, collect_problems.
    """

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
    ) -> None:
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

        class_names = self._resolve_classes(
            mode,
            num_classes,
            class_names,
            ignore_index,
            classes_file,
            source_classes,
            foreground_classes,
            labels,
        )
        super().__init__(split, mode, num_classes, class_names, ignore_index, in_channels)

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
        if mask_scale is not None and binary_threshold is not None:
            raise ValueError("Set dataset.mask_scale or dataset.binary_threshold, not both.")
        if palette is not None and (mask_scale is not None or binary_threshold is not None):
            raise ValueError(
                "dataset.palette maps colours to classes; it cannot be combined with mask_scale."
            )
        self.mask_scale = int(mask_scale) if mask_scale is not None else None
        self.binary_threshold = binary_threshold
        self._palette_lut = self._build_palette(palette, void_colors)
        label_map = self.LABEL_MAP if label_map is None else label_map
        self.label_map = {int(k): int(v) for k, v in (label_map or {}).items()}

        # None means the layout's default (class attributes, overridden by voc / cityscapes / ...).
        self.images_dir = self.IMAGES_DIR if images_dir is None else images_dir
        self.masks_dir = self.MASKS_DIR if masks_dir is None else masks_dir
        self.image_suffix = self.IMAGE_SUFFIX if image_suffix is None else image_suffix
        self.mask_suffix = self.MASK_SUFFIX if mask_suffix is None else mask_suffix
        self.image_extensions = tuple(image_extensions or io.IMAGE_EXTENSIONS)
        self.mask_extensions = tuple(mask_extensions or io.MASK_EXTENSIONS)
        self.recursive = self.RECURSIVE if recursive is None else bool(recursive)
        self.split_files = dict(self.SPLIT_FILES if split_files is None else split_files)
        self.val_fraction = val_fraction
        self.split_seed = split_seed

        self.samples: list[tuple[str, Path, Path]] = self._find_samples()
        if not self.samples:
            self._problem(
                f"Split '{split}' of the data set at {self.root} is empty: no image/mask pairs in "
                f"{self._describe_split()}. Expected layout: {self.LAYOUT}."
            )
        if self.problems and not self._collect:
            raise ValueError(format_problems(f"Data set at {self.root}, split '{split}':", self.problems))

        fill = int(ignore_index) if ignore_index is not None and mode != MULTILABEL else 0
        self.mask_fill = fill
        self.transform = build_transforms(pipeline_for_split(augment, split), mask_fill=fill)
        self.mean, self.std = normalize_stats(normalize, self.in_channels)

    # ------------------------------------------------------------------ classes
    def _resolve_classes(
        self,
        mode: str,
        num_classes: int,
        class_names: Sequence[str] | None,
        ignore_index: int | None,
        classes_file: str | None,
        source_classes: Sequence[str] | None,
        foreground_classes: Sequence[int | str] | None,
        labels: Sequence[Sequence[int | str]] | None,
    ) -> list[str] | None:
        file_names = None
        file_path = self.root / classes_file if classes_file else None
        if file_path is not None and file_path.is_file():
            file_names = read_class_names(file_path)
        if source_classes is not None:
            source = [str(c) for c in source_classes]
            if file_names is not None and len(file_names) != len(source):
                raise ValueError(
                    f"dataset.source_classes has {len(source)} names but {file_path} lists {len(file_names)} "
                    f"({', '.join(file_names)}); make them agree or remove one."
                )
        else:
            source = file_names
        where = f"{file_path}" if file_names is not None else "dataset.source_classes"
        self.foreground = None
        self.labels = None
        if foreground_classes is not None and mode != BINARY:
            raise ValueError(f"dataset.foreground_classes applies to mode=binary, got mode={mode}.")
        if labels is not None and mode != MULTILABEL:
            raise ValueError(f"dataset.labels applies to mode=multilabel, got mode={mode}.")

        if mode == MULTICLASS:
            if source is not None and len(source) != num_classes:
                raise ValueError(
                    f"dataset.num_classes={num_classes} but {where} lists {len(source)} classes "
                    f"({', '.join(source)}); num_classes must equal the number of classes in the masks."
                )
            self.num_source_classes = int(num_classes)
            return list(class_names) if class_names is not None else source

        if mode == BINARY and foreground_classes is None:
            if source is not None and len(source) != 2:
                raise ValueError(
                    f"dataset.mode=binary reads masks as 0 = background, 1 = foreground, but {where} lists "
                    f"{len(source)} classes ({', '.join(source)}); set dataset.foreground_classes to the "
                    "classes that form the foreground."
                )
            self.num_source_classes = 2
            if class_names is not None:
                return list(class_names)
            return [source[1]] if source is not None else ["foreground"]

        if source is None:
            raise ValueError(
                f"dataset.{'foreground_classes' if mode == 'binary' else 'labels'} selects classes "
                f"of the masks, so the mask classes must be known: add {file_path or 'a classes file'} "
                "or set dataset.source_classes."
            )
        self.num_source_classes = len(source)

        def to_index(c: int | str, key: str) -> int:
            if isinstance(c, str) and not c.isdigit():
                if c not in source:
                    raise ValueError(f"dataset.{key}: class {c!r} is not one of {source} ({where}).")
                return source.index(c)
            i = int(c)
            if not 0 <= i < len(source):
                raise ValueError(f"dataset.{key}: class index {i} is outside 0..{len(source) - 1} ({where}).")
            return i

        if mode == BINARY:
            self.foreground = sorted({to_index(c, "foreground_classes") for c in foreground_classes})
            if not self.foreground:
                raise ValueError("dataset.foreground_classes is empty; list at least one class.")
            if class_names is not None:
                return list(class_names)
            return ["+".join(source[i] for i in self.foreground)]

        if labels is None:
            raise ValueError(
                "dataset.mode=multilabel builds its channels from an index mask: set dataset.labels to one "
                "list of classes per channel, e.g. labels: [[1, 2], [3]]."
            )
        if len(labels) != num_classes:
            raise ValueError(
                f"dataset.labels has {len(labels)} channel lists but dataset.num_classes={num_classes}."
            )
        self.labels = [sorted({to_index(c, "labels") for c in group}) for group in labels]
        if class_names is not None:
            return list(class_names)
        return ["+".join(source[i] for i in group) for group in self.labels]

    # ------------------------------------------------------------------ files
    def _problem(self, message: str) -> None:
        self.problems.append(message)

    def _describe_split(self) -> str:
        return str(self.root / self.images_dir.format(split=self.split))

    def _index(self, directory: Path, suffix: str, extensions: Sequence[str], what: str) -> dict[str, Path]:
        """id -> file for the files in ``directory`` whose stem ends with ``suffix``."""
        found: dict[str, Path] = {}
        for path in io.find_files(directory, extensions, self.recursive):
            rel = path.relative_to(directory).with_suffix("").as_posix()
            if suffix:
                if not rel.endswith(suffix):
                    continue
                rel = rel[: -len(suffix)]
            if rel in found:
                self._problem(
                    f"{what} {path} and {found[rel]} have the same id '{rel}'; expected one {what.lower()} "
                    "file per id."
                )
                continue
            found[rel] = path
        return found

    def _expected_mask(self, mask_dir: Path, sample_id: str) -> str:
        return f"{mask_dir / (sample_id + self.mask_suffix)}{'|'.join(self.mask_extensions)}"

    def _expected_image(self, image_dir: Path, sample_id: str) -> str:
        exts = "|".join(e.lstrip(".") for e in self.image_extensions)
        return f"{image_dir / (sample_id + self.image_suffix)}.<{exts}>"

    def _split_dir(self, template: str, what: str) -> Path:
        directory = self.root / template.format(split=self.split)
        if not directory.is_dir():
            parent = directory.parent
            have = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
            hint = f" It has: {', '.join(have)}." if have else ""
            raise FileNotFoundError(
                f"{what} folder {directory} for split '{self.split}' does not exist.{hint} Expected layout: "
                f"{self.LAYOUT}. For one flat folder, set dataset.{what.lower()}s_dir without {{split}} and "
                "dataset.split_files or dataset.val_fraction."
            )
        return directory

    def _find_samples(self) -> list[tuple[str, Path, Path]]:
        per_split = "{split}" in self.images_dir
        if per_split != ("{split}" in self.masks_dir):
            raise ValueError(
                f"dataset.images_dir={self.images_dir!r} and dataset.masks_dir={self.masks_dir!r}: "
                "either both or neither must contain {split}."
            )
        image_dir = self._split_dir(self.images_dir, "Image")
        mask_dir = self._split_dir(self.masks_dir, "Mask")
        images = self._index(image_dir, self.image_suffix, self.image_extensions, "Image")
        masks = self._index(mask_dir, self.mask_suffix, self.mask_extensions, "Mask")

        if per_split and not self.split_files:
            ids = sorted(set(images) | set(masks))
        else:
            ids = self._ids_for_flat_split(images, masks)
        samples = []
        for sample_id in ids:
            image, mask = images.get(sample_id), masks.get(sample_id)
            if image is None and mask is None:
                self._problem(
                    f"Sample '{sample_id}' listed for split '{self.split}' has neither an image "
                    f"({self._expected_image(image_dir, sample_id)}) nor a mask."
                )
            elif mask is None:
                self._problem(
                    f"Image {image} has no mask: expected {self._expected_mask(mask_dir, sample_id)}."
                )
            elif image is None:
                self._problem(
                    f"Mask {mask} has no image: expected {self._expected_image(image_dir, sample_id)}."
                )
            else:
                samples.append((sample_id, image, mask))
        return samples

    def _ids_for_flat_split(self, images: dict[str, Path], masks: dict[str, Path]) -> list[str]:
        if self.split_files:
            if self.split not in self.split_files:
                raise ValueError(
                    f"dataset.split_files has no entry for split '{self.split}' (has: "
                    f"{', '.join(self.split_files)})."
                )
            return _split_ids_file(self.root / self.split_files[self.split])
        if self.val_fraction is None:
            raise ValueError(
                f"dataset.images_dir={self.images_dir!r} has no {{split}} folder, so the split "
                "must be given: set dataset.split_files ({train: train.txt, val: val.txt}) or "
                "dataset.val_fraction."
            )
        if self.split == "test":
            raise ValueError(
                "A seeded val_fraction split has only 'train' and 'val'; for a test split set "
                "dataset.split_files.test."
            )
        if not 0 < float(self.val_fraction) < 1:
            raise ValueError(f"dataset.val_fraction must be between 0 and 1, got {self.val_fraction}.")
        # Unpaired files are reported by the caller, so split on the union of ids.
        ids = sorted(set(images) | set(masks))
        order = np.random.default_rng(self.split_seed).permutation(len(ids))
        n_val = max(1, round(float(self.val_fraction) * len(ids))) if len(ids) > 1 else 0
        chosen = order[:n_val] if self.split == "val" else order[n_val:]
        return [ids[i] for i in sorted(chosen)]

    # ------------------------------------------------------------------ decoding
    def _build_palette(
        self, palette: Sequence[Sequence[int]] | None, void_colors: Sequence[Sequence[int]] | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        if palette is None:
            if void_colors:
                raise ValueError("dataset.void_colors needs dataset.palette.")
            return None
        if len(palette) != self.num_source_classes:
            raise ValueError(
                f"dataset.palette has {len(palette)} colours but the masks have {self.num_source_classes} "
                "classes; give one [r, g, b] per class in index order."
            )
        if void_colors and self.ignore_index is None:
            raise ValueError("dataset.void_colors maps colours to ignore_index; set dataset.ignore_index.")
        codes, values = [], []
        for value, colours in [(i, [c]) for i, c in enumerate(palette)] + [
            (self.ignore_index, list(void_colors or []))
        ]:
            for colour in colours:
                if len(colour) != 3 or not all(0 <= int(x) <= 255 for x in colour):
                    raise ValueError(f"dataset.palette colour {colour} is not [r, g, b] with values 0..255.")
                code = (int(colour[0]) << 16) | (int(colour[1]) << 8) | int(colour[2])
                if code in codes:
                    raise ValueError(f"dataset.palette colour {list(colour)} is listed twice.")
                codes.append(code)
                values.append(value)
        order = np.argsort(codes)
        return np.asarray(codes, dtype=np.int64)[order], np.asarray(values, dtype=np.uint8)[order]

    def _apply_palette(self, rgb: np.ndarray, path: Path) -> np.ndarray:
        codes, values = self._palette_lut
        flat = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
        pos = np.clip(np.searchsorted(codes, flat), 0, len(codes) - 1)
        bad = codes[pos] != flat
        if bad.any():
            unknown = np.unique(flat[bad])
            shown = ", ".join(f"[{c >> 16}, {(c >> 8) & 255}, {c & 255}]" for c in unknown[:8])
            raise ValueError(
                f"Mask file {path} has {int(bad.sum())} pixels in {len(unknown)} colour(s) not in "
                f"dataset.palette: {shown}. Expected one of the {len(codes)} palette/void colours."
            )
        return values[pos]

    def decode_mask(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Stored mask -> target mask: uint8 H x W (multiclass, binary) or H x W x C (multilabel)."""
        if raw.ndim == 3:
            if self._palette_lut is None:
                same = (
                    raw.shape[2] == 3
                    and np.array_equal(raw[..., 0], raw[..., 1])
                    and np.array_equal(raw[..., 0], raw[..., 2])
                )
                hint = " (its channels are equal: save it as a grayscale PNG)" if same else ""
                raise ValueError(
                    f"Mask file {path} has {raw.shape[2]} channels{hint}; expected a single-channel mask of "
                    "class indices. For colour-coded masks configure dataset.palette."
                )
            mask = self._apply_palette(raw, path)
        else:
            if self._palette_lut is not None:
                raise ValueError(
                    f"Mask file {path} is single-channel but dataset.palette expects RGB colour masks; "
                    "remove dataset.palette for index masks."
                )
            mask = raw
            ignore = self.ignore_index
            if self.binary_threshold is not None:
                mask = (mask > self.binary_threshold).astype(np.uint8)
            elif self.mask_scale is not None and self.mask_scale != 1:
                rem = mask % self.mask_scale
                bad = rem != 0 if ignore is None else (rem != 0) & (mask != ignore)
                if bad.any():
                    vals = np.unique(mask[bad])[:10].tolist()
                    raise ValueError(
                        f"Mask file {path} has values {vals} that are not multiples of dataset.mask_scale="
                        f"{self.mask_scale}; expected only 0, {self.mask_scale}, ... (use "
                        "dataset.binary_threshold for lossy masks)."
                    )
                scaled = mask // self.mask_scale
                mask = scaled if ignore is None else np.where(mask == ignore, ignore, scaled)
            if self.label_map:
                lut = np.arange(max(int(mask.max()) + 1, max(self.label_map) + 1), dtype=np.int64)
                for src, dst in self.label_map.items():
                    lut[src] = dst
                mask = lut[mask]
            self._check_values(mask, path)
            mask = mask.astype(np.uint8, copy=False)
        return self._to_target(mask)

    def _check_values(self, mask: np.ndarray, path: Path) -> None:
        n = self.num_source_classes
        if mask.size == 0 or (int(mask.max()) < n and int(mask.min()) >= 0):
            return
        bad = (mask >= n) | (mask < 0)
        if self.ignore_index is not None:
            bad &= mask != self.ignore_index
        if not bad.any():
            return
        values = np.unique(mask[bad])
        ignore = f" or ignore_index={self.ignore_index}" if self.ignore_index is not None else ""
        hint = ""
        if self.mode == BINARY and self.foreground is None and set(values.tolist()) <= {255}:
            hint = " For masks stored as 0/255 set dataset.mask_scale=255."
        raise ValueError(
            f"Mask file {path} has {int(bad.sum())} pixels with value(s) {values[:10].tolist()}; "
            f"expected class indices 0..{n - 1} (the data set has {n} mask classes){ignore}.{hint}"
        )

    def _to_target(self, mask: np.ndarray) -> np.ndarray:
        if self.foreground is not None:
            lut = np.zeros(256, dtype=np.uint8)
            lut[self.foreground] = 1
            if self.ignore_index is not None:
                lut[self.ignore_index] = self.ignore_index
            return lut[mask]
        if self.labels is not None:
            return np.stack([np.isin(mask, group) for group in self.labels], axis=-1).astype(np.uint8)
        return mask

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
        self.transform.set_random_seed(seed)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, mask = self.load_pair(index)
        scale = io.dtype_max(image)
        if image.dtype != np.uint8:  # albumentations works on uint8 or float32 in 0..1
            image = image.astype(np.float32) / scale
            scale = 1.0
        out = self.transform(image=image, mask=mask)
        image, mask = out["image"], out["mask"]
        image = image.astype(np.float32)
        if image.ndim == 2:
            image = image[..., None]
        image = (image / scale - self.mean) / self.std
        image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if self.mode == MULTILABEL:
            mask_t = torch.from_numpy(mask.transpose(2, 0, 1).astype(np.float32))
        else:
            mask_t = torch.from_numpy(mask.astype(np.int64))
        return {"image": image_t, "mask": mask_t, "id": self.samples[index][0]}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, mode={self.mode!r}, "
            f"num_classes={self.num_classes}, samples={len(self)})"
        )
