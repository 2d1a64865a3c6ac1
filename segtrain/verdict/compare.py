"""Pairwise comparisons of configurations that account for training noise and for the sample of cases.

Model of a per-case score (configuration k, seed s, case i; Searle, Casella & McCulloch 1992, ch. 4):

    y[k, s, i] = mu_k + c_i + g[k, i] + u[k, s] + e[k, s, i]

c the case's difficulty (shared by every configuration, cancels in a paired difference), g how configuration
k suits case i, u the seed's effect on the whole model (training noise), e the seed's effect case by case.
The mean of configuration k over its S_k seeds and the n cases is M_k, and for two configurations

    Var(M_a - M_b) = tau_a^2 / S_a + tau_b^2 / S_b + sigma_g(a, b)^2 / n

tau_k^2 = Var_s(mean_i y[k, s, i]) is the variance of one seed's mean score (training noise, with the e
part over n cases in it), estimated by the sample variance over the seeds (S_k - 1 degrees of freedom);
sigma_g(a, b)^2 = Var_i(g[a, i] - g[b, i]) is what the case sample adds: how differently the two suit
different cases. Estimated by the variance over cases of the paired difference of seed-averaged values,
less the seed-by-case part that the seed term already holds (the residual of the two-way seed x case
table, sigma_e^2 / S per configuration), clamped at 0. With no real difference between configurations
g[a] = g[b], the case term is about 0 and the test is Welch's t-test on the per-seed mean scores.

The test statistic (M_a - M_b) / sqrt(V) is referred to Student's t with Satterthwaite's (1946) degrees of
freedom over the mean squares combined, capped at the pooled seeds' S_a + S_b - 2. With one seed tau^2
cannot be estimated, and the comparison is undecided unless ``case_only``: then V = Var_i(paired
difference) / n (a paired t-test on the cases, n - 1 degrees of freedom), which asks whether *these trained
models* differ on cases like these, not whether the configurations train better models.

Holm's step-down correction runs over **all** K (K - 1) / 2 pairs, not only the K - 1 against the leader:
the leader is chosen by the same data, and under K identical configurations the gap between the best and
the worst mean is the range of K draws, which a correction over K - 1 tests does not cover (measured in
docs/verdict.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from segtrain.verdict.stats import holm

__all__ = ["Components", "PairTests", "components", "pair_tests", "seeds_needed"]


@dataclass(frozen=True)
class Components:
    """One configuration's variance components over its seeds (NaN with a single seed).

    ``seed_var``: tau^2, the variance over seeds of a seed's mean score; ``residual_var``: sigma_e^2, the
    seed x case interaction (how a seed's per-case scores move apart from the configuration's)."""

    n_seeds: int
    seed_var: float
    residual_var: float


def components(seed_values: np.ndarray) -> Components:
    """Variance components of one configuration's (S, n) table of per-seed, per-case scores (NaN-free)."""
    y = np.asarray(seed_values, dtype=np.float64)
    s, n = y.shape
    if s < 2:
        return Components(s, float("nan"), float("nan"))
    seed_means = y.mean(axis=1)
    residual = y - seed_means[:, None] - y.mean(axis=0)[None, :] + y.mean()
    resid_df = (s - 1) * (n - 1)
    return Components(
        s,
        float(seed_means.var(ddof=1)),
        float((residual**2).sum() / resid_df) if resid_df > 0 else 0.0,
    )


@dataclass(frozen=True)
class PairTests:
    """All pairs i < j of K configurations, as (K, K) arrays: ``diff[i, j]`` = mean_i - mean_j (scores,
    higher = better), ``var`` its variance, ``df`` its degrees of freedom, ``p`` the two-sided p-value,
    ``p_holm`` Holm-adjusted over all pairs; ``var_seed`` / ``var_case`` the two parts of ``var``. NaN where
    the pair cannot be tested (a configuration with one seed, unless case_only)."""

    diff: np.ndarray
    var: np.ndarray
    var_seed: np.ndarray
    var_case: np.ndarray
    df: np.ndarray
    p: np.ndarray
    p_holm: np.ndarray


def _satterthwaite(parts: list[tuple[np.ndarray, np.ndarray]], total: np.ndarray | None = None) -> np.ndarray:
    """Satterthwaite's (1946) degrees of freedom of a linear combination of independent mean squares: ``parts``
    holds each term's absolute contribution and its df, ``total`` the combination (default: their sum)."""
    total = sum(t for t, _ in parts) if total is None else total
    denom = sum(np.where(t > 0, t**2 / np.maximum(d, 1e-300), 0.0) for t, d in parts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, total**2 / denom, np.inf)


