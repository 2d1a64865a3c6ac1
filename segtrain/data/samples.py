"""Finding a folder data set's image/mask pairs for one split: per-split folders, or one flat folder split
by id files or a seeded ``val_fraction``; or, with ``folds``, k-fold CV over the pooled train and val samples
(folds.py). Problems (duplicate ids, unpaired files) are collected, not raised, so that a check lists them
all at once."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from segtrain.data import io
from segtrain.data.folds import check_fold_args, fold_ids

MAX_LISTED = 20


def format_problems(header: str, problems: Sequence[str]) -> str:
    """One error message listing the problems (the first MAX_LISTED of them)."""
    lines = [f"  - {p}" for p in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        lines.append(f"  ... and {len(problems) - MAX_LISTED} more; run scripts/check_dataset.py to list them all.")
    return header + "\n" + "\n".join(lines)


def read_split_ids(path: Path) -> list[str]:
    """Sample ids from a split file: the first word of each line (blank lines and # comments skipped)."""
    if not path.is_file():
        raise FileNotFoundError(f"Split file {path} does not exist; expected one sample id per line.")
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ids.append(line.split()[0])
    return ids


class SampleFinder:
    """The (id, image, mask) triples of ``split``; ``problems`` holds what did not pair up.

    ``images_dir`` / ``masks_dir`` are templates under ``root`` (``{split}``: one folder per split);
    ``layout`` describes the expected layout in errors. With ``folds`` (K) and ``fold`` (i), "train" and
    "val" are the K-fold CV split of the train and val samples pooled (per-split folders or split files:
    both splits' samples; a flat folder without split files: all of it), seeded by ``split_seed``, with
    ``group_pattern`` keeping groups in one fold; fold i is "val". Any other split (test) is never pooled.
    """

    def __init__(
        self,
        root: Path,
        split: str,
        images_dir: str,
        masks_dir: str,
        image_suffix: str,
        mask_suffix: str,
        image_extensions: Sequence[str],
        mask_extensions: Sequence[str],
        recursive: bool,
        split_files: Mapping[str, str],
        val_fraction: float | None,
        split_seed: int,
        layout: str,
        folds: int | None = None,
        fold: int | None = None,
        group_pattern: str | None = None,
    ) -> None:
        self.root, self.split, self.layout = root, split, layout
        self.images_dir, self.masks_dir = images_dir, masks_dir
        self.image_suffix, self.mask_suffix = image_suffix, mask_suffix
        self.image_extensions, self.mask_extensions = tuple(image_extensions), tuple(mask_extensions)
        self.recursive = recursive
        self.split_files = dict(split_files)
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.folds, self.fold, self.group_pattern = folds, fold, group_pattern
        self.problems: list[str] = []

    def describe_split(self) -> str:
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
                self.problems.append(
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
                f"{self.layout}. For one flat folder, set dataset.{what.lower()}s_dir without {{split}} and "
                "dataset.split_files or dataset.val_fraction."
            )
        return directory

    def find(self) -> list[tuple[str, Path, Path]]:
        check_fold_args(self.folds, self.fold, self.group_pattern)
        if self.folds is None or self.split not in ("train", "val"):
            return self._find()
        assert self.fold is not None
        pooled: dict[str, tuple[str, Path, Path]] = {}
        for part in self._pooled_splits():
            finder = copy.copy(self)  # shares self.problems
            finder.split, finder.folds = part, None
            for sample in finder._find():
                if sample[0] in pooled:
                    self.problems.append(
                        f"Sample id '{sample[0]}' is in more than one of the pooled splits "
                        f"({pooled[sample[0]][1]} and {sample[1]}); expected each id once for k-fold CV."
                    )
                    continue
                pooled[sample[0]] = sample
        keep = fold_ids(list(pooled), self.split, self.folds, self.fold, self.split_seed, self.group_pattern)
        return [pooled[i] for i in keep]

    def _pooled_splits(self) -> list[str | None]:
        """The splits whose samples k-fold CV pools: train and val, or the whole flat folder (None)."""
        if "{split}" in self.images_dir and not self.split_files:
            return ["train", "val"]
        if self.split_files:
            # a missing train entry is reported by _find's split-file check
            return [s for s in ("train", "val") if s in self.split_files] or ["train"]
        if self.val_fraction is not None:
            raise ValueError(
                f"dataset.val_fraction={self.val_fraction} and dataset.folds={self.folds} both choose the val "
                "split; set dataset.val_fraction: null for k-fold CV"
            )
        return [None]

    def _find(self) -> list[tuple[str, Path, Path]]:
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

        if (per_split and not self.split_files) or self.split is None:  # None: a whole flat folder (k-fold CV)
            ids = sorted(set(images) | set(masks))
        else:
            ids = self._ids_for_flat_split(images, masks)
        samples = []
        for sample_id in ids:
            image, mask = images.get(sample_id), masks.get(sample_id)
            if image is None and mask is None:
                self.problems.append(
                    f"Sample '{sample_id}' listed for split '{self.split}' has neither an image "
                    f"({self._expected_image(image_dir, sample_id)}) nor a mask."
                )
            elif mask is None:
                self.problems.append(
                    f"Image {image} has no mask: expected {self._expected_mask(mask_dir, sample_id)}."
                )
            elif image is None:
                self.problems.append(
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
            return read_split_ids(self.root / self.split_files[self.split])
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
