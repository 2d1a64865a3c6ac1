"""``summarize``: rank configurations by their mean per-case metric, test the leader against the rest with
Holm-corrected one-sided paired Wilcoxon tests, and measure rank stability over case-bootstrap resamples.

The case is the unit (challengeR, Wiesenfarth et al. 2021, Sci. Rep. 11:2369; Metrics Reloaded, Maier-Hein
et al. 2024, Nat. Methods 21:195): seeds are averaged per case first, so n = the number of cases.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np

from segtrain.verdict.result import Comparison, RankStability, Verdict
from segtrain.verdict.stats import (
    bootstrap_counts,
    bootstrap_means,
    holm,
    kendall_tau_rows,
    rank_rows,
    wilcoxon_greater,
)
from segtrain.verdict.table import CaseTable, build_table, records_from_nested

__all__ = ["summarize"]


def _table(
    data: Any,
    configs: Iterable[str] | None,
    seeds: Iterable[Hashable] | None,
    failed_seeds: Mapping[str, Iterable[Hashable]] | None,
) -> CaseTable:
    if isinstance(data, CaseTable):
        if configs is not None or seeds is not None or failed_seeds is not None:
            raise ValueError("configs=, seeds= and failed_seeds= apply to records, not to a CaseTable")
        return data
    failed = {c: list(s) for c, s in (failed_seeds or {}).items()}
    if isinstance(data, Mapping):
        records, marked = records_from_nested(data)
        for c, s in marked.items():
            failed.setdefault(c, []).extend(s)
        if configs is None:  # a config whose seeds are all empty has no records but is still expected
            configs = list(data)
    else:
        records = data
    return build_table(records, configs=configs, seeds=seeds, failed_seeds=failed)


def summarize(
    data: Any,
    *,
    higher_is_better: bool,
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
    configs: Iterable[str] | None = None,
    seeds: Iterable[Hashable] | None = None,
    failed_seeds: Mapping[str, Iterable[Hashable]] | None = None,
) -> Verdict:
    """Which configuration wins on one metric, and is the difference real?

    ``data``: (config, seed, case, value) records (tuples or mappings), a nested mapping
    ``{config: {seed: {case: value} or None}}`` (None = failed run), or a ``CaseTable``. ``configs``,
    ``seeds``, ``failed_seeds``: see ``build_table``.

    1. Per configuration, each case's value is its mean over seeds; cases not scored (finite) for every
       configuration are dropped and listed. Configurations are ranked by the mean over cases.
    2. The leader is tested against each other configuration with a one-sided paired Wilcoxon signed-rank
       test on the per-case values (H1: the other is worse), Holm-corrected over the K - 1 tests at ``alpha``.
       The tie set is the leader plus every configuration not significantly worse.
    3. ``n_boot`` resamples of the cases (``seed``) give a percentile 95% interval of each mean difference,
       and per configuration P(rank 1), the 2.5/97.5 percentiles of its rank and how often it takes each
       rank; Kendall's tau between the full ranking and each resampled one measures overall stability.
    """
    if not isinstance(higher_is_better, bool):
        raise TypeError(f"higher_is_better must be a bool, got {higher_is_better!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    table = _table(data, configs, seeds, failed_seeds)
    k, n = table.values.shape
    sign = 1.0 if higher_is_better else -1.0
    means = table.values.mean(axis=1)
    # a matrix product may round identical configurations' resampled means apart: treat that as equal
    tol = 64 * np.finfo(np.float64).eps * n * max(float(np.abs(table.values).max()), 1e-300)
    full_rank = rank_rows(sign * means)[0]
    order = np.argsort(full_rank, kind="stable")
    names = tuple(table.configs[i] for i in order)
    values = table.values[order]
    means = means[order]
    full_rank = full_rank[order]
    scores = sign * values  # higher = better from here on

    counts = bootstrap_counts(n, n_boot, seed)
    boot = bootstrap_means(scores, counts)  # (B, K)
    boot_rank = rank_rows(boot, tol)

    p_raw = np.array([wilcoxon_greater(scores[0] - scores[j]) for j in range(1, k)])
    p_adj = holm(p_raw) if k > 1 else p_raw
    comparisons = []
    for j in range(1, k):
        d = scores[0] - scores[j]
        lo, hi = np.percentile(boot[:, 0] - boot[:, j], [2.5, 97.5])
        comparisons.append(
            Comparison(
                config=names[j],
                mean=float(means[j]),
                diff_mean=float(d.mean()),
                diff_median=float(np.median(d)),
                ci_low=float(lo),
                ci_high=float(hi),
                p_raw=float(p_raw[j - 1]),
                p_holm=float(p_adj[j - 1]),
                worse=bool(p_adj[j - 1] <= alpha),
                n_nonzero=int(np.count_nonzero(d)),
            )
        )
    tie_set = (names[0], *(c.config for c in comparisons if not c.worse))

    stability = []
    for j in range(k):
        r = boot_rank[:, j]
        low, high = np.quantile(r, [0.025, 0.975], method="inverted_cdf")
        stability.append(
            RankStability(
                config=names[j],
                rank=int(full_rank[j]),
                mean=float(means[j]),
                p_first=float(np.mean(r == 1)),
                rank_low=int(low),
                rank_high=int(high),
                rank_freq=tuple((np.bincount(r - 1, minlength=k) / n_boot).tolist()),
            )
        )
    tau = kendall_tau_rows(full_rank, boot_rank)
    finite = tau[np.isfinite(tau)]

    notes = []
    if k == 1:
        notes.append(f"only one configuration ({names[0]}) has usable records: nothing to compare")
    if finite.size < tau.size:
        notes.append(f"Kendall's tau is undefined for {tau.size - finite.size} of {n_boot} resamples (every rank tied)")
    if k > 1 and 0.5**n > alpha / (k - 1):
        notes.append(
            f"with {n} cases the smallest one-sided Wilcoxon p-value is 2^-{n} = {0.5**n:.3g} > alpha/(K-1) = "
            f"{alpha / (k - 1):.3g}: no configuration can be shown worse than the leader"
        )
    return Verdict(
        higher_is_better=higher_is_better,
        alpha=alpha,
        n_boot=n_boot,
        seed=seed,
        ranking=names,
        tie_set=tie_set,
        comparisons=tuple(comparisons),
        stability=tuple(stability),
        tau_median=float(np.median(finite)) if finite.size else float("nan"),
        tau_mean=float(np.mean(finite)) if finite.size else float("nan"),
        cases=table.cases,
        seeds={c: table.seeds[c] for c in names},
        dropped_cases=table.dropped_cases,
        failed_seeds=table.failed_seeds,
        incomplete_seeds=table.incomplete_seeds,
        failed_configs=table.failed_configs,
        notes=notes,
        values=values,
    )
