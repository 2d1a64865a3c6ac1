"""Real A/A checks of the verdict: split one configuration's seeds into two groups and compare the groups.

    python benchmarks/verdict_real_aa.py <sweep dir> [<sweep dir> ...] --config loss=dice [--split test]

The jobs of ``--config`` (one configuration, six seeds or more) are split into two groups of equal size in
every possible way (6 seeds: 10 splits); each split is handed to segtrain.verdict.summarize as two
configurations. They are the same loss, so any "worse" call is a false one: at alpha = 0.05 about 1 split in
20 may be called worse by chance. Printed beside it: the verdict as it was before this release (one-sided
paired Wilcoxon on the seed-averaged cases), on the same splits.

    python benchmarks/verdict_real_aa.py <sweep dir> --pair loss=dice "loss=dice,loss.smooth=2e-05"

``--pair A B`` compares two configurations as they are (for example two settings that should not matter).

    python benchmarks/verdict_real_aa.py <sweep dir> --all

``--all`` calls every configuration against the leader, now and before, side by side.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
from verdict_calibration import wilcoxon_greater

from segtrain.report.cases import read_job_cases
from segtrain.report.runs import collect_runs
from segtrain.verdict import sentence, summarize
from segtrain.verdict.stats import holm

SAME_TRAINING = ("experiment=", "job.num_threads=")


def overrides(run) -> frozenset[str]:
    """A job's configuration as its overrides, less those that train the same models: ``experiment=`` (the
    ready experiments only set the grid, so ``experiment=loss_sweep loss=dice`` and ``loss=dice`` train the
    same configuration) and ``job.num_threads=``."""
    return frozenset(o for o in run.config_overrides if not o.startswith(SAME_TRAINING))


def seed_cases(paths: list[Path], config: str, split: str, metric: str = "dice") -> dict:
    """``{seed: {case: value}}`` of the completed jobs under ``paths`` whose overrides are ``config``
    (comma-separated, any order)."""
    wanted = frozenset(config.split(","))
    out = {}
    runs = collect_runs(paths)
    for run in runs:
        if overrides(run) == wanted and run.status == "completed":
            if run.seed in out:
                raise SystemExit(f"error: seed {run.seed} of {config!r} appears twice (another job: {run.path})")
            out[run.seed] = read_job_cases(run).case_values(split, metric)
    if not out:
        labels = sorted({",".join(sorted(overrides(r))) for r in runs})
        raise SystemExit(f"error: no completed job with overrides {config!r}; the jobs have {labels}")
    return out


def before(a: dict, b: dict) -> tuple[str, float]:
    """The verdict before this release on two configurations: seed-averaged cases, one-sided Wilcoxon of the
    leader against the other."""
    cases = sorted(set.intersection(*(set(v) for v in (*a.values(), *b.values()))))
    ma = np.mean([[v[c] for c in cases] for v in a.values()], axis=0)
    mb = np.mean([[v[c] for c in cases] for v in b.values()], axis=0)
    d = ma - mb if ma.mean() >= mb.mean() else mb - ma
    p = wilcoxon_greater(d)
    return ("worse" if p <= 0.05 else "tied"), p


def compare(a: dict, b: dict, names: tuple[str, str], rope: float) -> str:
    v = summarize({names[0]: a, names[1]: b}, higher_is_better=True, rope=rope, n_boot=200)
    c = v.comparisons[0]
    old, p_old = before(a, b)
    return (
        f"| {v.leader} | {c.diff_mean:.4f} | [{c.ci_low:.4f}, {c.ci_high:.4f}] | {c.p_raw:.3g} | **{c.call}** | "
        f"{old} (p = {p_old:.2g}) |"
    )


def all_configs(paths: list[Path], split: str, rope: float, seeds: list[str] | None = None) -> None:
    """Every configuration against the leader: the verdict now, and before (Holm-Wilcoxon over K - 1).
    Jobs of several sweep directories join by their overrides (``overrides``); ``seeds`` keeps those seeds."""
    runs = [r for r in collect_runs(paths) if r.status == "completed" and (seeds is None or str(r.seed) in seeds)]
    common = frozenset.intersection(*(overrides(r) for r in runs))
    data: dict[str, dict] = {}
    for run in runs:  # k-fold jobs of one seed pool their out-of-fold cases, as the report does
        label = ",".join(sorted(o for o in overrides(run) - common if not o.startswith("dataset.fold="))) or "-"
        cases = data.setdefault(label, {}).setdefault(run.seed, {})
        new = read_job_cases(run).case_values(split, "dice")
        if set(new) & set(cases):
            raise SystemExit(f"error: a case of seed {run.seed} of {label} is scored twice (another job: {run.path})")
        cases.update(new)
    v = summarize(data, higher_is_better=True, rope=rope)
    cases = list(v.cases)
    lead = np.mean([[x[c] for c in cases] for x in data[v.leader].values()], axis=0)
    p_before = []
    for c in v.comparisons:
        d = lead - np.mean([[x[k] for k in cases] for x in data[c.config].values()], axis=0)
        p_before.append(wilcoxon_greater(d))
    adj = holm(p_before)
    print(sentence(v, split=split, metric="Dice") + "\n")
    n_seeds = sorted({len(x) for x in data.values()})
    print(f"{len(data)} configurations x {'-'.join(map(str, n_seeds))} seeds, {v.n_cases} cases; leader `{v.leader}`\n")
    print("| configuration | mean | diff | 95% CI | p Holm (all pairs) | call now | seeds to decide | before |")
    print("|---|---:|---:|---|---:|---|---|---|")
    for c, p in zip(v.comparisons, adj, strict=True):
        need = f"{c.seeds_needed} (to {c.seeds_needed_for})" if c.seeds_needed else (c.seeds_needed_for or "-")
        print(
            f"| {c.config} | {c.mean:.3f} | {c.diff_mean:.3f} | [{c.ci_low:.3f}, {c.ci_high:.3f}] | {c.p_holm:.3g} | "
            f"{c.call} | {need} | {'worse' if p <= 0.05 else 'tied'} (Holm p = {p:.2g}) |"
        )


HEADER = "| leader | diff | 95% CI | p | call | before: Wilcoxon on cases |\n|---|---:|---|---:|---|---|"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--config", help="split this configuration's seeds into two equal groups, every way")
    parser.add_argument("--pair", nargs=2, metavar=("A", "B"), help="compare two configurations as they are")
    parser.add_argument("--all", action="store_true", help="every configuration against the leader, now and before")
    parser.add_argument("--seeds", default=None, help="with --all: only these seeds, comma-separated")
    parser.add_argument("--split", default="test")
    parser.add_argument("--rope", type=float, default=0.01)
    args = parser.parse_args(argv)
    if args.all:
        all_configs(args.paths, args.split, args.rope, args.seeds.split(",") if args.seeds else None)
        return 0
    if bool(args.config) == bool(args.pair):
        parser.error("give --config, --pair or --all")
    print(HEADER)
    if args.pair:
        a, b = (seed_cases(args.paths, c, args.split) for c in args.pair)
        print(compare(a, b, tuple(args.pair), args.rope))
        return 0
    runs = seed_cases(args.paths, args.config, args.split)
    seeds = sorted(runs, key=str)
    if len(seeds) < 4 or len(seeds) % 2:
        raise SystemExit(f"error: {args.config} has {len(seeds)} seeds; need an even number, at least 4")
    calls = []
    for group in itertools.combinations(seeds, len(seeds) // 2):
        if seeds[0] not in group:  # each split once: the group holding the first seed is "A"
            continue
        rest = [s for s in seeds if s not in group]
        line = compare(
            {s: runs[s] for s in group}, {s: runs[s] for s in rest}, (f"A={group}", f"B={tuple(rest)}"), args.rope
        )
        calls.append(line)
        print(line)
    worse = sum("**worse**" in line for line in calls)
    old = sum("| worse (p" in line for line in calls)
    print(f"\n{len(calls)} splits of {len(seeds)} seeds: {worse} called worse now, {old} before.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
