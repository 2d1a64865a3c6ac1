"""Does a segtrain epoch on real data cost what the loop a user writes by hand costs? Writes benchmark.json.

    SEGTRAIN_DATA=<data root> python benchmarks/bench_real.py                  # isbi_em and camvid, 5 rounds
    SEGTRAIN_DATA=<data root> python benchmarks/bench_real.py --dataset camvid --rounds 3 --threads 2
    python benchmarks/bench_real.py --quick --dataset folder -o dataset.root=<dir> dataset.num_classes=3

Per data set, in one process: a segtrain epoch (Trainer.train_epoch + Trainer.validate with the loaders
``python train.py dataset=<name>`` builds, default settings) and a bare epoch (images decoded once into
memory, the same augmentation pipelines in the main process, no workers, validation one image at a time)
alternate (segtrain, bare; bare, segtrain; ...) after one warm-up round of each; the ratios are medians of the
per-round paired ratios. benchmarks/_bench_real.py holds the arms; docs/performance.md says how to read them.

    epoch ratio     (segtrain train + val) / (bare train + val)             target <= 1.05
    train, val      the same ratio for each half
    data_wait       segtrain's time blocked on the next batch / its train time (val_wait: the same in validation)
    loader_cost     segtrain's training time with its loader working, less the data wait, over the same
                    Trainer.train_epoch on the same number of batches taken from the loader beforehand (the
                    loader idle), minus 1: what the loader's workers take from the steps
    step_vs_bare    segtrain's (train - data wait) over the bare loop's (train - batch preparation), minus 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
from benchmark import cpu_name, write_results  # noqa: E402

TARGET = 1.05


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Arms:
    """The two arms, each in its own spawned process (benchmarks/_bench_real.arm_process)."""

    def __init__(self, name: str, overrides: list[str], threads: int | None) -> None:
        import multiprocessing

        from _bench_real import arm_process

        ctx = multiprocessing.get_context("spawn")
        self.conns, self.procs, self.info = {}, {}, {}
        for arm in ("segtrain", "bare"):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=arm_process, args=(child, arm, name, overrides, threads), daemon=False)
            proc.start()
            self.conns[arm], self.procs[arm] = parent, proc
        for arm in ("segtrain", "bare"):
            self.info[arm] = self._answer(arm)

    def _answer(self, arm: str) -> dict:
        msg = self.conns[arm].recv()
        if "error" in msg:
            self.close()
            raise RuntimeError(f"the {arm} arm failed: {msg['error']}\n{msg['traceback']}")
        return msg

    def epoch(self, arm: str) -> dict:
        self.conns[arm].send("epoch")
        return self._answer(arm)

    def idle_train(self) -> float:
        """Seconds of the segtrain arm's training epoch over batches prepared beforehand (loader idle)."""
        self.conns["segtrain"].send("idle")
        return self._answer("segtrain")["idle_train_s"]

    def close(self) -> None:
        for arm, conn in self.conns.items():
            try:
                conn.send("stop")
            except OSError:
                pass
            self.procs[arm].join(timeout=60)


