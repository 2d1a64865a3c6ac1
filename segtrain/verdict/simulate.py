"""Sweeps drawn from a known model, to measure how often a verdict is wrong (docs/verdict.md).

    y = simulate_scores(rng, n_configs=5, n_seeds=3, n_cases=200, seed_sd=0.05, effect=0.03)
    v = summarize(as_records(y), higher_is_better=True)

The model is the one segtrain.verdict.compare assumes, on the scale of a per-case Dice:

    y[k, s, i] = clip(case_i + effect_k + g[k, i] + u[k, s] + e[k, s, i], 0, 1)

case_i ~ Beta(4, 2.5) (mean 0.62, SD 0.18; clipping adds cases at 0 and 1 as real Dice has), g the
configuration-by-case suitability (SD ``interaction_sd``, mean 0 over cases, so it is no difference on
average), u the seed's effect on the model (SD ``seed_sd``), e the seed's effect case by case (SD
``noise_sd``). Configuration 0 is better than every other one by ``effect`` (0 = an A/A sweep: every
configuration is the same).
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_records", "simulate_scores"]


def simulate_scores(
    rng: np.random.Generator,
    *,
    n_configs: int,
    n_seeds: int,
    n_cases: int,
    seed_sd: float,
    effect: float = 0.0,
    interaction_sd: float = 0.02,
    noise_sd: float = 0.05,
) -> np.ndarray:
    """A (n_configs, n_seeds, n_cases) array of per-case scores in [0, 1] from the model above."""
    if n_configs < 1 or n_seeds < 1 or n_cases < 1:
        raise ValueError(f"need at least one configuration, seed and case, got {n_configs}, {n_seeds}, {n_cases}")
    if min(seed_sd, interaction_sd, noise_sd) < 0:
        raise ValueError("standard deviations must be >= 0")
    case = rng.beta(4.0, 2.5, n_cases)
    shift = np.full(n_configs, -float(effect))
    shift[0] = 0.0
    g = rng.normal(0.0, interaction_sd, (n_configs, 1, n_cases))
    u = rng.normal(0.0, seed_sd, (n_configs, n_seeds, 1))
    e = rng.normal(0.0, noise_sd, (n_configs, n_seeds, n_cases))
    return np.clip(case[None, None, :] + shift[:, None, None] + g + u + e, 0.0, 1.0)


def as_records(scores: np.ndarray, names: list[str] | None = None) -> dict[str, dict[int, dict[int, float]]]:
    """``{config: {seed: {case: value}}}`` for ``segtrain.verdict.summarize`` (configs named c0, c1, ...)."""
    k, s, n = scores.shape
    names = names or [f"c{i}" for i in range(k)]
    return {names[i]: {j: dict(enumerate(scores[i, j].tolist())) for j in range(s)} for i in range(k)}
