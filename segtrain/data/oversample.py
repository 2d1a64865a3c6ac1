"""Foreground oversampling: a share of the training crops is centred on a foreground pixel.

``dataset.oversample_foreground: p`` (0 by default: crops stay as they are). Each training crop is,
with probability ``p``, centred (with jitter) on a pixel of a foreground class the image contains, the
class drawn uniformly over the present foreground classes so that a rare class gets as many crops as a
common one; the other crops are uniform, as a RandomCrop's. This is the nnU-Net sampling rule
(Isensee et al., Nature Methods 2021: a third of the patches, ``oversample_foreground_percent = 0.33``,
with the class chosen uniformly among those present), which matters for small structures.

Definitions:

- foreground: every class but the background and ``ignore_index``. Multiclass: the background is
  ``dataset.background_index`` (0 by default, as in nnU-Net and VOC; null where every class is an object
  class, e.g. CamVid's class 0 is sky, Cityscapes' is road: then every class but ``ignore_index``); binary:
  the background is 0, so class 1; multilabel (H x W x C masks): every channel with a positive pixel.
- jitter: the chosen pixel lands within +-``jitter`` x crop size of the crop's centre (0.25: in the
  middle half of the crop).
- an image with no foreground gets a uniform crop: by definition there is nothing to centre on.
- the window is kept inside the image where the image is at least the crop size (nnU-Net does the
  same; the chosen pixel always stays inside the crop); where the image is smaller than the crop, the
  window is padded: the mask with ``fill_mask`` (``ignore_index`` in the folder data sets), the image
  with ``fill``, as PadIfNeeded does.

Randomness: a ForegroundCrop draws from its pipeline's numpy generator (``self.random_generator``,
albumentations' per-transform state, which ``segtrain.data.transforms.seed_pipeline`` sets), like the
pipeline's other transforms. The folder data sets reseed that from each sample's seed, which the loader's
sampler draws in the main process from the run's seed and the epoch (segtrain.data.sample_seeds): so
oversampled crops do not depend on the loader's workers (their number, or whether they persist) and continue
bit-identically after a resume. The ``shapes`` data set, which has no pipeline, crops with :func:`torch_rng`:
one draw from torch's default generator, which the DataLoader seeds in each worker (from the loader's
seeded generator, restored on resume) and which, with ``num_workers: 0``, is the process's own, which
checkpoints save and restore.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import albumentations as A
import numpy as np
import torch

KEY = "dataset.oversample_foreground"
JITTER = 0.25


def check_share(value: Any) -> float:
    """``dataset.oversample_foreground`` as a float in [0, 1], or a ValueError naming the key."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(
            f"{KEY}={value!r}: expected a number in [0, 1], the share of training crops centred on a "
            "foreground pixel (0: uniform crops only; nnU-Net uses 0.33)"
        )
    return float(value)


def present_classes(mask: np.ndarray, ignore_index: int | None, background: int | None = 0) -> np.ndarray:
    """The foreground classes of ``mask``: labels other than ``background`` (None: no background class) and
    ``ignore_index`` (H x W), or the channels with a positive pixel (multilabel, H x W x C)."""
    if mask.ndim == 3:
        return np.flatnonzero(mask.reshape(-1, mask.shape[-1]).any(axis=0))
    labels = np.unique(mask)
    keep = np.ones(labels.shape, dtype=bool)
    for left_out in (background, ignore_index):
        if left_out is not None:
            keep &= labels != left_out
    return labels[keep]


def _start_range(size: int, crop: int) -> tuple[int, int]:
    # valid window starts: inside the image, or (image smaller than the crop) the image anywhere inside
    return min(0, size - crop), max(0, size - crop)


