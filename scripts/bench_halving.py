"""Does successive halving find the full grid's winner, and for how many epochs? One run, both sweeps.

    python scripts/bench_halving.py --out outputs/bench_halving -- \\
        loss=ce,dice,focal,tversky,lovasz,ce_dice seed=0,1,2 trainer.max_epochs=27 \\
        --halving hydra.sweeper.b0=3 hydra.sweeper.eta=3

runs the grid twice with the app (train.py by default): every job to trainer.max_epochs (Hydra's basic
sweeper, into <out>/full), and with hydra/sweeper=halving (into <out>/halving). Then it reports each sweep
with segtrain.report (the case-level verdict: test when every job scored one, else val) and prints the full
grid's winner and tie set, the halving sweep's winner and tie set, the epochs each trained (the sum of every
job's epochs_completed) and the wall time. Target: the halving tie set holds the full grid's winner, for at
most 35% of the full grid's epochs. Re-running into the same --out continues both sweeps (crash recovery).

The jobs must write per_case.csv (the end-of-job evaluation), at every rung stop as well: the halving sweeper
decides on its val rows. --app tests/halving_app/fake_app.py runs the fake app of the tests (made-up scores,
no training) to check the plumbing in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segtrain.report import summarize  # noqa: E402
from segtrain.report.runs import collect_runs  # noqa: E402

TARGET = 0.35


def run_sweep(app: Path, sweep: Path, args: list[str]) -> float:
    """``python app -m hydra.sweep.dir=sweep *args``; seconds it took. Raises CalledProcessError on failure."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep}", *args]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - start


def epochs_trained(sweep: Path) -> int:
    return sum(int(r.metrics.get("epochs_completed") or 0) for r in collect_runs(sweep))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="holds full/ and halving/ (re-use to continue)")
    parser.add_argument("--app", type=Path, default=ROOT / "train.py", help="the Hydra app [train.py]")
    parser.add_argument("--halving", nargs="*", default=[], help="extra overrides of the halving sweep only")
    parser.add_argument("--alpha", type=float, default=0.05, help="level of the reports' Holm-Wilcoxon tests")
    parser.add_argument("grid", nargs="+", help="the grid and fixed overrides, as for train.py -m")
    args = parser.parse_args(argv)

    full_dir, halving_dir = args.out / "full", args.out / "halving"
    full_s = run_sweep(args.app, full_dir, args.grid)
    halving_s = run_sweep(args.app, halving_dir, ["hydra/sweeper=halving", *args.grid, *args.halving])

    full = summarize(full_dir, plots=False, alpha=args.alpha)
    halving = summarize(halving_dir, plots=False, alpha=args.alpha)
    if full.verdict is None or halving.verdict is None:
        print("error: a sweep has no case-level verdict (its jobs wrote no per_case.csv)", file=sys.stderr)
        return 2
    h = json.loads((halving_dir / "halving.json").read_text())
    e_full, e_halving = epochs_trained(full_dir), epochs_trained(halving_dir)
    ratio = e_halving / e_full
    found = full.verdict.leader in halving.verdict.tie_set
    result = {
        "full": {"winner": full.verdict.leader, "tie_set": list(full.verdict.tie_set), "split": full.cases.split,
                 "epochs": e_full, "seconds": round(full_s, 1)},
        "halving": {"winner": halving.verdict.leader, "tie_set": list(halving.verdict.tie_set),
                    "split": halving.cases.split, "epochs": e_halving, "seconds": round(halving_s, 1),
                    "schedule": h["schedule"], "survivors_per_rung": [len(r["survivors"]) for r in h["rungs"]]},
        "epochs_ratio": round(ratio, 3),
        "halving_tie_set_holds_full_winner": found,
        "target_met": found and ratio <= TARGET,
    }  # fmt: skip
    (args.out / "bench_halving.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"full grid : winner {result['full']['winner']}, tie set {result['full']['tie_set']} "
          f"(on {full.cases.split}); {e_full} epochs, {full_s:.0f} s")  # fmt: skip
    print(f"halving   : winner {result['halving']['winner']}, tie set {result['halving']['tie_set']} "
          f"(on {halving.cases.split}); {e_halving} epochs, {halving_s:.0f} s; rungs {h['schedule']}, "
          f"configurations alive after each {result['halving']['survivors_per_rung']}")  # fmt: skip
    print(f"halving spent {100 * ratio:.0f}% of the full grid's epochs; its tie set "
          f"{'holds' if found else 'does NOT hold'} the full grid's winner; target (holds it, <= {TARGET:.0%}): "
          f"{'met' if result['target_met'] else 'not met'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
