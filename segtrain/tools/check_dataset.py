"""Scan a whole data set and list every problem at once (exit status 1 if there is any).

python scripts/check_dataset.py dataset=camvid
python scripts/check_dataset.py dataset=folder dataset.root=/data/mine --splits train val test
"""

from __future__ import annotations

import argparse
import sys
import time

from segtrain.tools.compose import dataset_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. dataset=camvid dataset.root=...")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], help="splits to scan [train val]")
    args = parser.parse_args(argv)

    from segtrain.data import check_dataset

    name, kwargs, _ = dataset_config(args.overrides)
    print(f"checking data set '{name}' at {kwargs.get('root')} (splits: {', '.join(args.splits)})")
    start = time.perf_counter()
    counts: dict[str, int] = {}

    def progress(split: str, done: int, total: int) -> None:
        counts[split] = total

    problems = check_dataset(name, splits=args.splits, progress=progress, **kwargs)
    took = time.perf_counter() - start
    scanned = ", ".join(f"{split}: {n} samples" for split, n in counts.items()) or "no samples"
    if problems:
        print(f"{len(problems)} problem(s) ({scanned}; {took:.1f} s):")
        for p in problems:
            print(f"- {p}")
        return 1
    print(f"OK: no problems ({scanned}; {took:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
