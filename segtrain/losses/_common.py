"""What every loss shares: modes, input checks, float32 probabilities and the soft TP / FP / FN step.

Shapes (N images, C channels, S = H x W or D x H x W spatial dims):

- ``multiclass``: logits N x C x S, target N x S integer class indices (softmax over C).
- ``binary``: logits N x 1 x S, target N x S or N x 1 x S in {0, 1} (sigmoid).
- ``multilabel``: logits N x C x S, target N x C x S in {0, 1} (sigmoid per channel).

``ignore_index`` marks pixels that add nothing to a value or a gradient (multiclass and binary modes).
"""

from __future__ import annotations

import contextlib
import contextvars
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

BINARY = "binary"
MULTICLASS = "multiclass"
MULTILABEL = "multilabel"
MODES = (MULTICLASS, BINARY, MULTILABEL)
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


def _within(target: Tensor, low: float, high: float) -> bool:
    """One pass and one sync: do all values lie in [low, high]? (the common case, checked first)"""
    if target.numel() == 0:
        return True
    if target.dtype == torch.bool:
        return True
    lo, hi = torch.aminmax(target)
    return bool((lo >= low) & (hi <= high))


def _shape_error(logits: Tensor, target: Tensor, mode: str) -> str:
    shapes = f"Got logits {tuple(logits.shape)} and target {tuple(target.shape)}"
    return f"{shapes}; {mode} mode expects {_SHAPES[mode]}."