def pair_tests(scores: np.ndarray, comps: list[Components], *, case_only: bool = False) -> PairTests:
    """Every pair's difference, its variance from both sources, and Holm-adjusted two-sided p-values.

    ``scores``: (K, n) seed-averaged case values, higher = better; ``comps``: each row's ``components``.
    """
    k, n = scores.shape
    means = scores.mean(axis=1)
    diff = means[:, None] - means[None, :]
    cov = np.cov(scores) if k > 1 else np.zeros((1, 1))
    cov = np.atleast_2d(cov)
    d_var = np.maximum(np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov, 0.0)  # Var_i(paired diff)
    if case_only:
        var_seed = np.zeros((k, k))
        var_case = d_var / n
        df = np.full((k, k), float(n - 1))
    else:
        s = np.array([c.n_seeds for c in comps], dtype=np.float64)
        tau = np.array([c.seed_var for c in comps]) / s  # NaN with one seed
        e = np.array([c.residual_var for c in comps]) / s
        var_seed = tau[:, None] + tau[None, :]
        var_case = np.maximum(d_var - e[:, None] - e[None, :], 0.0) / n
        # Satterthwaite over the mean squares the estimate combines, the subtracted seed x case terms included
        # (their df (S - 1)(n - 1)); where the case part is clamped to 0 it drops out with its terms
        shown = (d_var - e[:, None] - e[None, :]) > 0
        e_df = (s - 1) * (n - 1)
        terms = [
            (np.broadcast_to(tau[:, None], (k, k)), np.broadcast_to(s[:, None] - 1, (k, k))),
            (np.broadcast_to(tau[None, :], (k, k)), np.broadcast_to(s[None, :] - 1, (k, k))),
            (np.where(shown, d_var / n, 0.0), np.full((k, k), float(n - 1))),
            (np.where(shown, e[:, None] / n, 0.0), np.broadcast_to(e_df[:, None], (k, k))),
            (np.where(shown, e[None, :] / n, 0.0), np.broadcast_to(e_df[None, :], (k, k))),
        ]
        # the pair's information about training noise is at most the pooled seeds' S_a + S_b - 2 degrees of
        # freedom: a case term estimated over many cases adds none. Satterthwaite's df alone would let it (and
        # then calls noise real with 2-3 seeds: docs/verdict.md, the calibration table)
        df = np.minimum(_satterthwaite(terms, total=var_seed + var_case), s[:, None] + s[None, :] - 2)
    var = var_seed + var_case
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.abs(diff) / np.sqrt(var)
        p = np.where(var > 0, 2 * stats.t.sf(t, df), np.where(diff == 0, 1.0, 0.0))
    p = np.where(np.isnan(var), np.nan, p)
    iu = np.triu_indices(k, 1)
    p_holm = np.full((k, k), np.nan)
    testable = ~np.isnan(p[iu])
    if testable.any():
        adj = np.full(testable.size, np.nan)
        adj[testable] = holm(p[iu][testable])
        p_holm[iu] = adj
        p_holm.T[iu] = adj
    return PairTests(diff, var, var_seed, var_case, df, p, p_holm)


def seeds_needed(
    diff: float,
    seed_vars: tuple[float, float],
    var_case: float,
    *,
    alpha: float,
    n_pairs: int,
    rope: float,
    n_cases: int,
    power: float = 0.8,
    max_seeds: int = 100,
) -> tuple[int | None, str]:
    """How many seeds per configuration would likely decide a pair, taking the observed ``diff`` and the
    measured components as the truth: (S, "worse") when the pair would be called worse with probability
    ``power`` (Bonferroni over ``n_pairs``, Holm's first step), (S, "equivalent") when the expected 95%
    interval would lie inside +-``rope``; the smaller S of the two. (None, why) when more seeds alone cannot
    decide it (the case term, which seeds do not shrink, is too large) or it takes more than ``max_seeds``.
    """
    s = np.arange(2, max_seeds + 1, dtype=np.float64)
    v = (seed_vars[0] + seed_vars[1]) / s + var_case
    df = np.minimum(
        _satterthwaite(
            [(seed_vars[0] / s, s - 1), (seed_vars[1] / s, s - 1), (np.full_like(s, var_case), n_cases - 1.0)]
        ),
        2 * s - 2,
    )
    se = np.sqrt(v)
    worse = abs(diff) >= (stats.t.isf(alpha / (2 * n_pairs), df) + stats.t.ppf(power, df)) * se
    equivalent = (abs(diff) + stats.t.isf(0.025, df) * se <= rope) if rope > 0 else np.zeros_like(worse)
    decided = worse | equivalent
    if decided.any():
        i = int(np.argmax(decided))
        return int(s[i]), "worse" if worse[i] else "equivalent"
    z_worse = stats.norm.isf(alpha / (2 * n_pairs)) + stats.norm.ppf(power)
    limited = abs(diff) < z_worse * np.sqrt(var_case) and (rope <= 0 or abs(diff) + 1.96 * np.sqrt(var_case) > rope)
    why = "the case sample limits it: more seeds alone will not decide it" if limited else f"more than {max_seeds}"
    return None, why
