"""Keyword checks of the specialised losses (topology, distance, hard-pixel mining, unified focal, MCC): each
raises a ValueError naming the loss, the keyword, the range it must lie in and the value it got."""

from __future__ import annotations


def _number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def check_unit(name: str, value: float, loss: str) -> float:
    """A number in [0, 1] (alpha, beta, weight, delta, gamma)."""
    if not _number(value) or not 0 <= value <= 1:
        raise ValueError(f"{loss}: {name} must be a number in [0, 1], got {value!r}.")
    return float(value)


def check_half_open(name: str, value: float, high: float, loss: str) -> float:
    """A number in (0, high] (topk's k, ohem_ce's thresh)."""
    if not _number(value) or not 0 < value <= high:
        raise ValueError(f"{loss}: {name} must be a number in (0, {high:g}], got {value!r}.")
    return float(value)


def check_positive(name: str, value: float, loss: str) -> float:
    if not _number(value) or not value > 0:
        raise ValueError(f"{loss}: {name} must be a number > 0, got {value!r}.")
    return float(value)


def check_smooth(value: float, loss: str) -> float:
    if not _number(value) or not value >= 0:
        raise ValueError(f"{loss}: smooth must be a number >= 0, got {value!r}.")
    return float(value)


def check_integer(name: str, value: int, low: int, loss: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{loss}: {name} must be an integer >= {low}, got {value!r}.")
    return value


def check_flag(name: str, value: bool, loss: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{loss}: {name} must be true or false, got {value!r}.")
    return value