def check_inputs(
    logits: Tensor, target: Tensor, mode: str, ignore_index: int | None, *, class_range: bool = True
) -> Tensor:
    """Validate shapes and target values; return the target in canonical shape.

    multiclass: N x S (int64); binary: N x 1 x S, multilabel: N x C x S (floating: integer and boolean
    targets become float32, float64 for float64 logits). Errors say what was expected.
    ``class_range=False`` skips the pass that checks multiclass labels lie in [0, C) (see
    ``SegmentationLoss.labels_index_checked``).
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
        if not class_range or _within(target, 0, c - 1):
            return target.long()
        bad = (target < 0) | (target >= c)
        if ignore_index is not None:
            bad &= target != ignore_index
        if bool(bad.any()):
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
    else:
        if tuple(target.shape) != tuple(logits.shape):
            raise ValueError(_shape_error(logits, target, mode))
    if target.dtype == torch.bool:
        return target.to(compute_dtype(logits))
    if not target.is_floating_point():
        # every sigmoid-mode loss computes with a float target: convert once, and check the float copy
        # (half the bytes of an int64 mask)
        target = target.to(compute_dtype(logits))
    if _within(target, 0, 1):
        return target
    bad = (target < 0) | (target > 1)
    if ignore_index is not None:
        bad &= target != ignore_index
    if bool(bad.any()):
        raise ValueError(f"A {mode} target holds values in [0, 1], got {target[bad].flatten()[0].item()}.")
    return target


# --------------------------------------------------------------------------- precision


def compute_dtype(logits: Tensor) -> torch.dtype:
    """float64 stays float64; float16 / bfloat16 / float32 are computed in float32."""
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


_AUTOCAST_DEVICES = ("cuda", "cpu", "xpu", "mps")
_NO_AUTOCAST = contextlib.nullcontext()


def full_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """Switch autocast off, so that sums are taken in float32 even inside a mixed-precision step (a no-op
    context when autocast is off: entering ``torch.autocast`` costs ~10 us, a tenth of a small loss call)."""
    if device.type in _AUTOCAST_DEVICES and torch.is_autocast_enabled(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return _NO_AUTOCAST


_SHARED_PROBABILITIES: contextvars.ContextVar[dict | None] = contextvars.ContextVar("probabilities", default=None)


@contextlib.contextmanager
def shared_probabilities() -> Iterator[None]:
    """Inside this block ``probabilities`` computes the softmax / sigmoid of a logits tensor once: the parts
    of a compound loss (dice + boundary, dice + tversky, ...) share it, and its backward, instead of each
    recomputing it."""
    token = _SHARED_PROBABILITIES.set({})
    try:
        yield
    finally:
        _SHARED_PROBABILITIES.reset(token)


def probabilities(logits: Tensor, mode: str) -> Tensor:
    """Softmax over channels (multiclass) or sigmoid (binary, multilabel), in float32 or float64."""
    cache = _SHARED_PROBABILITIES.get()
    key = (id(logits), mode == MULTICLASS)
    if cache is not None and key in cache:
        return cache[key][1]
    x = logits.to(compute_dtype(logits))
    p = x.softmax(1) if mode == MULTICLASS else x.sigmoid()
    if cache is not None:
        cache[key] = (logits, p)  # the logits are kept alive, so their id cannot be reused meanwhile
    return p


class LogSoftmaxAtLabel(torch.autograd.Function):
    """Each pixel's log-probability of its label, ``log softmax(x)_y`` (N x S from N x C x S logits), with
    the gradient ``G (onehot(y) - softmax(x))`` written out for the upstream gradient G.

    Backward turns the saved log-softmax into the softmax and adds G at the label: two passes over
    N x C x S where autograd's gather + log-softmax backward fill a zero tensor, scatter into it and run
    the log-softmax backward. CE, weighted CE and multiclass focal are short formulas on this N x S tensor.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, labels: Tensor) -> Tensor:
        log_p = x.log_softmax(1)
        index = labels.unsqueeze(1)
        ctx.save_for_backward(log_p, index)
        return log_p.gather(1, index).squeeze(1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        log_p, index = ctx.saved_tensors
        grad = grad.unsqueeze(1)
        dx = torch.exp(log_p).mul_(grad.neg())
        return dx.scatter_add_(1, index, grad), None


class SoftmaxWithLabelLogProb(torch.autograd.Function):
    """The softmax p (N x C x S) and each pixel's ``log p_y`` (N x S) from one log-softmax, with one
    backward for both: ``dx = p (G_p - sum_c p_c G_p,c - G_y) + G_y onehot(y)``. A compound of a pixel-wise
    part (ce, focal) and a region part (dice, ...) then costs one softmax pass, forward and backward.
    Alone, a pixel-wise loss uses ``LogSoftmaxAtLabel``: making p in the forward costs it 5% (measured).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        log_p = x.log_softmax(1)
        index = labels.unsqueeze(1)
        log_p_y = log_p.gather(1, index).squeeze(1)
        p = log_p.exp_()
        ctx.save_for_backward(p, index)
        ctx.set_materialize_grads(False)
        return p, log_p_y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_p: Tensor | None, grad_y: Tensor | None) -> tuple[Tensor | None, ...]:
        p, index = ctx.saved_tensors
        grad_y = None if grad_y is None else grad_y.unsqueeze(1)
        if grad_p is None:
            dx = p.mul(grad_y.neg()) if grad_y is not None else torch.zeros_like(p)
        else:
            n, c = p.shape[:2]
            if not any(grad_p.stride()[2:]):
                # one value per image and class (the gradient of a sum over space): sum_c p_c a_c as a
                # small batched matmul, without the N x C x S product (3-D batch: 0.07 vs 0.33 ms)
                grad_p = grad_p.reshape(n, c, -1)[:, :, :1]
                shift = torch.bmm(grad_p.transpose(1, 2), p.reshape(n, c, -1)).view(n, 1, *p.shape[2:])
                grad_p = grad_p.view(n, c, *([1] * (p.ndim - 2)))
            else:
                shift = (p * grad_p).sum(1, keepdim=True)
            if grad_y is not None:
                shift.add_(grad_y)
            dx = torch.sub(grad_p, shift).mul_(p)
        if grad_y is not None:
            dx.scatter_add_(1, index, grad_y)
        return dx, None


def label_log_probability(x: Tensor, labels: Tensor) -> Tensor:
    """``log softmax(x)_y`` per pixel (N x S; ``labels`` N x S class indices, ignored pixels pointing at a
    valid class). Inside ``shared_probabilities``, the softmax comes with it for the compound's later
    parts, and one backward serves both."""
    cache = _SHARED_PROBABILITIES.get()
    key = (id(x), True)
    if cache is None or key in cache:
        return LogSoftmaxAtLabel.apply(x, labels)
    p, log_p_y = SoftmaxWithLabelLogProb.apply(x, labels)
    cache[key] = (x, p)
    return log_p_y


def per_class(values: Tensor, labels: Tensor) -> Tensor:
    """``values[labels]`` for a per-class vector: ``index_select`` on the flat labels, 5x faster on a CPU
    than advanced indexing (3-D batch: 0.17 vs 0.8 ms); it raises for a label outside the vector too."""
    return values.index_select(0, labels.reshape(-1)).view(labels.shape)


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


# Up to this many classes the per-class sums run over a dense class mask; above it, over gathered
# probabilities (index ops cost about 2 ns per pixel on a CPU, the dense pass about 0.1 ns per pixel and
# class: 3-D 4-class batches were 1.2x faster dense, 21-class 2-D ones 1.3x faster gathered).
DENSE_MAX_CLASSES = 8


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
        p = probabilities(logits, mode)
        valid = valid_mask(target, ignore_index)
        if mode == MULTICLASS:
            return multiclass_sums(p, target, valid, batch, squared)
        n, c = p.shape[:2]
        g = target.to(p.dtype)
        keep = None
        if valid is not None:
            g = torch.where(valid, g, 0.0)
            keep = valid.reshape(n, c, -1).to(p.dtype)
        return DenseCounts.apply(p.reshape(n, c, -1), g.reshape(n, c, -1), keep, batch, squared)


class DenseCounts(torch.autograd.Function):
    """``sum p g``, ``sum p`` (``sum p^2``) and ``sum g`` (``sum g^2``) of N x C x S probabilities p and a
    target g (soft labels or a one-hot class mask, in p's dtype) per class or per image and class, with
    ignored pixels out (``keep``: N x 1 x S or N x C x S, 0 where ignored; g is 0 there already).

    ``one_hot``: p is a softmax (its channels sum to 1) and g a one-hot mask (a pixel's row is 0 where
    ignored). Then the C x C matrix ``M = p g^T`` of one batched matmul holds all three: ``tp`` on its
    diagonal, ``sum p`` over kept pixels in its row sums and ``sum g`` in its column sums (the channels of p
    sum to 1): one read of p and g where the three sums take four passes and a product tensor.

    The backward is written out: ``dL/dp = a (2 a p when squared) + b g`` for the upstream gradients a of
    ``sum p`` and b of ``sum p g``, in one allocation where autograd's chain makes three.
    """

    @staticmethod
    def forward(
        ctx: Any, p: Tensor, g: Tensor, keep: Tensor | None, batch: bool, squared: bool, one_hot: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        if one_hot and not squared:
            m = torch.bmm(p, g.transpose(1, 2))  # N x C x C, m[n, i, j] = sum_s p_i g_j
            tp, sum_p, sum_g = m.diagonal(dim1=1, dim2=2), m.sum(2), m.sum(1)
            if batch:
                tp, sum_p, sum_g = tp.sum(0), sum_p.sum(0), sum_g.sum(0)
        else:
            dims = (0, 2) if batch else (2,)
            if batch and p.shape[1] == 1:  # binary: one dot product, no product tensor (3x faster)
                tp = torch.dot(p.reshape(-1), g.reshape(-1)).view(1)
            else:
                tp = (p * g).sum(dims)
            src = p * p if squared else p
            if keep is not None:
                src = src * keep
            sum_p = src.sum(dims)
            sum_g = (g * g if squared else g).sum(dims)
        ctx.save_for_backward(p if squared else None, g, keep)
        ctx.batch, ctx.squared, ctx.shape = batch, squared, p.shape
        ctx.mark_non_differentiable(sum_g)
        return tp, sum_p, sum_g

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_tp: Tensor, grad_sum_p: Tensor, _: Tensor) -> tuple[Tensor | None, ...]:
        p, g, keep = ctx.saved_tensors
        n, c, _s = ctx.shape
        a = (grad_sum_p.expand(n, c) if ctx.batch else grad_sum_p).unsqueeze(2)
        b = (grad_tp.expand(n, c) if ctx.batch else grad_tp).unsqueeze(2)
        grad = torch.mul(g, b)
        if ctx.squared:
            grad.addcmul_(p, a if keep is None else a * keep, value=2)
        elif keep is None:
            grad.add_(a)
        else:
            grad.addcmul_(keep, a)
        return grad, None, None, None, None, None


def multiclass_sums(
    p: Tensor, target: Tensor, valid: Tensor | None, batch: bool, squared: bool, p_y: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """soft_sums for softmax probabilities p and a class-index target: over a dense class mask
    (``DenseCounts``) up to ``DENSE_MAX_CLASSES`` classes, and always for deterministic CUDA runs (index_add
    uses atomics there); else without a one-hot tensor. ``p_y``: each pixel's probability of its own
    class (N x S, ignored pixels pointing at class 0), when the caller has it already; that saves the
    gather, the main cost of the path without a mask (exp_log 3-D: 2.5x CE that way, 3.0x dense)."""
    n, c = p.shape[:2]
    deterministic_cuda = p.is_cuda and torch.are_deterministic_algorithms_enabled()
    if (c <= DENSE_MAX_CLASSES and p_y is None) or deterministic_cuda:
        # a float one-hot written by one scatter (half the time of a compare plus a conversion); an
        # ignored pixel scatters its 0 from ``keep`` into class 0
        labels = target.reshape(n, 1, -1)
        keep = None if valid is None else valid.reshape(n, 1, -1).to(p.dtype)
        if keep is None:
            mask = p.new_zeros(n, c, labels.shape[2]).scatter_(1, labels, 1.0)
        else:
            mask = p.new_zeros(n, c, labels.shape[2]).scatter_(1, torch.where(keep > 0, labels, 0), keep)
        return DenseCounts.apply(p.reshape(n, c, -1), mask, keep, batch, squared, True)
    return _gathered_sums(p, target, valid, batch, squared, p_y)


def _gathered_sums(
    p: Tensor, target: Tensor, valid: Tensor | None, batch: bool, squared: bool, p_y: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """TP gathers each pixel's probability of its own class and adds it into that class's bin, the target
    counts come from a bincount, so only ``sum p`` reads all N x C x S probabilities."""
    n, c = p.shape[:2]
    probs = p.reshape(n, c, -1)
    labels = target.reshape(n, -1)
    if valid is not None:
        keep = valid.reshape(n, -1)
        labels = torch.where(keep, labels, 0)
    # bins: class (batch sums) or image x class (per image)
    bins = labels if batch else labels + c * torch.arange(n, device=labels.device).unsqueeze(1)
    size = c if batch else n * c
    p_y = probs.gather(1, labels.unsqueeze(1)).squeeze(1) if p_y is None else p_y.reshape(n, -1)
    kept_bins = bins if valid is None else bins[keep]
    sum_g = torch.bincount(kept_bins.flatten(), minlength=size).to(p.dtype)
    if valid is not None:
        p_y = torch.where(keep, p_y, 0.0)
    tp = p_y.new_zeros(size).index_add(0, bins.flatten(), p_y.flatten())
    if squared:
        probs = probs * probs
    if valid is None:
        sum_p = probs.sum(2)
    else:
        sum_p = torch.einsum("ncs,ns->nc", probs, keep.to(p.dtype))
    sum_p = sum_p.sum(0) if batch else sum_p.reshape(-1)
    if not batch:
        tp, sum_p, sum_g = tp.view(n, c), sum_p.view(n, c), sum_g.view(n, c)
    return tp, sum_p, sum_g


# --------------------------------------------------------------------------- base class


class SegmentationLoss(nn.Module):
    """Base of every loss: checks the inputs once, switches autocast off, then calls ``compute``.

    Subclasses set the metadata the docs and README table are generated from (``name``, ``modes``,
    ``formula``, ``paper``) and implement ``compute(x, target)`` where ``x`` is float32/float64 logits and
    ``target`` the canonical target of ``check_inputs``.
    """

    name: ClassVar[str] = ""
    modes: ClassVar[tuple[str, ...]] = MODES
    formula: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    use_when: ClassVar[str] = ""  # the README's "reach for it when" column
    aux_inputs: tuple[str, ...] = ()  # optional extra inputs compute() accepts as keywords
    # True when, in multiclass mode, every label reaches a bounds-checked gather / scatter / index (which
    # raise on a CPU for a class outside [0, C)): on a CPU the up-front range check, a full extra pass over
    # the target (5% of a 3-D Dice call), is then left to that op, and its error is replaced by
    # check_inputs' message. CUDA keeps the check (a bad index there is a device assert). Lovasz and the
    # boundary loss build one-hot masks by comparison, so they keep it everywhere.
    labels_index_checked: bool = False

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
        deferred = self.labels_index_checked and self.mode == MULTICLASS and logits.device.type == "cpu"
        target = check_inputs(logits, target, self.mode, self.ignore_index, class_range=not deferred)
        with full_precision(logits.device):
            x = logits.to(compute_dtype(logits))
            try:
                return self.compute(x, target, **aux) if aux else self.compute(x, target)
            except (RuntimeError, IndexError):
                if deferred:  # a class outside [0, C) made the op fail: say so as check_inputs does
                    check_inputs(logits, target, self.mode, self.ignore_index)
                raise

    def compute(self, x: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, ignore_index={self.ignore_index}"


def masked_mean(values: Tensor, valid: Tensor | None) -> Tensor:
    """Mean over the elements where ``valid`` holds (all when None); 0 when nothing is valid."""
    if valid is None:
        return values.mean()
    valid = valid.expand_as(values)
    total = torch.where(valid, values, 0.0).sum()
    return total / valid.sum().clamp_min(1).to(values.dtype)
