"""Summarize one or more sweeps (or single runs): summary.csv, summary.md, summary.png, curves.png.

    python scripts/summarize.py multirun/2024-05-01/12-00-00
    python scripts/summarize.py sweep_a sweep_b --out reports/ab --metric val/iou

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
    parser.add_argument("--metric", default=None, help="rank by this metric [the jobs' monitor, e.g. val/dice]")
    parser.add_argument("--mode", choices=("max", "min"), default=None, help="direction of --metric [inferred]")
    parser.add_argument("--no-plots", action="store_true", help="write only summary.csv and summary.md")
    args = parser.parse_args(argv)
    try:
        result = summarize(args.paths, args.out, metric=args.metric, mode=args.mode, plots=not args.no_plots)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.markdown)
    print("wrote " + ", ".join(str(p) for p in result.files), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
