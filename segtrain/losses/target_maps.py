"""Target-side maps of the losses, without gradient: signed distance maps (boundary, Kervadec et al. 2019),
skeleton tubes (skeleton_recall) and unsigned two-sided Euclidean distance maps (hausdorff_dt).

A leaf module (numpy, scikit-image, ``edt``, torch), so that the loader's workers can make the maps
(``segtrain.data.TargetMaps``, ``DistanceMaps``) and the losses can make them when they were not given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import edt
import numpy as np
import torch
from skimage.morphology import dilation, skeletonize
from torch import Tensor

from segtrain.modes import MULTICLASS


def signed_distance(mask: np.ndarray, threads: int = 1) -> np.ndarray:
    """Kervadec's level set of one binary 2-D or 3-D mask, float32: the Euclidean distance to the object
    outside it, minus (the distance to the background - 1) inside it; all zeros when the mask is empty or
    full (no boundary). Exact EDT from the ``edt`` package (same values as scipy's
    ``distance_transform_edt``, about 3x faster on one thread, and multi-threaded)."""
    if not mask.any() or mask.all():
        return np.zeros(mask.shape, dtype=np.float32)
    outside = edt.edt(~mask, black_border=False, parallel=threads)  # 0 on the object
    inside = edt.edt(mask, black_border=False, parallel=threads)  # 0 off the object
    return outside - (inside - 1) * mask


def map_each(function: Callable[[np.ndarray, int], np.ndarray], masks: Tensor) -> Tensor:
    """N x K x S boolean masks -> N x K x S float32 maps, ``function(mask, threads)`` of each 2-D or 3-D mask, on
    the CPU, without gradient, using torch's intra-op thread count."""
    array = np.ascontiguousarray(masks.detach().cpu().numpy()).astype(bool, copy=False)
    threads = torch.get_num_threads()
    out = np.empty(array.shape, dtype=np.float32)
    for n in range(array.shape[0]):
        for k in range(array.shape[1]):
            out[n, k] = function(array[n, k], threads)
    return torch.from_numpy(out)


def signed_distance_maps(masks: Tensor) -> Tensor:
    """N x K x S boolean masks -> N x K x S float32 signed distance maps (``signed_distance`` of each)."""
    return map_each(signed_distance, masks)


def channel_masks(
    mask: Tensor, spatial: Sequence[int], mode: str, num_classes: int, ignore_index: int | None
) -> Tensor:
    """One sample's mask -> C x S booleans, one per model output channel (``spatial`` = S, the image's
    spatial shape), ignored pixels in none: multiclass ``mask == c``; binary and multilabel ``mask > 0.5``
    (the boundary loss's own masks)."""
    if mode == MULTICLASS:
        mask = mask.reshape(*spatial)
        out = mask.unsqueeze(0) == torch.arange(num_classes, device=mask.device).view(-1, *[1] * len(spatial))
    else:
        mask = mask.reshape(-1, *spatial)  # binary: 1 x S, multilabel: C x S
        out = mask > 0.5
    if ignore_index is not None:
        out &= mask != ignore_index
    return out


def sample_distance_maps(
    mask: Tensor, spatial: Sequence[int], mode: str, num_classes: int, ignore_index: int | None
) -> Tensor:
    """C x S float32 signed distance maps of one sample's mask, one per model output channel."""
    return signed_distance_maps(channel_masks(mask, spatial, mode, num_classes, ignore_index).unsqueeze(0))[0]


def skeleton_tube(mask: np.ndarray) -> np.ndarray:
    """The skeleton of a 2-D or 3-D boolean mask (skimage's ``skeletonize``: Zhang in 2-D, Lee in 3-D), dilated
    twice with the connectivity-1 cross (skimage's default footprint), as Skeleton Recall's
    ``SkeletonTransform(do_tube=True)`` (Kirchhoff et al. 2024); all False for an empty mask."""
    if not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    tube = skeletonize(mask)
    return dilation(dilation(tube)).astype(bool)


def skeleton_maps(masks: Tensor, union_from: int | None) -> Tensor:
    """N x C x S boolean channel masks -> N x C x S uint8 skeleton maps: each channel's tube AND its own mask.

    ``union_from=k`` (multiclass: 1): one skeleton of the union of channels >= k per image, split by channel,
    and channels < k left 0; ``None``: one skeleton per channel (binary, multilabel)."""
    array = np.ascontiguousarray(masks.detach().cpu().numpy()).astype(bool, copy=False)
    out = np.zeros(array.shape, dtype=np.uint8)
    for n in range(array.shape[0]):
        if union_from is not None:
            tube = skeleton_tube(array[n, union_from:].any(0))
            out[n, union_from:] = tube & array[n, union_from:]
        else:
            for c in range(array.shape[1]):
                out[n, c] = skeleton_tube(array[n, c]) & array[n, c]
    return torch.from_numpy(out)


def two_sided_distance(mask: np.ndarray, threads: int = 1) -> np.ndarray:
    """``edt(M) + edt(not M)``: each pixel's exact Euclidean distance (unit spacing) to the nearest pixel of
    the other set, float32; all 0 when the mask is empty or full (MONAI's ``HausdorffDTLoss.distance_field``)."""
    if not mask.any() or mask.all():
        return np.zeros(mask.shape, dtype=np.float32)
    inside = edt.edt(mask, black_border=False, parallel=threads)
    outside = edt.edt(~mask, black_border=False, parallel=threads)
    return (inside + outside).astype(np.float32, copy=False)


def distance_maps(masks: Tensor) -> Tensor:
    """N x K x S boolean masks -> N x K x S float32 two-sided distance maps (``two_sided_distance`` of each)."""
    return map_each(two_sided_distance, masks)


def sample_skeleton_maps(
    mask: Tensor, spatial: Sequence[int], mode: str, num_classes: int, ignore_index: int | None
) -> Tensor:
    """C x S uint8 skeleton maps of one sample's mask, one per model output channel (skeleton_recall's
    ``skeleton`` input; multiclass: channel 0 is 0, the loss does not read it)."""
    masks = channel_masks(mask, spatial, mode, num_classes, ignore_index).unsqueeze(0)
    return skeleton_maps(masks, 1 if mode == "multiclass" else None)[0]


def sample_target_distance_maps(
    mask: Tensor, spatial: Sequence[int], mode: str, num_classes: int, ignore_index: int | None
) -> Tensor:
    """C x S float32 two-sided distance maps of one sample's mask (hausdorff_dt's ``target_distance`` input)."""
    return distance_maps(channel_masks(mask, spatial, mode, num_classes, ignore_index).unsqueeze(0))[0]
