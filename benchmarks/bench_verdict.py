"""Time segtrain.verdict.summarize on synthetic sweep results.

    python benchmarks/bench_verdict.py [--configs 40] [--cases 1000] [--seeds 3] [--boot 1000] [--repeats 3]
    python benchmarks/bench_verdict.py --sweep [--configs 40] [--seeds 1] [--cases 1000]   # end to end from files

Builds a long table of (config, seed, case, value) records: a per-case difficulty shared by every
configuration, a per-configuration offset (a few near the top, so the tests have something to decide) and
per-seed noise. Prints the median wall time of: building the paired table from the records, the whole
``summarize`` (table, variance components, pairwise tests over seeds and cases, Holm over all pairs,
resamples of seeds and cases, ranks, Kendall tau), ``sentence`` and ``plot_ranks``.

``--sweep`` writes the same values as a sweep directory instead (one job per config x seed: overrides,
metrics.json, a binary per_case.csv with one foreground row per case) and times the sweep report
``segtrain.report.summarize`` on it end to end: reading every file, the case-level verdict, summary.md,
summary.csv, verdict.json, with and without the PNGs (summary.png, curves.png, ranks.png).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the segtrain next to this script

from segtrain.report import summarize as summarize_sweep  # noqa: E402
from segtrain.verdict import build_table, plot_ranks, sentence, summarize  # noqa: E402


def synthetic_records(n_configs: int, n_cases: int, n_seeds: int, seed: int = 0) -> list[tuple[str, int, str, float]]:
    rng = np.random.default_rng(seed)
    difficulty = rng.uniform(0.4, 0.95, n_cases)
    offset = -np.sort(rng.exponential(0.02, n_configs))
    noise = rng.normal(0.0, 0.05, (n_configs, n_seeds, n_cases))
    values = np.clip(difficulty + offset[:, None, None] + noise, 0.0, 1.0)
    cases = [f"case_{i:05d}" for i in range(n_cases)]
    return [
        (f"config_{k:03d}", s, cases[i], float(values[k, s, i]))
        for k in range(n_configs)
        for s in range(n_seeds)
        for i in range(n_cases)
    ]


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def write_sweep(root: Path, records: list[tuple[str, int, str, float]]) -> int:
    """One binary job directory per (config, seed) of `records`; returns the number of jobs."""
    jobs: dict[tuple[str, int], list[tuple[str, float]]] = {}
    for config, seed, case, value in records:
        jobs.setdefault((config, seed), []).append((case, value))
    for (config, seed), cases in jobs.items():
        job = root / f"loss={config},seed={seed}"
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- loss={config}\n- seed={seed}\n")
        mean = statistics.mean(v for _, v in cases)
        metrics = {
            "status": "completed", "seed": seed, "monitor": "val/dice", "monitor_mode": "max",
            "best": {"epoch": 5, "val/dice": mean}, "per_class": {"dice": {"fg": mean}},
            "selected": {"checkpoint": "best", "epoch": 5}, "timing": {"train_s": 60.0},
        }  # fmt: skip
        (job / "metrics.json").write_text(json.dumps(metrics))
        with (job / "per_case.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["split", "case", "class", "dice", "iou", "hd95", "nsd", "cldice", "tp", "fp", "fn",
                        "ref_pixels", "pred_pixels"])  # fmt: skip
            for case, v in cases:
                w.writerow(["val", case, "fg", v, v / (2 - v), 10 * (1 - v), v, v, 50, 5, 5, 55, 55])
    return len(jobs)


def bench_sweep(args: argparse.Namespace) -> None:
    records = synthetic_records(args.configs, args.cases, args.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "sweep"
        n_jobs = write_sweep(root, records)
        t_md, result = timed(lambda: summarize_sweep(root, n_boot=args.boot, plots=False), args.repeats)
        t_all, _ = timed(lambda: summarize_sweep(root, n_boot=args.boot), args.repeats)
    print(
        f"sweep report from files: {n_jobs} jobs ({args.configs} configs x {args.seeds} seeds) x {args.cases} "
        f"cases, binary, {args.boot} bootstrap resamples; median of {args.repeats}:"
    )
    print(f"  summarize(sweep, plots=False) (read, verdict, summary.md/.csv, verdict.json): {t_md:.2f} s")
    print(f"  summarize(sweep) (also summary.png, curves.png, ranks.png):                 {t_all:.2f} s")
    print(result.cases.sentence[:300] + ("..." if len(result.cases.sentence) > 300 else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=int, default=40)
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sweep", action="store_true", help="time the sweep report end to end from job files")
    args = ap.parse_args()
    if args.sweep:
        bench_sweep(args)
        return

    records = synthetic_records(args.configs, args.cases, args.seeds)
    t_table, _ = timed(lambda: build_table(records), args.repeats)
    t_all, verdict = timed(lambda: summarize(records, higher_is_better=True, n_boot=args.boot), args.repeats)
    t_text, text = timed(lambda: sentence(verdict, split="synthetic", metric="Dice"), args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        t_plot, _ = timed(lambda: plot_ranks(verdict, Path(tmp) / "ranks.png"), args.repeats)
    print(
        f"{args.configs} configs x {args.cases} cases x {args.seeds} seeds ({len(records)} records), "
        f"{args.boot} bootstrap resamples; median of {args.repeats}:"
    )
    print(f"  build_table (records -> paired case means): {t_table:.3f} s")
    print(f"  summarize (everything, incl. build_table):  {t_all:.3f} s")
    print(f"  sentence:                                   {t_text * 1e3:.1f} ms")
    print(f"  plot_ranks:                                 {t_plot:.3f} s")
    print(f"tie set: {len(verdict.tie_set)} of {args.configs}; median Kendall tau = {verdict.tau_median:.3f}")
    print(text[:300] + ("..." if len(text) > 300 else ""))


if __name__ == "__main__":
    main()
