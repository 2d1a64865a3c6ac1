"""The statistics behind a verdict: Holm's step-down correction, bootstrap resamples of cases and seeds,
ranks and Kendall's tau between rankings. Plain numpy, vectorised over resamples.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "bootstrap_counts",
    "holm",
    "kendall_tau_rows",
    "rank_rows",
    "two_level_means",
]


def holm(p: np.ndarray | list[float]) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values for m tests.

    Sorting p ascending as p_(1) <= ... <= p_(m), the adjusted value is
    p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)); rejecting where p~ <= alpha is Holm's procedure
    (the running max keeps the adjusted values monotone in p). Returned in the input order.
    """
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"holm: expected a 1-D array of p-values, got shape {p.shape}")
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"holm: p-values must lie in [0, 1], got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.maximum.accumulate(scaled)
    return out


def bootstrap_counts(n_cases: int, n_boot: int, seed: int) -> np.ndarray:
    """``counts[b, i]``: how often case i is drawn in resample b (n_cases draws with replacement).

    The resamples are one ``n_boot x n_cases`` index matrix from ``np.random.default_rng(seed)``; counting
    them lets every mean over a resample be one matrix product instead of a gather per configuration.
    """
    if n_cases < 1 or n_boot < 1:
        raise ValueError(f"bootstrap needs n_cases >= 1 and n_boot >= 1, got {n_cases} and {n_boot}")
    idx = np.random.default_rng(seed).integers(0, n_cases, size=(n_boot, n_cases))
    flat = (idx + (np.arange(n_boot) * n_cases)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n_cases).reshape(n_boot, n_cases).astype(np.float64)


def two_level_means(
    seed_values: list[np.ndarray], n_boot: int, seed: int, *, resample_seeds: bool = True
) -> np.ndarray:
    """``out[b, k]``: configuration k's mean over a two-level bootstrap resample b: the n cases drawn with
    replacement (the same draw for every configuration, so the comparison stays paired) and, with
    ``resample_seeds``, each configuration's S_k seeds drawn with replacement (its own draw: seeds of
    different configurations are different models). ``seed_values[k]``: (S_k, n) per-seed case values.

    Resampling both ways over-states the seed-by-case part of the variance a little (Owen 2007, "The pigeonhole
    bootstrap"), and with few seeds the seed part is under-stated (S - 1 of S): the ranks it gives describe
    stability; the calls come from the tests (``compare.pair_tests``).
    """
    n = seed_values[0].shape[1]
    counts = bootstrap_counts(n, n_boot, seed)  # (B, n)
    rng = np.random.default_rng([seed, 1])
    out = np.empty((n_boot, len(seed_values)))
    for k, y in enumerate(seed_values):
        s = y.shape[0]
        per_seed = counts @ y.T  # (B, S): each seed's case sum over the resample
        if resample_seeds and s > 1:
            w = np.stack([np.bincount(row, minlength=s) for row in rng.integers(0, s, size=(n_boot, s))])
        else:
            w = np.ones((n_boot, s))
        out[:, k] = (w * per_seed).sum(axis=1) / (s * n)
    return out


def rank_rows(scores: np.ndarray, tol: float = 0.0) -> np.ndarray:
    """Competition ranks along the last axis: 1 + the number of strictly higher scores, so equal scores share
    the best of their ranks (R's ``ties.method = "min"``, challengeR's default). Scores within ``tol`` of the
    next higher one count as equal, so that two identical configurations, whose resampled means may differ
    in the last bit after a matrix product, tie instead of one always winning.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    k = scores.shape[-1]
    order = np.argsort(-scores, axis=-1, kind="stable")
    ordered = np.take_along_axis(scores, order, axis=-1)
    new_run = np.ones(ordered.shape, dtype=bool)
    new_run[:, 1:] = (ordered[:, :-1] - ordered[:, 1:]) > tol
    pos = np.where(new_run, np.arange(k), 0)
    run_start = np.maximum.accumulate(pos, axis=-1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, run_start + 1, axis=-1)
    return ranks


def kendall_tau_rows(reference: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between one ranking ``reference`` (K,) and each row of ``ranks`` (B, K).

    tau_b = (C - D) / sqrt((P - T_ref) (P - T_row)) over the P = K (K - 1) / 2 pairs, C/D the concordant and
    discordant pairs and T the pairs tied in one ranking; scipy.stats.kendalltau's default. NaN where a
    ranking is all ties (or K < 2), as scipy gives.
    """
    k = reference.shape[0]
    if k < 2:
        return np.full(ranks.shape[0], np.nan)
    i, j = np.triu_indices(k, 1)
    ref = np.sign(reference[i] - reference[j])
    row = np.sign(ranks[:, i] - ranks[:, j])
    denom = np.sqrt(np.count_nonzero(ref) * np.count_nonzero(row, axis=1).astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (row * ref).sum(axis=1) / denom, np.nan)
