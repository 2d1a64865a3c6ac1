"""Per-channel decision thresholds for sigmoid outputs (binary and multilabel modes), tuned on a split.

On imbalanced data the Dice-optimal cut of a sigmoid is rarely 0.5; the standard remedy is to choose it on
the validation split. ``ThresholdSweep`` counts, over a whole split and for every threshold t of a fixed
grid, each channel's TP_t, FP_t and FN_t of the prediction ``p > t``; pooled Dice_t = 2TP_t / (2TP_t + FP_t
+ FN_t) (the per-epoch ``SegMetrics`` definition), and ``choose_thresholds`` takes its argmax per channel.

Comparisons run in logit space, ``x > logit(t)`` with logit(t) = log(t / (1 - t)) as float32, so that the
counts here and the hard predictions made with ``shift_logits`` (x - logit(t) > 0, which for IEEE floats
is exactly x > logit(t)) agree pixel for pixel. logit(0.5) = 0: the default threshold leaves logits as
they are. Multiclass (argmax) outputs take no threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from segtrain.modes import BINARY, MULTILABEL

# start, stop, step: the thresholds 0.05, 0.10, ..., 0.95 (written into metrics.json as it is)
GRID_SPEC = (0.05, 0.95, 0.05)
DEFAULT = 0.5


def threshold_grid(spec: Sequence[float] = GRID_SPEC) -> list[float]:
    """The thresholds of ``(start, stop, step)``, both ends included, rounded to 6 decimals."""
    start, stop, step = (float(v) for v in spec)
    n = int(round((stop - start) / step)) + 1
    grid = [round(start + i * step, 6) for i in range(n)]
    for t in grid:
        check_probability(t, "threshold grid")
    return grid


def check_probability(value: Any, key: str) -> float:
    """``value`` as a float strictly inside (0, 1); otherwise a ValueError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"{key}={value!r}: a threshold must be a number strictly between 0 and 1")
    return float(value)


def check_thresholds(value: Any, num_channels: int, key: str = "threshold") -> list[float]:
    """One threshold per sigmoid channel: a number (used for every channel) or a list of ``num_channels``."""
    if isinstance(value, (list, tuple)):
        if len(value) != num_channels:
            raise ValueError(f"{key}={list(value)}: expected {num_channels} values (one per channel) or one number")
        return [check_probability(v, f"{key}[{i}]") for i, v in enumerate(value)]
    return [check_probability(value, key)] * num_channels


def logit_offsets(thresholds: Sequence[float], device: torch.device | str = "cpu") -> torch.Tensor:
    """float32 logit(t) = log(t / (1 - t)) of each threshold (the cut in logit space)."""
    return torch.tensor([math.log(t / (1.0 - t)) for t in thresholds], dtype=torch.float32, device=device)


def shift_logits(logits: torch.Tensor, thresholds: Sequence[float] | None) -> torch.Tensor:
    """``logits`` (N x C x ... or C x ...; C = len(thresholds)) minus each channel's logit(t), so that the
    usual rule ``logit > 0`` predicts ``sigmoid(logit) > t``. None or all 0.5: ``logits`` itself."""
    if thresholds is None or all(t == DEFAULT for t in thresholds):
        return logits
    dim = 1 if logits.dim() >= 4 else 0
    if logits.shape[dim] != len(thresholds):
        raise ValueError(
            f"{len(thresholds)} threshold(s) for logits of shape {tuple(logits.shape)} ({logits.shape[dim]} channels)"
        )
    offsets = logit_offsets(thresholds, logits.device).to(logits.dtype)
    shape = [1] * logits.dim()
    shape[dim] = len(thresholds)
    return logits - offsets.view(shape)


