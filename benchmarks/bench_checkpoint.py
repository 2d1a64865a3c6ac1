"""What does a mid-epoch checkpoint cost the training step? Writes checkpoint_cost.json.

    SEGTRAIN_DATA=<data root> python benchmarks/bench_checkpoint.py                    # isbi_em, 6 rounds
    python benchmarks/bench_checkpoint.py --quick --dataset folder -o dataset.root=<dir> dataset.num_classes=3

One process, one job built as ``python train.py dataset=<name>`` builds it (benchmarks/_bench_real.build_run).
Epochs alternate between no mid-epoch checkpoint and one every ``--every`` optimizer steps (off, on; on, off;
...) after a warm-up epoch of each, on the same trainer; last.pt goes to a temp directory through the
trainer's own background writer (Trainer.train_epoch(writer)). Per round, the extra seconds of the epoch with
checkpoints over the one without, divided by the checkpoints written, is the cost of one checkpoint; the
median over rounds, divided by the default interval (trainer.checkpoint_every_minutes), is the share of
training time the default costs. ``save_blocking_s`` is the part the training thread waits in
``CheckpointWriter.save`` (the state copied to the CPU, and the previous write if it is still going).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def measure(name: str, overrides: list[str], rounds: int, every: int, threads: int | None) -> dict:
    """Alternating epochs without and with a checkpoint every ``every`` steps; see the module docstring."""
    import torch
    from _bench_real import build_run, quiet_logging

    from segtrain.checkpoint import CheckpointWriter
    from segtrain.engine import TrainerConfig

    if threads:
        torch.set_num_threads(threads)
    run = build_run(name, overrides)
    quiet_logging(Path(run.tmp.name) / "bench.log")
    trainer = run.trainer
    blocking = {"s": 0.0, "n": 0}

    class TimedWriter(CheckpointWriter):
        def save(self, *args, **kwargs) -> None:
            start = time.perf_counter()
            super().save(*args, **kwargs)
            blocking["s"] += time.perf_counter() - start
            blocking["n"] += 1

    writer = TimedWriter()

    def epoch(with_checkpoints: bool) -> tuple[float, int]:
        trainer.cfg.checkpoint_every_minutes = None
        trainer.cfg.checkpoint_every_n_steps = every if with_checkpoints else None
        saves = blocking["n"]
        start = time.perf_counter()
        trainer.train_epoch(writer)
        writer.wait()  # the last write's tail belongs to this epoch
        return time.perf_counter() - start, blocking["n"] - saves

    epoch(False), epoch(True)  # warm-up
    blocking.update(s=0.0, n=0)
    per_round, off_s, on_s = [], [], []
    for r in range(rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        times = {}
        for arm in order:
            times[arm] = epoch(arm)
        (t_off, _), (t_on, n) = times[False], times[True]
        off_s.append(t_off)
        on_s.append(t_on)
        per_round.append((t_on - t_off) / max(n, 1))
    n_steps = trainer.steps_per_epoch
    per_checkpoint = statistics.median(per_round)
    default_minutes = TrainerConfig().checkpoint_every_minutes
    step_s = statistics.median(off_s) / n_steps
    last = Path(trainer.run_dir) / "checkpoints" / "last.pt"
    return {
        "dataset": name,
        "steps_per_epoch": n_steps,
        "every_n_steps": every,
        "checkpoints_per_epoch": len(range(every, n_steps, every)),
        "checkpoint_mb": round(last.stat().st_size / 2**20, 1) if last.exists() else None,
        "step_s": round(step_s, 4),
        "epoch_s_without": [round(v, 3) for v in off_s],
        "epoch_s_with": [round(v, 3) for v in on_s],
        "epoch_ratio_median": round(statistics.median(b / a for a, b in zip(off_s, on_s, strict=True)), 4),
        "cost_per_checkpoint_s": round(per_checkpoint, 4),
        "cost_per_checkpoint_steps": round(per_checkpoint / step_s, 3),
        "save_blocking_s": round(blocking["s"] / max(blocking["n"], 1), 4),
        "default_every_minutes": default_minutes,
        "cost_at_default": round(max(per_checkpoint, 0.0) / (60 * default_minutes), 6) if default_minutes else 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="isbi_em")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--every", type=int, default=2, help="optimizer steps between checkpoints in the 'on' arm")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="2 rounds (the test's setting)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for checkpoint_cost.json")
    parser.add_argument("-o", "--overrides", nargs="*", default=[], help="config overrides, e.g. dataset.root=...")
    args = parser.parse_args(argv)
    rounds = 2 if args.quick else args.rounds
    result = measure(args.dataset, args.overrides, rounds, args.every, args.threads)
    result.update(overrides=args.overrides, rounds=rounds, threads=args.threads or os.environ.get("OMP_NUM_THREADS"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "checkpoint_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
