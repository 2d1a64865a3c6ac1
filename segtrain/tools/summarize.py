"""Summarize one or more sweeps (or single runs): summary.csv, summary.md, summary.png, curves.png, and,
when the jobs wrote per_case.csv, the case-level verdict (verdict.json, ranks.png).

    python scripts/summarize.py multirun/2024-05-01/12-00-00
    python scripts/summarize.py sweep_a sweep_b --out reports/ab --metric val/iou
    python scripts/summarize.py multirun/2024-05-01/12-00-00 --alpha 0.01 --metric hd95 --rope 2

Prints summary.md to stdout. The work is done by segtrain.report.summarize.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segtrain.report import summarize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="sweep directories (Hydra multirun) or run dirs")
    parser.add_argument("--out", type=Path, default=None, help="where to write the outputs [first path]")
    parser.add_argument(
        "--metric", default=None, help="rank by this metric [per-case dice; without per_case.csv the jobs' monitor]"
    )
    parser.add_argument("--mode", choices=("max", "min"), default=None, help="direction of --metric [inferred]")
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="family-wise level of the 'worse' calls (Holm over all pairs) [0.05]"
    )
    parser.add_argument(
        "--rope",
        type=float,
        default=None,
        help="region of practical equivalence in the metric's units: differences inside +-rope do not matter "
        "to you (e.g. the Dice between two annotators) [0.01 for Dice, IoU, NSD, clDice; 1 pixel for HD95]",
    )
    parser.add_argument(
        "--case-only",
        action="store_true",
        help="leave training noise out: compare these trained models on the cases, not the configurations "
        "(the only way to call anything worse with one seed; labelled in the report)",
    )
    parser.add_argument("--boot", type=int, default=1000, help="resamples of seeds and cases for rank stability [1000]")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG (summary.csv, summary.md, verdict.json)")
    args = parser.parse_args(argv)
    try:
        result = summarize(
            args.paths,
            args.out,
            metric=args.metric,
            mode=args.mode,
            plots=not args.no_plots,
            alpha=args.alpha,
            rope=args.rope,
            case_only=args.case_only,
            n_boot=args.boot,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.markdown)
    print("wrote " + ", ".join(str(p) for p in result.files), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