class ThresholdSweep:
    """TP, FP and FN per channel and grid threshold, accumulated over a split on the logits' device.

    ``update(logits, target)``: logits N x C x ... (binary: C = 1), target N x ... or N x 1 x ...
    (binary, {0, 1}, ``ignore_index`` left out) or N x C x ... (multilabel, {0, 1}, float targets rounded).
    Each pixel is bucketed once (``torch.bucketize`` against the grid's logits): the pixel is predicted
    positive at threshold k exactly when its bucket is above k, so reverse cumulative sums of the bucket
    counts give every threshold's counts at once.
    """

    def __init__(
        self, mode: str, num_channels: int, ignore_index: int | None = None, grid: Sequence[float] | None = None
    ) -> None:
        if mode not in (BINARY, MULTILABEL):
            raise ValueError(f"threshold tuning needs sigmoid outputs (binary or multilabel mode), got mode={mode!r}")
        if mode == BINARY and num_channels != 1:
            raise ValueError(f"binary mode has one output channel, got num_channels={num_channels}")
        self.mode, self.num_channels, self.ignore_index = mode, int(num_channels), ignore_index
        self.grid = list(grid) if grid is not None else threshold_grid()
        self._pos: torch.Tensor | None = None  # C x (K + 1) bucket counts of target-positive pixels
        self._neg: torch.Tensor | None = None

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        n, c = logits.shape[:2]
        if c != self.num_channels:
            raise ValueError(f"ThresholdSweep: logits {tuple(logits.shape)} have {c} channels, not {self.num_channels}")
        if target.numel() != logits.numel():
            raise ValueError(
                f"ThresholdSweep ({self.mode}): logits {tuple(logits.shape)} and target {tuple(target.shape)} differ"
            )
        x = logits.detach().float().reshape(n, c, -1)
        tgt = target.detach().reshape(n, c, -1)
        tgt = tgt.round().long() if tgt.is_floating_point() else tgt.long()
        valid = torch.ones_like(tgt, dtype=torch.bool)
        if self.ignore_index is not None and self.mode == BINARY:
            valid = tgt != self.ignore_index
        k = len(self.grid)
        bounds = logit_offsets(self.grid, x.device)
        bucket = torch.bucketize(x, bounds)  # number of grid logits strictly below x: positive at k < bucket
        channel = torch.arange(c, device=x.device).view(1, c, 1)
        # one bin per channel x bucket x {negative, positive}; ignored pixels go to a spare bin
        flat = (channel * (k + 1) + bucket) * 2 + (tgt == 1).long()
        size = c * (k + 1) * 2
        flat = torch.where(valid, flat, size).reshape(-1)
        counts = torch.zeros(size + 1, dtype=torch.int64, device=x.device)
        counts.scatter_add_(0, flat, torch.ones_like(flat))
        counts = counts[:size].view(c, k + 1, 2)
        if self._pos is None:
            self._neg, self._pos = counts[..., 0].clone(), counts[..., 1].clone()
        else:
            self._neg += counts[..., 0]
            self._pos += counts[..., 1]

    def counts(self) -> dict[str, np.ndarray]:
        """``{"tp", "fp", "fn"}``, each C x K int64 (K = len(grid))."""
        if self._pos is None:
            raise ValueError("ThresholdSweep: no batch was added")
        pos, neg = self._pos.cpu().numpy(), self._neg.cpu().numpy()
        # predicted positive at threshold k: buckets k + 1 .. K
        tp = np.cumsum(pos[:, ::-1], axis=1)[:, ::-1][:, 1:]
        fp = np.cumsum(neg[:, ::-1], axis=1)[:, ::-1][:, 1:]
        return {"tp": tp, "fp": fp, "fn": pos.sum(1, keepdims=True) - tp}

    def dice(self) -> np.ndarray:
        """C x K pooled Dice; NaN where a channel has no positive pixel in target or prediction."""
        c = self.counts()
        denom = 2 * c["tp"] + c["fp"] + c["fn"]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, 2 * c["tp"] / np.maximum(denom, 1), np.nan)

    def positives(self) -> np.ndarray:
        """Target-positive pixels per channel over the split."""
        if self._pos is None:
            raise ValueError("ThresholdSweep: no batch was added")
        return self._pos.sum(1).cpu().numpy()

    def dice_at(self, thresholds: Sequence[float]) -> list[float]:
        """Each channel's pooled Dice at its threshold (which must lie on the grid)."""
        dice = self.dice()
        return [float(dice[ch, self._index(t)]) for ch, t in enumerate(thresholds)]

    def _index(self, t: float) -> int:
        for i, g in enumerate(self.grid):
            if math.isclose(g, t, abs_tol=1e-9):
                return i
        raise ValueError(f"threshold {t} is not on the grid {self.grid}")


def choose_thresholds(dice: np.ndarray, grid: Sequence[float], positives: Sequence[int] | None = None) -> list[float]:
    """Per channel (rows of the C x K ``dice``), the grid threshold of highest Dice; ties go to the one
    closest to 0.5 (then the lower). A channel whose Dice is undefined everywhere, or that has no positive
    pixel (``positives``: then Dice is 0 or undefined at every threshold, which says nothing), keeps 0.5."""
    grid_arr = np.asarray(grid, dtype=np.float64)
    order = np.lexsort((grid_arr, np.abs(grid_arr - DEFAULT)))  # preference among equal Dice values
    chosen = []
    for ch, row in enumerate(np.asarray(dice, dtype=np.float64)):
        if np.all(np.isnan(row)) or (positives is not None and positives[ch] == 0):
            chosen.append(DEFAULT)
            continue
        best = np.nanmax(row)
        chosen.append(float(grid_arr[next(i for i in order if row[i] == best)]))
    return chosen
