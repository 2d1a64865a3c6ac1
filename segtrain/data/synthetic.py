"""``shapes``: the embedded synthetic data set, generated on the fly and deterministically from a seed.

Ellipses, rectangles and triangles (classes 1-3; 0 is background) of varying size, aspect, rotation and
colour are drawn over a textured, noisy background, later shapes occluding earlier ones. The class is
carried by the geometry only (colours are random per shape), so a model has to learn shape, not colour.
``foreground_fraction`` sets the expected share of shape pixels: 0.15 is mild, 0.02 is severe imbalance.
Sample ``i`` of a split depends only on ``(seed, split, i)``, so every run and every worker sees the
same data whatever the training seed. ``crop_size`` trains on random crops of the generated images
(val and test stay whole); only then can ``oversample_foreground`` centre a share of them on a shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from segtrain.data.base import DATASETS, SegDataset
from segtrain.data.normalize import normalize_stats
from segtrain.data.oversample import KEY as OVERSAMPLE_KEY
from segtrain.data.oversample import check_share, choose_window, crop_padded, torch_rng
from segtrain.modes import BINARY, MULTICLASS, MULTILABEL

SHAPE_NAMES = ("ellipse", "rectangle", "triangle")
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


def _ellipse(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, a: float, b: float, theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _rectangle(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, a: float, b: float, theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
    return (np.abs(u) <= a) & (np.abs(v) <= b)


def _triangle(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, a: float, b: float, theta: float) -> np.ndarray:
    # Isosceles triangle with half-base a and height 2b in its own frame, centred on its bounding box.
    c, s = math.cos(theta), math.sin(theta)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
    # apex at (0, -b), base from (-a, b) to (a, b)
    return (v <= b) & (np.abs(u) * 2 * b <= a * (v + b))


_DRAW = (_ellipse, _rectangle, _triangle)
# Area of each shape for half-axes (a, b): used to size shapes for the requested foreground fraction.
_AREA = (math.pi, 4.0, 2.0)


def render_sample(
    rng: np.random.Generator,
    image_size: int,
    foreground_fraction: float,
    max_shapes: int,
    noise: float,
    max_rotation: float = 180.0,
    texture_cue: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one sample: (image float32 3 x H x W in [0, 1], class map int64 H x W, per-shape masks 3 x H x W)."""
    h = w = image_size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Background: a base colour, two random gratings and a smooth gradient (texture), then noise.
    base = rng.uniform(0.25, 0.75, size=3).astype(np.float32)
    img = np.empty((3, h, w), np.float32)
    texture = np.zeros((h, w), np.float32)
    for _ in range(2):
        f = rng.uniform(0.05, 0.3)
        ang = rng.uniform(0, math.pi)
        texture += 0.06 * np.sin(f * (xx * math.cos(ang) + yy * math.sin(ang)) + rng.uniform(0, 2 * math.pi))
    texture += 0.08 * ((xx / w) * rng.uniform(-1, 1) + (yy / h) * rng.uniform(-1, 1))
    img[:] = base[:, None, None] + texture[None]

    classes = np.zeros((h, w), np.int64)
    layers = np.zeros((len(SHAPE_NAMES), h, w), bool)
    n = int(rng.integers(1, max_shapes + 1))
    target_area = foreground_fraction * h * w / n
    for _ in range(n):
        k = int(rng.integers(0, len(SHAPE_NAMES)))
        area = target_area * rng.uniform(0.6, 1.4)
        aspect = rng.uniform(0.6, 1.6)
        a = math.sqrt(area / (_AREA[k] * aspect))
        b = a * aspect
        a, b = max(a, 1.2), max(b, 1.2)
        r = max(a, b)
        cx, cy = rng.uniform(r * 0.5, w - r * 0.5), rng.uniform(r * 0.5, h - r * 0.5)
        theta = math.radians(rng.uniform(-max_rotation, max_rotation))
        m = _DRAW[k](xx, yy, cx, cy, a, b, theta)
        # Shape colour: away from the background by a random contrast in a random direction.
        contrast = rng.uniform(0.15, 0.35) * rng.choice([-1.0, 1.0], size=3)
        colour = np.clip(base + contrast, 0.0, 1.0).astype(np.float32)
        shade = 0.05 * rng.standard_normal() * ((xx - cx) / max(r, 1.0))
        if texture_cue > 0 and k > 0:
            # a faint class-specific fill (stripes for rectangles, a grid for triangles) in the shape's frame
            u = (xx - cx) * math.cos(theta) + (yy - cy) * math.sin(theta)
            v = -(xx - cx) * math.sin(theta) + (yy - cy) * math.cos(theta)
            f = 2 * math.pi * rng.uniform(0.22, 0.32)
            pattern = np.sin(f * u) if k == 1 else np.sin(f * u) * np.sin(f * v)
            shade = shade + texture_cue * rng.uniform(0.7, 1.3) * pattern
        img[:, m] = (colour[:, None] + shade[m][None]).astype(np.float32)
        classes[m] = k + 1
        layers[k] |= m
    img += rng.normal(0.0, noise, size=img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0), classes, layers