def measure(name: str, overrides: list[str], rounds: int, threads: int | None, say) -> dict:
    """Alternating rounds of the two arms on data set ``name``; the summary and every round's figures."""
    arms = Arms(name, overrides, threads)
    seg, bare = arms.info["segtrain"], arms.info["bare"]
    say(seg["job"])
    say(f"  bare loop decoded {bare['decoded_images']} images in {bare['decode_s']:.1f} s ({bare['memory_mb']:.0f} MB)")
    for report in seg.get("cache") or []:
        if report:
            say(f"  segtrain dataset cache {report}")
    n = seg["train_batches"]
    rows = []
    for r in range(rounds + 1):  # round 0 warms up both arms (worker start-up, allocator, first-touch pages)
        out: dict[str, dict] = {}
        for arm in ("segtrain", "bare") if r % 2 == 0 else ("bare", "segtrain"):
            out[arm] = arms.epoch(arm)
            if arm == "segtrain":
                out[arm]["idle_train_s"] = arms.idle_train()
        s, b = out["segtrain"], out["bare"]
        row = {
            "round": r,
            "segtrain": {k: round(v, 4) for k, v in s.items()},
            "bare": {k: round(v, 4) for k, v in b.items()},
            "epoch_ratio": (s["train_s"] + s["val_s"]) / (b["train_s"] + b["val_s"]),
            "train_ratio": s["train_s"] / b["train_s"],
            "val_ratio": s["val_s"] / b["val_s"],
            "data_wait": s["data_wait_s"] / s["train_s"],
            "val_wait": s["val_wait_s"] / s["val_s"],
            "loader_cost": (s["train_s"] - s["data_wait_s"]) / s["idle_train_s"] - 1,
            "step_vs_bare": (s["train_s"] - s["data_wait_s"]) / (b["train_s"] - b["prep_s"]) - 1,
            "bare_prep": b["prep_s"] / b["train_s"],
            "cpu_ratio": (s["cpu_s"] + s["worker_cpu_s"]) / (b["cpu_s"] + b["worker_cpu_s"]),
        }
        say(
            f"  {'warm-up' if r == 0 else f'round {r}'}: segtrain {s['train_s']:.2f} + {s['val_s']:.2f} s "
            f"(waits {s['data_wait_s']:.2f} + {s['val_wait_s']:.2f}), "
            f"bare {b['train_s']:.2f} + {b['val_s']:.2f} s (prep {b['prep_s']:.2f}); "
            f"epoch {row['epoch_ratio']:.3f} train {row['train_ratio']:.3f} val {row['val_ratio']:.3f} "
            f"loader cost {100 * row['loader_cost']:+.1f}% (idle-loader epoch {s['idle_train_s']:.2f} s); "
            f"CPU s {s['cpu_s']:.1f} + workers {s['worker_cpu_s']:.1f} "
            f"vs {b['cpu_s']:.1f} (ratio {row['cpu_ratio']:.3f}); page faults {s['minflt']} vs {b['minflt']}, "
            f"preempted {s['nivcsw']} vs {b['nivcsw']}, waits {s['nvcsw']} vs {b['nvcsw']}; "
            f"peak RSS {s['peak_rss_mb']:.0f} vs {b['peak_rss_mb']:.0f} MB"
        )
        rows.append(row)
    timed = rows[1:]
    summary = {k: _median([r[k] for r in timed]) for k in ("epoch_ratio", "train_ratio", "val_ratio")}
    for k in ("data_wait", "val_wait", "loader_cost", "step_vs_bare", "bare_prep", "cpu_ratio"):
        summary[k] = _median([r[k] for r in timed])
    for arm in ("segtrain", "bare"):
        summary[f"{arm}_epoch_s"] = _median([r[arm]["train_s"] + r[arm]["val_s"] for r in timed])
        summary[f"{arm}_peak_rss_mb"] = round(rows[-1][arm]["peak_rss_mb"])
    summary.update(
        {
            "job": seg["job"],
            "train_batches": n,
            "bare_decoded_mb": round(bare["memory_mb"], 1),
            "cache": seg.get("cache"),
            "rounds": rows,
        }
    )
    arms.close()
    return summary


def markdown(result: dict) -> str:
    lines = [
        f"Measured on {result['machine']}, torch {result['torch']}, {result['threads']} threads, {result['date']}.",
        f"Reproduce: `{result['command']}`",
        "",
        "| data set | segtrain epoch / bare epoch | train | validation | data wait (train, val) | loader cost "
        "| CPU s ratio | target | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["datasets"].items():
        lines.append(
            f"| {name} ({r['segtrain_epoch_s']:.1f} s / {r['bare_epoch_s']:.1f} s) | {r['epoch_ratio']:.3f} | "
            f"{r['train_ratio']:.3f} | {r['val_ratio']:.3f} | {100 * r['data_wait']:.1f}%, "
            f"{100 * r['val_wait']:.1f}% | {100 * r['loader_cost']:+.1f}% | {r['cpu_ratio']:.3f} | <= {TARGET} | "
            f"{'yes' if r['epoch_ratio'] <= TARGET else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", nargs="+", default=["isbi_em", "camvid"], help="dataset config names")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds after the warm-up (default 5; quick 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads, both arms")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_real", help="output folder")
    parser.add_argument(
        "-o", "--override", nargs="*", default=[], metavar="KEY=VALUE", help="Hydra overrides for every data set"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 2 train and 2 val batches of batch 2, one timed round"
    )
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = args.rounds or (1 if args.quick else 5)
    overrides = list(args.override)
    if args.quick:
        overrides = [
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=2",
            "dataset.loader.batch_size=2",
            "+model.encoder_depth=3",
            "model.decoder_channels=[16,16,16]",
            *overrides,
        ]
    args.out.mkdir(parents=True, exist_ok=True)
    from _bench_real import quiet_logging

    quiet_logging(args.out / "bench_real.log")
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    say(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    start = time.perf_counter()
    datasets = {name: measure(name, overrides, rounds, args.threads, say) for name in args.dataset}
    command = "python benchmarks/bench_real.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {
        "datasets": datasets,
        "target_epoch_ratio": TARGET,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {cpu_name()}",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": command.strip(),
        "quick": args.quick,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    write_results(args.out, result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
