"""How often does the verdict call a configuration worse when it is not (A/A sweeps), and how often when it is
(known effects)? Simulated sweeps from segtrain.verdict.simulate, every method on the same draws.

    python benchmarks/verdict_calibration.py                    # the full grid, 1000 sweeps a cell (~10 min)
    python benchmarks/verdict_calibration.py --sims 200 --quick # a few cells

Methods, each a family of "worse" calls against the leader at alpha:
- ``seeds+cases``: segtrain's verdict (segtrain.verdict.compare): training noise and the case sample,
  Holm over all K (K - 1) / 2 pairs; with one seed it calls nothing.
- ``seeds+cases, Holm K-1``: the same test, Holm over the K - 1 comparisons with the leader only.
- ``Games-Howell``: the same pairwise statistic against the studentized range (Games & Howell 1976): the
  single-step Tukey-type correction for unequal variances.
- ``cases only``: segtrain's ``case_only`` option (paired t on the seed-averaged cases, Holm over all pairs):
  these models, not these configurations.
- ``before``: the verdict before this release: one-sided paired Wilcoxon of the leader against each other
  configuration on the seed-averaged cases, Holm over K - 1.

A/A rate: the share of simulated sweeps with at least one "worse" call (the family-wise error). Power: the
share of truly worse configurations called worse. Monte-Carlo standard error: sqrt(r (1 - r) / sims).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from segtrain.verdict.compare import components, pair_tests
from segtrain.verdict.simulate import simulate_scores
from segtrain.verdict.stats import holm

METHODS = ("seeds+cases", "seeds+cases, Holm K-1", "Games-Howell", "cases only", "before")


@functools.cache
def _range_critical(k: int, df_step: int, alpha: float) -> float:
    """The studentized range's 1 - alpha quantile over sqrt(2), at df = 1.05^df_step (a grid: df is rounded
    down to it, which errs on the conservative side)."""
    return float(stats.studentized_range.ppf(1 - alpha, k, 1.05**df_step) / math.sqrt(2))


def games_howell(t: np.ndarray, df: np.ndarray, k: int, alpha: float) -> np.ndarray:
    steps = np.floor(np.log(np.clip(np.nan_to_num(df, nan=1.0, posinf=1e5), 1.0, 1e5)) / math.log(1.05)).astype(int)
    crit = np.array([_range_critical(k, int(s), alpha) for s in steps])
    return np.nan_to_num(t, nan=0.0) > crit


def wilcoxon_greater(d: np.ndarray) -> float:
    """The previous release's test: one-sided paired Wilcoxon p for "the other is worse" (differences ``d``,
    leader minus other, on seed-averaged cases); 1 where every difference is 0."""
    if not np.any(d != 0):
        return 1.0
    with np.errstate(invalid="ignore"):
        return float(stats.wilcoxon(d, alternative="greater").pvalue)


def worse_calls(scores: np.ndarray, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """Each method's "worse" calls on one simulated sweep ``scores`` (K, S, n): a bool per configuration,
    in the configurations' original order (the leader, by mean, is never called worse)."""
    k = scores.shape[0]
    case_means = scores.mean(axis=1)
    order = np.argsort(-case_means.mean(axis=1), kind="stable")
    ranked = case_means[order]
    comps = [components(scores[i]) for i in order]
    out: dict[str, np.ndarray] = {}
    for name, case_only in (("seeds+cases", False), ("cases only", True)):
        t = pair_tests(ranked, comps, case_only=case_only)
        out[name] = np.nan_to_num(t.p_holm[0, 1:], nan=1.0) <= alpha
        if not case_only:
            p = t.p[0, 1:]
            ok = ~np.isnan(p)
            adj = np.ones(k - 1)
            if ok.any():
                adj[ok] = holm(p[ok])
            out["seeds+cases, Holm K-1"] = adj <= alpha
            with np.errstate(invalid="ignore", divide="ignore"):
                stat = t.diff[0, 1:] / np.sqrt(t.var[0, 1:])
            out["Games-Howell"] = games_howell(stat, t.df[0, 1:], k, alpha)
    out["before"] = holm([wilcoxon_greater(row) for row in ranked[0] - ranked[1:]]) <= alpha
    for name, called in out.items():  # back to the original configuration order, leader False
        full = np.zeros(k, dtype=bool)
        full[order[1:]] = called
        out[name] = full
    return out


@dataclass
class Cell:
    n_configs: int
    n_seeds: int
    n_cases: int
    seed_sd: float
    effect: float
    sims: int
    rates: dict[str, float]  # A/A: family-wise false-worse rate; effect: power (share of worse ones called worse)
    leader_called_worse: dict[str, float]  # with an effect: how often the truly best configuration was called worse