@DATASETS.register("shapes")
class ShapesDataset(SegDataset):
    """Synthetic shapes, in ``multiclass`` (background + 3 shapes), ``binary`` (shape vs background) or
    ``multilabel`` (one channel per shape kind, overlaps kept) mode.

    Args:
        split: "train", "val" or "test" (disjoint random streams).
        length: samples per split, e.g. ``{train: 512, val: 128}`` or one int for every split.
        image_size: side of the square images.
        foreground_fraction: expected share of shape pixels (before overlap), in (0, 0.6].
        max_shapes: each image has 1..max_shapes shapes.
        noise: standard deviation of the additive Gaussian pixel noise (images in [0, 1]).
        max_rotation: shapes are rotated by up to +-max_rotation degrees (180: any orientation; 0: upright
            rectangles and triangles, the easiest setting).
        texture_cue: amplitude of a faint class-specific fill texture (rectangles striped, triangles
            gridded, ellipses plain); 0 leaves geometry as the only cue, the hardest setting.
        seed: the data seed (independent of the training seed).
        normalize: ``{mean, std}`` per channel applied after generation.
        crop_size: side of the random square training crops of each generated image (``None``: whole
            images, no crops); val and test images stay whole.
        oversample_foreground: share of the training crops centred on a shape pixel, the shape class
            drawn uniformly over those present (``segtrain.data.oversample``); needs ``crop_size``.
        background_index: the multiclass background class (0, the generated background; None: every
            class, background included, counts as foreground for oversampling and in the report's case means).
    """

    def __init__(
        self,
        split: str,
        mode: str = MULTICLASS,
        num_classes: int = 4,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = None,
        in_channels: int = 3,
        length: int | dict[str, int] = 512,
        image_size: int = 64,
        foreground_fraction: float = 0.15,
        max_shapes: int = 4,
        noise: float = 0.08,
        max_rotation: float = 180.0,
        texture_cue: float = 0.0,
        seed: int = 0,
        normalize: dict | None = None,
        crop_size: int | None = None,
        oversample_foreground: float = 0.0,
        background_index: int | None = 0,
    ) -> None:
        super().__init__(split, mode, num_classes, class_names, ignore_index, in_channels, background_index)
        expected = {MULTICLASS: 1 + len(SHAPE_NAMES), BINARY: 1, MULTILABEL: len(SHAPE_NAMES)}[mode]
        if self.num_classes != expected:
            raise ValueError(f"dataset 'shapes' in mode={mode} has {expected} classes, got num_classes={num_classes}")
        if in_channels != 3:
            raise ValueError(f"dataset 'shapes' makes RGB images: in_channels must be 3, got {in_channels}")
        if split not in _SPLIT_IDS:
            raise ValueError(f"dataset 'shapes' has splits {list(_SPLIT_IDS)}, got split={split!r}")
        if not 0.0 < foreground_fraction <= 0.6:
            raise ValueError(f"dataset.foreground_fraction must be in (0, 0.6], got {foreground_fraction}")
        if isinstance(length, dict):
            if split not in length:
                raise ValueError(f"dataset.length has no entry for split {split!r}: {dict(length)}")
            length = length[split]
        self.length = int(length)
        self.image_size = int(image_size)
        self.foreground_fraction = float(foreground_fraction)
        self.max_shapes = int(max_shapes)
        self.noise = float(noise)
        self.max_rotation = float(max_rotation)
        self.texture_cue = float(texture_cue)
        self.seed = int(seed)
        if crop_size is not None and (
            isinstance(crop_size, bool) or not isinstance(crop_size, int) or not 1 <= crop_size <= self.image_size
        ):
            raise ValueError(
                f"dataset.crop_size={crop_size!r}: expected null (whole images) or an int in 1..image_size "
                f"({self.image_size})"
            )
        self.crop_size = crop_size
        self.oversample_foreground = check_share(oversample_foreground)
        if self.oversample_foreground > 0 and crop_size is None:
            raise ValueError(
                f"{OVERSAMPLE_KEY}={oversample_foreground}: 'shapes' trains on whole generated images, so there "
                "is no crop to centre on a shape; set dataset.crop_size (e.g. half of dataset.image_size) to "
                "train on crops, or set the share to 0."
            )
        mean, std = normalize_stats(normalize or {"mean": 0.5, "std": 0.25}, in_channels)
        self._mean, self._std = mean[:, None, None], std[:, None, None]

    @classmethod
    def has_split(cls, split: str, length: int | dict[str, int] = 512, **kwargs) -> bool:
        """``split`` is one of the generated streams and ``length`` (one int, or one per split) covers it."""
        return split in _SPLIT_IDS and (not isinstance(length, dict) or split in length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"shapes[{self.split}] has {self.length} samples, asked for index {index}")
        rng = np.random.default_rng([self.seed, _SPLIT_IDS[self.split], index])
        img, classes, layers = render_sample(
            rng, self.image_size, self.foreground_fraction, self.max_shapes, self.noise, self.max_rotation,
            self.texture_cue,
        )
        if self.crop_size is not None and self.split == "train":
            img, classes, layers = self._crop(img, classes, layers)
        image = torch.from_numpy((img - self._mean) / self._std)
        if self.mode == MULTICLASS:
            mask = torch.from_numpy(classes)
        elif self.mode == BINARY:
            mask = torch.from_numpy((classes > 0).astype(np.int64))
        else:
            mask = torch.from_numpy(layers.astype(np.float32))
        return {"image": image, "mask": mask, "id": f"shapes-{self.split}-{index:06d}"}

    def _crop(
        self, img: np.ndarray, classes: np.ndarray, layers: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One training crop of (image C x H x W, class map H x W, layers C x H x W), chosen on the mask of
        the data set's mode; crop_size <= image_size, so the window never needs padding."""
        if self.mode == MULTILABEL:
            mask = layers.transpose(1, 2, 0)
        else:
            mask = classes if self.mode == MULTICLASS else (classes > 0).astype(np.int64)
        size = int(self.crop_size)
        share, background = self.oversample_foreground, self.crop_background
        top, left, _ = choose_window(mask, size, size, share, torch_rng(), self.ignore_index, background=background)
        img = crop_padded(img.transpose(1, 2, 0), top, left, size, size, 0.0).transpose(2, 0, 1)
        layers = crop_padded(layers.transpose(1, 2, 0), top, left, size, size, False).transpose(2, 0, 1)
        return np.ascontiguousarray(img), crop_padded(classes, top, left, size, size, 0), np.ascontiguousarray(layers)