def choose_window(
    mask: np.ndarray,
    height: int,
    width: int,
    share: float,
    rng: np.random.Generator,
    ignore_index: int | None = None,
    jitter: float = JITTER,
    background: int | None = 0,
) -> tuple[int, int, bool]:
    """(top, left, centred) of a ``height`` x ``width`` crop of ``mask``; ``centred`` says whether it was
    centred on a foreground pixel (probability ``share`` when the mask has foreground; ``background``: the
    class that is not foreground, None for none)."""
    h, w = mask.shape[:2]
    (top_lo, top_hi), (left_lo, left_hi) = _start_range(h, height), _start_range(w, width)
    if rng.random() < share:
        classes = present_classes(mask, ignore_index, background)
        if classes.size:
            c = classes[rng.integers(classes.size)]
            hits = np.flatnonzero(mask[..., c] > 0 if mask.ndim == 3 else mask == c)
            y, x = divmod(int(hits[rng.integers(hits.size)]), w)
            jy, jx = int(jitter * height), int(jitter * width)
            top = y - height // 2 + int(rng.integers(-jy, jy + 1))
            left = x - width // 2 + int(rng.integers(-jx, jx + 1))
            return int(np.clip(top, top_lo, top_hi)), int(np.clip(left, left_lo, left_hi)), True
    return int(rng.integers(top_lo, top_hi + 1)), int(rng.integers(left_lo, left_hi + 1)), False


def crop_padded(array: np.ndarray, top: int, left: int, height: int, width: int, fill: float) -> np.ndarray:
    """The ``height`` x ``width`` window of ``array`` (H x W or H x W x C) at (top, left); the part outside
    the array is ``fill``."""
    h, w = array.shape[:2]
    out = np.full((height, width, *array.shape[2:]), fill, dtype=array.dtype)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, h), min(left + width, w)
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = array[y0:y1, x0:x1]
    return out


def torch_rng() -> np.random.Generator:
    """A numpy generator seeded by one draw from torch's default generator (the ``shapes`` crops; see the module
    docstring)."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


class ForegroundCrop(A.DualTransform):
    """A RandomCrop whose window is, with probability ``share``, centred on a foreground pixel of a class
    drawn uniformly over those the mask contains (foreground: every class but ``background`` and
    ``ignore_index``; see the module docstring), drawn from the transform's ``random_generator``.
    ``last_centred`` records the last call's choice."""

    def __init__(
        self,
        height: int,
        width: int,
        share: float,
        ignore_index: int | None = None,
        fill: float = 0.0,
        fill_mask: float = 0.0,
        jitter: float = JITTER,
        background: int | None = 0,
    ) -> None:
        super().__init__(p=1.0)
        self.height, self.width = int(height), int(width)
        self.share = check_share(share)
        self.ignore_index = ignore_index
        self.fill, self.fill_mask, self.jitter = fill, fill_mask, float(jitter)
        self.background = background
        self.last_centred: bool | None = None

    @property
    def targets_as_params(self) -> list[str]:
        return ["mask"]

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        rng, ignore = self.random_generator, self.ignore_index
        top, left, self.last_centred = choose_window(
            data["mask"], self.height, self.width, self.share, rng, ignore, self.jitter, self.background
        )
        return {"top": top, "left": left}

    def apply(self, img: np.ndarray, top: int, left: int, **params: Any) -> np.ndarray:
        return crop_padded(img, top, left, self.height, self.width, self.fill)

    def apply_to_mask(self, mask: np.ndarray, top: int, left: int, **params: Any) -> np.ndarray:
        return crop_padded(mask, top, left, self.height, self.width, self.fill_mask)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("height", "width", "share", "ignore_index", "fill", "fill_mask", "jitter", "background")


def steer_random_crop(
    transforms: Sequence[A.BasicTransform],
    share: float,
    ignore_index: int | None,
    split: str = "train",
    background: int | None = 0,
) -> list[A.BasicTransform]:
    """``transforms`` with its one top-level RandomCrop replaced by a :class:`ForegroundCrop` of the same
    size and fill values (foreground: every class but ``background`` and ``ignore_index``); a pipeline
    without exactly one is an error that names the key."""
    at = [i for i, t in enumerate(transforms) if type(t) is A.RandomCrop]
    if len(at) != 1:
        names = ", ".join(type(t).__name__ for t in transforms) or "nothing"
        raise ValueError(
            f"{KEY}={share} steers the RandomCrop of dataset.augment.{split}, which must have exactly one at "
            f"its top level; it has {len(at)} (the pipeline: {names}). Add e.g. "
            "{name: RandomCrop, height: 256, width: 256}, or set the share to 0."
        )
    crop = transforms[at[0]]
    steered = ForegroundCrop(
        crop.height, crop.width, share, ignore_index, fill=crop.fill, fill_mask=crop.fill_mask, background=background
    )
    return [*transforms[: at[0]], steered, *transforms[at[0] + 1 :]]