def run_cell(
    rng: np.random.Generator, *, n_configs: int, n_seeds: int, n_cases: int, seed_sd: float, effect: float,
    sims: int, alpha: float = 0.05,
) -> Cell:  # fmt: skip
    hits = dict.fromkeys(METHODS, 0.0)
    wrong = dict.fromkeys(METHODS, 0.0)
    for _ in range(sims):
        y = simulate_scores(
            rng, n_configs=n_configs, n_seeds=n_seeds, n_cases=n_cases, seed_sd=seed_sd, effect=effect
        )  # fmt: skip
        for name, called in worse_calls(y, alpha).items():
            if effect == 0:
                hits[name] += bool(called.any())
            else:
                hits[name] += called[1:].mean()
                wrong[name] += bool(called[0])
    return Cell(
        n_configs, n_seeds, n_cases, seed_sd, effect, sims,
        {m: hits[m] / sims for m in METHODS}, {m: wrong[m] / sims for m in METHODS},
    )  # fmt: skip


AA_GRID = {
    "n_configs": (2, 5, 13),
    "n_seeds": (1, 2, 3, 5, 10),
    "n_cases": (20, 100, 1000),
    "seed_sd": (0.0, 0.03, 0.1),
}
POWER_GRID = {
    "n_configs": (5,),
    "n_seeds": (3, 5, 10),
    "n_cases": (200,),
    "seed_sd": (0.01, 0.03),
    "effect": (0.03, 0.05),
}
QUICK_AA = {"n_configs": (2, 13), "n_seeds": (1, 3), "n_cases": (20, 200), "seed_sd": (0.0, 0.05)}
QUICK_POWER = {"n_configs": (5,), "n_seeds": (3, 10), "n_cases": (200,), "seed_sd": (0.01,), "effect": (0.05,)}


def grid(spec: dict[str, tuple]) -> list[dict[str, float]]:
    keys = list(spec)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*spec.values())]


def run(aa: dict, power: dict, sims: int, seed: int, alpha: float = 0.05, log=None) -> list[Cell]:
    rng = np.random.default_rng(seed)
    cells = []
    for spec in [{**c, "effect": 0.0} for c in grid(aa)] + grid(power):
        t0 = time.perf_counter()
        cells.append(run_cell(rng, sims=sims, alpha=alpha, **spec))
        if log:
            log(f"{spec} {cells[-1].rates} ({time.perf_counter() - t0:.1f} s)")
    return cells


def mc_se(rate: float, sims: int) -> float:
    return math.sqrt(max(rate * (1 - rate), 1e-12) / sims)


def markdown(cells: list[Cell], alpha: float) -> str:
    aa = [c for c in cells if c.effect == 0]
    pw = [c for c in cells if c.effect != 0]
    lines = []
    if aa:
        sims = aa[0].sims
        bound = alpha + 2 * mc_se(alpha, sims)
        lines += [
            f'A/A: share of {sims} simulated sweeps with a false "worse" call (alpha = {alpha:g}; above '
            f"{bound:.3f} = alpha + 2 Monte-Carlo SE is marked **bold**).",
            "",
            "| configs | seeds | cases | seed SD | " + " | ".join(METHODS) + " |",
            "|---:|---:|---:|---:|" + "---:|" * len(METHODS),
        ]
        for c in aa:
            cells_txt = [(f"**{c.rates[m]:.3f}**" if c.rates[m] > bound else f"{c.rates[m]:.3f}") for m in METHODS]
            lines.append(
                f"| {c.n_configs} | {c.n_seeds} | {c.n_cases} | {c.seed_sd:g} | " + " | ".join(cells_txt) + " |"
            )
        worst = {m: max(c.rates[m] for c in aa) for m in METHODS}
        lines += ["", "Highest A/A rate over the cells: " + ", ".join(f"{m} {worst[m]:.3f}" for m in METHODS) + "."]
    if pw:
        lines += [
            "",
            "Power: share of the truly worse configurations called worse (one configuration better than the "
            "others by the effect); in brackets, how often the truly best one was called worse.",
            "",
            "| configs | seeds | cases | seed SD | effect | " + " | ".join(METHODS) + " |",
            "|---:|---:|---:|---:|---:|" + "---:|" * len(METHODS),
        ]
        for c in pw:
            txt = [f"{c.rates[m]:.2f} ({c.leader_called_worse[m]:.3f})" for m in METHODS]
            lines.append(
                f"| {c.n_configs} | {c.n_seeds} | {c.n_cases} | {c.seed_sd:g} | {c.effect:g} | "
                + " | ".join(txt)
                + " |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=int, default=1000, help="simulated sweeps per cell [1000]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--quick", action="store_true", help="a few cells instead of the full grid")
    parser.add_argument("--out", type=Path, default=None, help="write the table (.md) and the cells (.json) here")
    args = parser.parse_args(argv)
    aa, power = (QUICK_AA, QUICK_POWER) if args.quick else (AA_GRID, POWER_GRID)
    t0 = time.perf_counter()
    cells = run(aa, power, args.sims, args.seed, args.alpha, log=lambda s: print(s, file=sys.stderr, flush=True))
    text = markdown(cells, args.alpha)
    print(text)
    print(f"{len(cells)} cells x {args.sims} sweeps in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "calibration.md").write_text(text)
        (args.out / "calibration.json").write_text(json.dumps([asdict(c) for c in cells], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
