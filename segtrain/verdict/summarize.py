"""``summarize``: rank configurations by their mean per-case metric and call each one against the leader
(worse, equivalent or undecided), accounting for training noise (seeds) and for the sample of cases
(segtrain.verdict.compare); rank stability from resamples of seeds and cases.

Case-level reporting follows challengeR (Wiesenfarth et al. 2021, Sci. Rep. 11:2369) and Metrics Reloaded
(Maier-Hein et al. 2024, Nat. Methods 21:195); the variance over seeds as a source of its own follows
Bouthillier et al. (2021, MLSys) and Agarwal et al. (2021, NeurIPS); the region of practical equivalence
Benavoli et al. (2017, JMLR 18:77). docs/verdict.md has the method and its measured error rates.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np
from scipy import stats

from segtrain.verdict.compare import components, pair_tests, seeds_needed
from segtrain.verdict.result import Comparison, RankStability, Verdict
from segtrain.verdict.stats import kendall_tau_rows, rank_rows, two_level_means
from segtrain.verdict.table import CaseTable, build_table, records_from_nested

__all__ = ["DEFAULT_ROPE", "summarize"]

DEFAULT_ROPE = 0.01
"""Region of practical equivalence, in metric units: one Dice point. Set it to the smallest difference that
would change which loss you use (for example the Dice between two annotators of your data, or what your
application can notice); for HD95 give it in pixels."""


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
    rope: float = DEFAULT_ROPE,
    case_only: bool = False,
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
       configuration are dropped and listed. Configurations are ranked by the mean over seeds and cases.
    2. Every pair is tested with both sources of variance (training noise from the spread of the seeds'
       mean scores, and the case sample; ``compare.pair_tests``), Holm-corrected over all pairs at ``alpha``.
       Against the leader each configuration is "worse" (Holm p <= alpha), "equivalent" (the 95% interval of
       the difference inside +-``rope``) or "undecided"; an undecided one gets the seeds per configuration
       that would likely decide it. The tie set is every configuration not called worse.
    3. With one seed the training noise is unmeasured and nothing is called worse, unless ``case_only``:
       then only the cases are a source of variance (a paired t-test), which compares these trained models,
       not the configurations.
    4. ``n_boot`` resamples (``seed``) of the cases, and within each configuration of its seeds (not with
       ``case_only``), give per configuration P(rank 1), the 2.5/97.5 percentiles of its rank and how often it
       takes each rank; Kendall's tau between the full ranking and each resampled one measures overall
       stability.
    """
    if not isinstance(higher_is_better, bool):
        raise TypeError(f"higher_is_better must be a bool, got {higher_is_better!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if not isinstance(rope, int | float) or isinstance(rope, bool) or not rope >= 0:
        raise ValueError(f"rope must be a number >= 0 in metric units (e.g. 0.01 Dice), got {rope!r}")
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
    per_seed = [sign * table.seed_values[c] for c in names]
    comps = [components(y) for y in per_seed]
    tests = pair_tests(scores, comps, case_only=case_only)
    n_pairs = k * (k - 1) // 2

    comparisons = []
    for j in range(1, k):
        d = scores[0] - scores[j]
        diff, var, df = tests.diff[0, j], tests.var[0, j], tests.df[0, j]
        se = float(np.sqrt(var))
        half = float(stats.t.isf(0.025, df) * se) if np.isfinite(var) else float("nan")
        p_holm = float(tests.p_holm[0, j])
        if p_holm <= alpha and diff > 0:
            call = "worse"
        elif abs(diff) + half <= rope:
            call = "equivalent"
        else:
            call = "undecided"
        needed: tuple[int | None, str] = (None, "")
        if call == "undecided":
            if case_only:
                needed = (None, "case_only: seeds are not a source here")
            elif not np.isfinite(var):
                needed = (None, "one seed: training noise not measured")
            else:
                needed = seeds_needed(
                    float(diff), (comps[0].seed_var, comps[j].seed_var), float(tests.var_case[0, j]),
                    alpha=alpha, n_pairs=n_pairs, rope=rope, n_cases=n,
                )  # fmt: skip
        comparisons.append(
            Comparison(
                config=names[j],
                mean=float(means[j]),
                diff_mean=float(diff),
                diff_median=float(np.median(d)),
                ci_low=float(diff - half),
                ci_high=float(diff + half),
                p_raw=float(tests.p[0, j]),
                p_holm=p_holm,
                call=call,
                se=se,
                df=float(df),
                var_seed=float(tests.var_seed[0, j]),
                var_case=float(tests.var_case[0, j]),
                n_nonzero=int(np.count_nonzero(d)),
                seeds_needed=needed[0],
                seeds_needed_for=needed[1],
            )
        )
    tie_set = (names[0], *(c.config for c in comparisons if not c.worse))

    boot = two_level_means(per_seed, n_boot, seed, resample_seeds=not case_only)  # (B, K)
    boot_rank = rank_rows(boot, tol)
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
    single = [c for c, x in zip(names, comps, strict=True) if x.n_seeds < 2]
    if k > 1 and single and not case_only:
        who = (
            "every configuration has"
            if len(single) == k
            else f"{', '.join(single)} {'has' if len(single) == 1 else 'have'}"
        )
        notes.append(
            f"{who} one seed, so training noise cannot be measured and no configuration is called worse on the "
            "cases alone: run 2 or more seeds (3 or more to have power), or pass --case-only (case_only=True) to "
            "compare these trained models (not these configurations)"
        )
    return Verdict(
        higher_is_better=higher_is_better,
        alpha=alpha,
        rope=float(rope),
        case_only=case_only,
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
        components=dict(zip(names, comps, strict=True)),
        values=values,
    )
