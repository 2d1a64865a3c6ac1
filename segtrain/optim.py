"""Optimizers and per-step learning-rate schedules behind registries.

Schedules are multiplicative factors of the base learning rate evaluated at every optimizer step, with
an optional linear warm-up, so that epochs, gradient accumulation and resume all see the same curve.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from segtrain.registry import Registry

OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")

OPTIMIZERS.register("adamw")(torch.optim.AdamW)
OPTIMIZERS.register("adam")(torch.optim.Adam)
OPTIMIZERS.register("sgd")(torch.optim.SGD)


def build_optimizer(name: str, params: Iterable[torch.nn.Parameter], **kwargs) -> torch.optim.Optimizer:
    return OPTIMIZERS.build(name, params, **kwargs)


def _with_warmup(factor: Callable[[int], float], warmup_steps: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return factor(step - warmup_steps)

    return f


def _check(total_steps: int, warmup_steps: int) -> int:
    if total_steps <= 0:
        raise ValueError(f"scheduler needs total_steps > 0, got {total_steps}")
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"scheduler.warmup_steps must be in [0, {total_steps}), got {warmup_steps}")
    return total_steps - warmup_steps


@SCHEDULERS.register("poly")
def poly(optimizer: torch.optim.Optimizer, total_steps: int, power: float = 0.9, warmup_steps: int = 0) -> LambdaLR:
    """lr = base * (1 - t / T)^power: the segmentation standard (DeepLab)."""
    span = _check(total_steps, warmup_steps)
    return LambdaLR(optimizer, _with_warmup(lambda t: max(0.0, 1 - t / span) ** power, warmup_steps))


@SCHEDULERS.register("cosine")
def cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0, min_factor: float = 0.0
) -> LambdaLR:
    """Linear warm-up, then cosine decay from base to ``min_factor * base``."""
    span = _check(total_steps, warmup_steps)
    return LambdaLR(
        optimizer,
        _with_warmup(
            lambda t: min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(t, span) / span)),
            warmup_steps,
        ),
    )


@SCHEDULERS.register("onecycle")
def onecycle(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> LambdaLR:
    """One-cycle (Smith 2018) with cosine phases, as a factor of the configured (maximum) lr."""
    up = max(1, int(pct_start * total_steps))
    start, end = 1 / div_factor, 1 / (div_factor * final_div_factor)

    def f(t: int) -> float:
        if t < up:
            return start + (1 - start) * 0.5 * (1 - math.cos(math.pi * t / up))
        frac = min(1.0, (t - up) / max(1, total_steps - up))
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * frac))

    _check(total_steps, 0)
    return LambdaLR(optimizer, f)


@SCHEDULERS.register("step")
def step(
    optimizer: torch.optim.Optimizer, total_steps: int, step_size: int, gamma: float = 0.1, warmup_steps: int = 0
) -> LambdaLR:
    """lr = base * gamma^(t // step_size), ``step_size`` in optimizer steps."""
    _check(total_steps, warmup_steps)
    return LambdaLR(optimizer, _with_warmup(lambda t: gamma ** (t // step_size), warmup_steps))


@SCHEDULERS.register("constant")
def constant(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0) -> LambdaLR:
    _check(total_steps, warmup_steps)
    return LambdaLR(optimizer, _with_warmup(lambda t: 1.0, warmup_steps))


def build_scheduler(name: str, optimizer: torch.optim.Optimizer, total_steps: int, **kwargs) -> LambdaLR:
    return SCHEDULERS.build(name, optimizer, total_steps=total_steps, **kwargs)
