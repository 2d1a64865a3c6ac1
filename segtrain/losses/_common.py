"""What every loss shares: modes, input checks, float32 probabilities and the soft TP / FP / FN step.

Shapes (N images, C channels, S = H x W or D x H x W spatial dims):

- ``multiclass``: logits N x C x S, target N x S integer class indices (softmax over C).
- ``binary``: logits N x 1 x S, target N x S or N x 1 x S in {0, 1} (sigmoid).
- ``multilabel``: logits N x C x S, target N x C x S in {0, 1} (sigmoid per channel).

``ignore_index`` marks pixels that add nothing to a value or a gradient (multiclass and binary modes).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from segtrain.modes import BINARY, MODES, MULTICLASS, MULTILABEL

SIGMOID_MODES = (BINARY, MULTILABEL)

_SHAPES = {
    MULTICLASS: "logits N x C x H x W (or N x C x D x H x W) and an integer target N x H x W",
    BINARY: "logits N x 1 x H x W and a target N x H x W or N x 1 x H x W in {0, 1}",
    MULTILABEL: "logits N x C x H x W and a target N x C x H x W in {0, 1}",
}


# --------------------------------------------------------------------------- argument checks


def check_mode(mode: str, supported: Sequence[str] = MODES, loss: str = "this loss") -> str:
    """Return ``mode`` if ``loss`` supports it, else raise a ValueError that lists what it supports."""
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; expected one of {', '.join(MODES)}.")
    if mode not in supported:
        raise ValueError(f"{loss} does not support mode {mode!r}; it supports {', '.join(supported)}.")
    return mode


def check_ignore_index(ignore_index: int | None, mode: str) -> int | None:
    """``ignore_index`` must be an int or None; in multilabel mode it is not applied (warned once)."""
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise ValueError(f"ignore_index must be an integer class index or None, got {ignore_index!r}.")
    if mode == MULTILABEL:
        warnings.warn(
            "ignore_index is not applied in multilabel mode (targets there are per-channel 0/1 maps).",
            stacklevel=3,
        )
        return None
    return ignore_index


def check_nonnegative(name: str, value: float, loss: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{loss}: {name} must be a non-negative number, got {value!r}.")
    return float(value)


def check_class_vector(name: str, values: Sequence[float] | None, loss: str) -> Tensor | None:
    """A per-class list of non-negative numbers as a float64 tensor (cast to the logits' dtype later)."""
    if values is None:
        return None
    try:
        tensor = torch.as_tensor(values, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{loss}: {name} must be a list of numbers, got {values!r}.") from err
    if tensor.numel() == 0 or not torch.isfinite(tensor).all() or (tensor < 0).any():
        raise ValueError(f"{loss}: {name} must be a non-empty list of finite non-negative numbers, got {values!r}.")
    return tensor


def check_class_vector_length(name: str, vector: Tensor, num_classes: int, loss: str) -> None:
    if vector.numel() != num_classes:
        raise ValueError(f"{loss}: {name} has {vector.numel()} entries but the logits have {num_classes} classes.")


# --------------------------------------------------------------------------- input checks


def _shape_error(logits: Tensor, target: Tensor, mode: str) -> str:
    shapes = f"Got logits {tuple(logits.shape)} and target {tuple(target.shape)}"
    return f"{shapes}; {mode} mode expects {_SHAPES[mode]}."


def out_of_range(target: Tensor, low: float, high: float, ignore_index: int | None) -> Tensor | None:
    """The mask of target values outside [low, high] that are not ``ignore_index``, or None when there is none.
    Without an ignore_index one ``aminmax`` pass decides (the common case; the mask is made only for the error)."""
    if ignore_index is None:
        if target.numel() == 0:
            return None
        smallest, largest = target.aminmax()
        if not bool((smallest < low) | (largest > high)):
            return None
    bad = (target < low) | (target > high)
    if ignore_index is not None:
        bad &= target != ignore_index
    return bad if bool(bad.any()) else None


def check_inputs(logits: Tensor, target: Tensor, mode: str, ignore_index: int | None) -> Tensor:
    """Validate shapes and target values; return the target in canonical shape.

    multiclass: N x S (int64), every label in [0, C) or ``ignore_index``; binary: N x 1 x S, multilabel:
    N x C x S (floating, values in [0, 1] or ``ignore_index``: integer and boolean targets become float32,
    float64 for float64 logits). Errors say what was expected.
    """
    expected = _SHAPES[mode]
    if not isinstance(logits, Tensor) or not isinstance(target, Tensor):
        raise ValueError(f"Expected tensors in {mode} mode: {expected}.")
    if not logits.is_floating_point():
        raise ValueError(f"Logits must be a floating tensor, got {logits.dtype}.")
    if logits.ndim not in (4, 5):
        raise ValueError(f"Got logits of shape {tuple(logits.shape)}; {mode} mode expects {expected}.")
    n, c, *spatial = logits.shape
    if mode == MULTICLASS:
        if tuple(target.shape) != (n, *spatial):
            raise ValueError(_shape_error(logits, target, mode))
        if target.is_floating_point() or target.dtype == torch.bool:
            raise ValueError(f"A multiclass target holds integer class indices, got dtype {target.dtype}.")
        bad = out_of_range(target, 0, c - 1, ignore_index)
        if bad is not None:
            value = int(target[bad][0])
            ignore = f" and is not ignore_index={ignore_index}" if ignore_index is not None else ""
            raise ValueError(f"Target holds class {value}, which is outside [0, {c}) for {c}-channel logits{ignore}.")
        return target.long()
    if mode == BINARY:
        if c != 1:
            raise ValueError(
                f"Binary mode expects 1 channel but the logits {tuple(logits.shape)} have {c}; "
                "use multiclass or multilabel mode for several channels."
            )
        if tuple(target.shape) == (n, *spatial):
            target = target.unsqueeze(1)
        if tuple(target.shape) != (n, 1, *spatial):
            raise ValueError(_shape_error(logits, target, mode))
    elif tuple(target.shape) != tuple(logits.shape):
        raise ValueError(_shape_error(logits, target, mode))
    if not target.is_floating_point():  # every sigmoid-mode loss computes with a float target
        target = target.to(compute_dtype(logits))
    bad = out_of_range(target, 0, 1, ignore_index)
    if bad is not None:
        raise ValueError(f"A {mode} target holds values in [0, 1], got {target[bad].flatten()[0].item()}.")
    return target


# --------------------------------------------------------------------------- precision


def compute_dtype(logits: Tensor) -> torch.dtype:
    """float64 stays float64; float16 / bfloat16 / float32 are computed in float32."""
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


_AUTOCAST_DEVICES = ("cuda", "cpu", "xpu", "mps")


def full_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """Switch autocast off, so that sums are taken in float32 even inside a mixed-precision step."""
    if device.type in _AUTOCAST_DEVICES and torch.is_autocast_enabled(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


# --------------------------------------------------------------------------- shared steps


def probabilities(logits: Tensor, mode: str) -> Tensor:
    """Softmax over channels (multiclass) or sigmoid (binary, multilabel), in float32 or float64."""
    x = logits.to(compute_dtype(logits))
    return x.softmax(1) if mode == MULTICLASS else x.sigmoid()


def valid_mask(target: Tensor, ignore_index: int | None) -> Tensor | None:
    """Boolean mask of pixels that count (same shape as the canonical target), or None for all."""
    if ignore_index is None:
        return None
    return target != ignore_index


def one_hot(target: Tensor, num_classes: int, valid: Tensor | None) -> Tensor:
    """Boolean N x C x S one-hot of an N x S class map; ignored pixels get an all-False row."""
    if valid is not None:
        target = torch.where(valid, target, -1)
    classes = torch.arange(num_classes, device=target.device).view(1, num_classes, *([1] * (target.ndim - 1)))
    return target.unsqueeze(1) == classes


def masked_mean(values: Tensor, valid: Tensor | None) -> Tensor:
    """Mean of ``values`` over the elements where ``valid`` holds (all when None; ``valid`` broadcasts);
    0 when nothing is kept. Left-out elements get exactly zero gradient."""
    if valid is None:
        return values.mean()
    valid = valid.expand_as(values)
    return torch.where(valid, values, 0.0).sum() / valid.sum().clamp_min(1).to(values.dtype)


def soft_sums(
    logits: Tensor,
    target: Tensor,
    mode: str = MULTICLASS,
    ignore_index: int | None = None,
    batch: bool = True,
    squared: bool = False,
    *,
    check: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class ``tp = sum p g``, ``sum p`` and ``sum g``: the step every region loss shares.

    p: the probabilities (softmax or sigmoid of the logits), g: the one-hot target (``squared``: ``sum p^2``
    and ``sum g^2`` in place of ``sum p`` and ``sum g``, MONAI's ``squared_pred``). Sums run over the batch
    and space (``batch=True``: shape C) or over space only (N x C). Ignored pixels are left out of every
    sum. Sums are float32 (float64 for float64 logits), also under autocast.
    """
    if check:
        target = check_inputs(logits, target, mode, ignore_index)
    elif mode == BINARY and target.ndim == logits.ndim - 1:
        target = target.unsqueeze(1)
    with full_precision(logits.device):
        return class_sums(probabilities(logits, mode), target, mode, ignore_index, batch, squared)


def class_sums(
    p: Tensor, target: Tensor, mode: str, ignore_index: int | None, batch: bool, squared: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """``soft_sums`` from the probabilities ``p`` (N x C x S) and the canonical target."""
    valid = valid_mask(target, ignore_index)
    if mode == MULTICLASS:
        g = one_hot(target, p.shape[1], valid).to(p.dtype)  # ignored pixels: an all-zero row
        keep = None if valid is None else valid.unsqueeze(1)
    else:
        g = target.to(p.dtype)
        keep = valid
    if keep is not None:
        p = torch.where(keep, p, 0.0)
        g = torch.where(keep, g, 0.0)
    if squared:
        p_sum, g_sum = p * p, g * g
    else:
        p_sum, g_sum = p, g
    dims = tuple(range(2, p.ndim))
    if batch:
        dims = (0, *dims)
    return (p * g).sum(dims), p_sum.sum(dims), g_sum.sum(dims)


# --------------------------------------------------------------------------- base class


class LossInfo(NamedTuple):
    """A loss's row of the README table (besides its name and modes)."""

    formula: str
    paper: str
    use_when: str  # the "reach for it when" column


class SegmentationLoss(nn.Module):
    """Base of every loss: checks the inputs once, switches autocast off, then calls ``compute``.

    Subclasses set ``info`` (a ``LossInfo``: the docs and README table are generated from it), ``modes`` when
    they support fewer than all, and implement ``compute(x, target)`` where ``x`` is float32/float64 logits and
    ``target`` the canonical target of ``check_inputs``; ``name`` is the name the class is registered under. A
    subclass's constructor takes its own keywords and passes the rest (``**base``: ``mode``, ``ignore_index``)
    on; the loss registry lists them all.
    """

    name: ClassVar[str] = ""
    modes: ClassVar[tuple[str, ...]] = MODES
    info: ClassVar[LossInfo] = LossInfo("", "", "")
    aux_inputs: tuple[str, ...] = ()  # optional extra inputs compute() accepts as keywords

    def __init__(self, *, mode: str = MULTICLASS, ignore_index: int | None = None) -> None:
        super().__init__()
        self.mode = check_mode(mode, self.modes, f"Loss '{self.name}'")
        self.ignore_index = check_ignore_index(ignore_index, mode)

    def forward(self, logits: Tensor, target: Tensor, **aux: Tensor) -> Tensor:
        """``aux``: batch entries named in ``aux_inputs`` (e.g. ``distance`` maps precomputed by the data
        pipeline for the boundary loss); a loss computes them itself when they are not given."""
        unknown = sorted(set(aux) - set(self.aux_inputs))
        if unknown:
            takes = f"also takes {list(self.aux_inputs)}" if self.aux_inputs else "takes only logits and target"
            raise ValueError(f"Loss '{self.name}' got unexpected inputs {unknown}; it {takes}.")
        target = check_inputs(logits, target, self.mode, self.ignore_index)
        with full_precision(logits.device):
            x = logits.to(compute_dtype(logits))
            return self.compute(x, target, **aux)

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, ignore_index={self.ignore_index}"
