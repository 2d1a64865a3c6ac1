"""Logits for images of any size: padding to the output stride, Gaussian-blended sliding windows, flip TTA.

- Flip TTA averages the **logits** of the views (as nnU-Net v2 does for its mirroring), so the result is
  still raw logits that the metrics and the losses take as they are.
- Sliding windows are blended with a Gaussian weight (sigma = window / 8, nnU-Net's choice) or uniformly;
  every tile has the window's size, so only images smaller than the window are padded.
- Inputs whose height or width is not a multiple of the encoder's output stride (32 for most smp
  encoders) are padded (reflect, replicate where the image is too small) and the logits cropped back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segtrain.metrics.threshold import shift_logits
from segtrain.modes import BINARY, MODES, MULTICLASS, MULTILABEL

BLENDS = ("gaussian", "uniform")
# The four 2-D flips: none, width, height, both (dims of an N x C x H x W tensor).
FLIPS: tuple[tuple[int, ...], ...] = ((), (3,), (2,), (2, 3))


def output_stride(model: nn.Module) -> int:
    """The multiple that input height and width must have (the smp encoder's output stride, else 32)."""
    stride = getattr(getattr(model, "encoder", None), "output_stride", 32)
    return int(stride) if isinstance(stride, int) and stride > 0 else 32


def _pad(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad bottom/right up to height x width: reflect where the image allows it, replicate otherwise."""
    ph, pw = height - images.shape[-2], width - images.shape[-1]
    if ph == 0 and pw == 0:
        return images
    mode = "reflect" if ph < images.shape[-2] and pw < images.shape[-1] else "replicate"
    return F.pad(images, (0, pw, 0, ph), mode=mode)


def forward_padded(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``model(images)`` for any H x W: pad to a multiple of the output stride, crop the logits back."""
    h, w = images.shape[-2:]
    s = output_stride(model)
    logits = model(_pad(images, math.ceil(h / s) * s, math.ceil(w / s) * s))
    return logits[..., :h, :w]


def _starts(length: int, window: int, step: int) -> list[int]:
    if length <= window:
        return [0]
    n = math.ceil((length - window) / step) + 1
    return sorted({round(i * (length - window) / (n - 1)) for i in range(n)})


def _blend_weight(window: int, blend: str, device: torch.device) -> torch.Tensor:
    if blend == "uniform":
        return torch.ones(window, window, device=device)
    centre, sigma = (window - 1) / 2, window / 8
    g = torch.exp(-((torch.arange(window, device=device, dtype=torch.float32) - centre) ** 2) / (2 * sigma**2))
    weight = g[:, None] * g[None, :]
    return (weight / weight.max()).clamp(min=1e-4)  # the corners still count where one tile covers them


def sliding_window_logits(
    model: nn.Module, images: torch.Tensor, window: int, overlap: float = 0.5, blend: str = "gaussian"
) -> torch.Tensor:
    """Logits of ``images`` (N x C x H x W) from ``window`` x ``window`` tiles overlapping by ``overlap``,
    blended by ``blend`` ("gaussian" or "uniform"). An image that fits in one window is one forward pass."""
    s = output_stride(model)
    if window < s or window % s:
        raise ValueError(f"window={window} must be a positive multiple of {s} (the encoder's output stride)")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap={overlap} must be in [0, 1)")
    if blend not in BLENDS:
        raise ValueError(f"blend={blend!r} must be one of {BLENDS}")
    h, w = images.shape[-2:]
    if h <= window and w <= window:
        return forward_padded(model, images).float()
    padded = _pad(images, max(h, window), max(w, window))
    ph, pw = padded.shape[-2:]
    step = max(1, int(window * (1 - overlap)))
    weight = _blend_weight(window, blend, images.device)
    total, norm = None, torch.zeros(ph, pw, device=images.device)
    for y in _starts(ph, window, step):
        for x in _starts(pw, window, step):
            tile = model(padded[..., y : y + window, x : x + window]).float()
            if total is None:
                total = torch.zeros(*tile.shape[:2], ph, pw, device=images.device)
            total[..., y : y + window, x : x + window] += tile * weight
            norm[y : y + window, x : x + window] += weight
    return (total / norm)[..., :h, :w]


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    tta: bool = False,
    window: int | None = None,
    overlap: float = 0.5,
    blend: str = "gaussian",
) -> torch.Tensor:
    """N x C x H x W float32 logits for N x in_channels x H x W (normalised) images of any size; ``model``
    should be in eval mode (``model_from_checkpoint`` returns it so).

    ``tta``: average the logits of the four flips (none, horizontal, vertical, both), each flipped back;
    the result is flip-equivariant whatever the model. ``window``: sliding-window inference with square
    tiles of that side (a multiple of the output stride) for images larger than it; None: one pass.
    """

    def one(x: torch.Tensor) -> torch.Tensor:
        if window is None:
            return forward_padded(model, x).float()
        return sliding_window_logits(model, x, window, overlap, blend)

    if not tta:
        return one(images)
    out = None
    for dims in FLIPS:
        view = one(images.flip(dims)).flip(dims) if dims else one(images)
        out = view if out is None else out + view
    return out / len(FLIPS)


def logits_to_mask(logits: torch.Tensor, mode: str, threshold: Sequence[float] | None = None) -> torch.Tensor:
    """Hard prediction of one image's C x H x W logits: H x W class indices (multiclass: argmax; binary:
    logit > 0 as 0/1) or, in multilabel mode, C x H x W in {0, 1}. ``threshold`` (binary and multilabel,
    one per channel): sigmoid > t instead of logit > 0 (None: 0.5)."""
    if mode == MULTICLASS:
        if threshold is not None:
            raise ValueError(f"threshold={list(threshold)} given for a multiclass model (argmax takes no threshold)")
        return logits.argmax(0)
    logits = shift_logits(logits, threshold)
    if mode == BINARY:
        return (logits[0] > 0).long()
    if mode == MULTILABEL:
        return (logits > 0).long()
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
