"""albumentations 2.x pipelines declared in config, and their seeding.

A pipeline is a list of ``{name: <albumentations class>, **kwargs}``, applied jointly to image and mask.
Masks are always resampled with nearest-neighbour interpolation (a linear blend of class 3 and class 5
is not class 4), and the area a geometric transform adds (padding, rotation corners) is filled with
the mask's void value (``ignore_index`` when the data set has one) unless ``fill_mask`` is given.
Normalisation is not part of the pipeline: the data set scales by the image's bit depth and applies
``normalize: {mean, std}`` afterwards, so 8- and 16-bit images share one pipeline.

Seeding: albumentations' ``Compose(seed=s)`` / ``set_random_seed(s)`` gives every transform its own generators
seeded with the same ``s``, so transforms that draw alike draw the same numbers: two flips with ``p: 0.5``
always flip together, and after a reseed a RandomCrop's first draw (its top) decides a HorizontalFlip
(albumentations 2.0.8). :func:`seed_pipeline` gives the whole pipeline one numpy and one Python generator
instead, which its transforms draw from in turn.
"""

from __future__ import annotations

import difflib
import inspect
import random
from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch

from segtrain.data.oversample import check_share, steer_random_crop

_NEAREST = (cv2.INTER_NEAREST, cv2.INTER_NEAREST_EXACT)
# Transforms that would give a mask wrong values or a pipeline a different meaning.
_REFUSED = {
    "Normalize": "normalisation is configured under dataset.normalize: {mean, std}, not in the pipeline",
    "ToTensorV2": "the data set converts to tensors itself",
}


def _transform_names() -> list[str]:
    return sorted(
        n for n, obj in vars(A).items() if inspect.isclass(obj) and issubclass(obj, A.BasicTransform)
    )


def _build_one(entry: Mapping[str, Any], mask_fill: float | None, index: int) -> A.BasicTransform:
    if not isinstance(entry, Mapping) or "name" not in entry:
        raise ValueError(
            f"augment entry {index} is {entry!r}; expected a mapping with a 'name' key, e.g. "
            "{name: HorizontalFlip, p: 0.5}"
        )
    kwargs = dict(entry)
    name = kwargs.pop("name")
    if name in _REFUSED:
        raise ValueError(f"augment entry {index} ({name}) is not allowed: {_REFUSED[name]}.")
    if name in ("Compose", "OneOf", "SomeOf", "Sequential", "OneOrOther"):
        children = kwargs.pop("transforms", None)
        if not isinstance(children, Sequence):
            raise ValueError(f"augment entry {index} ({name}) needs a 'transforms' list.")
        built = [_build_one(c, mask_fill, index) for c in children]
        return getattr(A, name)(built, **kwargs)
    cls = getattr(A, str(name), None)
    if not (inspect.isclass(cls) and issubclass(cls, A.BasicTransform)):
        close = difflib.get_close_matches(str(name), _transform_names(), n=4, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"augment entry {index}: unknown albumentations transform {name!r}.{hint} "
            "Names are albumentations 2.x class names (e.g. RandomCrop, HorizontalFlip, PadIfNeeded)."
        )
    params = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise ValueError(
                f"augment entry {index} ({name}) got unknown argument(s) {unknown}; albumentations 2.x "
                f"{name} accepts: {', '.join(p for p in params if p != 'self')}"
            )
    interp = kwargs.get("mask_interpolation")
    if interp is not None and interp not in _NEAREST:
        raise ValueError(
            f"augment entry {index} ({name}) sets mask_interpolation={interp}; masks hold class indices "
            "and must use nearest-neighbour interpolation (0)."
        )
    if "fill_mask" in params and "fill_mask" not in kwargs and mask_fill is not None:
        kwargs["fill_mask"] = mask_fill
    if "size" in kwargs and isinstance(kwargs["size"], list):
        kwargs["size"] = tuple(kwargs["size"])
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"augment entry {index} ({name}) with arguments {kwargs}: {exc}") from exc


def build_transforms(
    spec: Sequence[Mapping[str, Any]] | None,
    mask_fill: float | None = 0,
    seed: int | None = None,
    oversample_foreground: float = 0.0,
    ignore_index: int | None = None,
    background_index: int | None = 0,
) -> A.Compose:
    """Build an ``A.Compose`` from a list of ``{name, **kwargs}``; ``None`` or ``[]`` is the identity.

    ``mask_fill`` is the mask value for pixels a transform invents (padding, rotated-in corners), used
    where an entry sets no ``fill_mask``. Masks always use nearest-neighbour interpolation.
    ``oversample_foreground`` > 0 replaces the pipeline's RandomCrop by a ForegroundCrop with that share
    of foreground-centred crops (``segtrain.data.oversample``; ``ignore_index`` and ``background_index``,
    None for no background class, are not foreground); 0 leaves the pipeline untouched.
    """
    if spec is None:
        spec = []
    if isinstance(spec, Mapping) or isinstance(spec, str):
        raise ValueError(
            f"augment pipeline must be a list of {{name: ..., **kwargs}} entries, got {type(spec).__name__}"
        )
    transforms = [_build_one(entry, mask_fill, i) for i, entry in enumerate(spec)]
    if check_share(oversample_foreground) > 0:
        transforms = steer_random_crop(transforms, oversample_foreground, ignore_index, background=background_index)
    if seed is None:
        seed = int(torch.initial_seed() % 2**32)
    pipeline = A.Compose(transforms, mask_interpolation=cv2.INTER_NEAREST, seed=seed)
    seed_pipeline(pipeline, seed)
    return pipeline


def seed_pipeline(pipeline: A.BaseCompose, seed: int) -> None:
    """Reseed ``pipeline`` from ``seed``: one ``np.random.Generator`` and one ``random.Random`` shared by the
    pipeline and all its transforms (``set_random_state`` propagates them), so successive transforms take
    successive draws of one stream rather than the same draws of equal streams (module docstring)."""
    pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))


def pipeline_for_split(augment: Mapping[str, Any] | None, split: str) -> list[Mapping[str, Any]]:
    """Pick the pipeline of ``split`` from ``{train: [...], val: [...]}``; ``test`` falls back to ``val``."""
    if augment is None:
        return []
    if not isinstance(augment, Mapping):
        raise ValueError(
            f"dataset.augment must be a mapping {{train: [...], val: [...]}}, got {type(augment).__name__}"
        )
    unknown = sorted(set(augment) - {"train", "val", "test"})
    if unknown:
        raise ValueError(f"dataset.augment has unknown split key(s) {unknown}; expected train, val, test")
    if split in augment:
        return list(augment[split] or [])
    if split == "test":
        return list(augment.get("val") or [])
    return []


def seed_worker(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=seed_worker)``: seed numpy, random and the data set's pipeline per worker.

    torch gives every worker ``base_seed + worker_id`` (base_seed from the loader's Generator), so
    anything that draws from numpy's, Python's or torch's global generators in a worker is reproducible
    for a given ``num_workers`` and differs between workers. The augmentations of a data set that takes
    per-sample seeds (``takes_sample_seeds``; the folder data sets) do not depend on this: the loader's
    SeededSampler hands each sample its seed (segtrain.data.sample_seeds), so they stay the same with
    persistent workers, after a resume and with any worker count. The pipeline is still reseeded here
    (``reseed``) for a data set read without those seeds, whose workers would otherwise all start from
    the copy of one Compose generator made when they were forked.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    info = torch.utils.data.get_worker_info()
    dataset = getattr(info, "dataset", None)
    reseed = getattr(dataset, "reseed", None)
    if callable(reseed):
        reseed(int(seed))
