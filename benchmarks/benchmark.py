"""What does segtrain cost on top of the model? Writes benchmark.json and benchmark.md (docs/performance.md).

    python benchmarks/benchmark.py --device cpu            # the default job: unet-resnet18, batch 16, 64x64 shapes
    python benchmarks/benchmark.py --device cuda           # + images/s of unet-resnet34 at 512x512 per precision
    python benchmarks/benchmark.py --device cpu --quick    # tiny sizes, seconds (the smoke test)

Each overhead is a ratio measured in this one process, trainer and bare arms interleaved, medians over
trials after warm-up (benchmarks/_bench_trainer.py holds the method). Data wait reuses benchmarks/bench_data.py.
Whole epochs on real data against a hand-written loop: benchmarks/bench_real.py.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "benchmarks"):  # this checkout's segtrain, and the benchmarks beside us
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
TARGETS = {"trainer_step_ratio": 1.03, "epoch_ratio": 1.05, "metric_fraction": 0.01, "data_wait": 0.05}


def _data_wait(datasets: list[str], steps: int, device, quick: bool, job) -> tuple[dict, dict]:
    """{dataset: fraction or None}, {dataset: note}."""
    fractions, notes = {}, {}
    if quick:  # tiny shapes loader through the trainer's own data_wait (bench_data's default sizes take minutes)
        from _bench_trainer import SHAPES_CLASSES, trainer_data_wait

        from segtrain.data import build_dataset, build_loader

        size = int(job.batch["image"].shape[-1])
        data = build_dataset("shapes", "train", class_names=SHAPES_CLASSES, length=4 * job.batch_size, image_size=size)
        loader = build_loader(data, job.batch_size, shuffle=True, drop_last=True)
        fractions["shapes"] = trainer_data_wait(job, loader, len(loader))
        notes["shapes"] = "quick: tiny shapes loader, Trainer.train_epoch data_wait"
        return fractions, notes
    from bench_data import bench

    for name in datasets:
        try:
            r = bench(name, steps, None, device)
        except Exception as err:  # a data set that is not on this machine
            fractions[name], notes[name] = None, f"not measured: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
            continue
        fractions[name] = r["wait_fraction"]
        notes[name] = (
            f"batch {r['batch']}, {r['workers']} workers, loader {r['loader_img_s']:.0f} img/s, "
            f"step {r['step_img_s']:.1f} img/s"
        )
    return fractions, notes


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _ok(value, target, strict: bool = False) -> str:
    if value is None:
        return ""
    return "yes" if (value < target if strict else value <= target) else "**no**"


def markdown(result: dict) -> str:
    r = result
    lines = [
        f"Measured on {r['machine']} ({r['device']}, torch {r['torch']}, {r['threads']} threads), "
        f"{r['date']}; job: {r['job']}.",
        f"Reproduce: `{r['command']}`",
        "",
        "| measurement | value | target | met |",
        "|---|---|---|---|",
        f"| trainer step / bare step ({r['trainer']['trainer_step_s'] * 1e3:.1f} ms / "
        f"{r['trainer']['bare_step_s'] * 1e3:.1f} ms) | {r['trainer_step_ratio']:.3f} | <= 1.03 | "
        f"{_ok(r['trainer_step_ratio'], TARGETS['trainer_step_ratio'])} |",
        f"| trainer's own work per step (near-free model: {r['trainer']['added_s_per_step'] * 1e6:.0f} us) "
        f"/ bare step | {1 + r['trainer']['added_fraction']:.4f} | <= 1.03 | "
        f"{_ok(1 + r['trainer']['added_fraction'], TARGETS['trainer_step_ratio'])} |",
        f"| epoch with validation + checkpoints / sum of its steps ({r['epoch']['epoch_s']:.2f} s / "
        f"{r['epoch']['bare_s']:.2f} s) | {r['epoch_ratio']:.3f} | <= 1.05 | "
        f"{_ok(r['epoch_ratio'], TARGETS['epoch_ratio'])} |",
        f"| metric update / step ({r['metric']['update_s'] * 1e3:.2f} ms) | {_pct(r['metric_fraction'])} | < 1% | "
        f"{_ok(r['metric_fraction'], TARGETS['metric_fraction'], strict=True)} |",
    ]
    syncs = r["host_syncs"]
    if "note" in syncs:
        lines.append(f"| host syncs per step (trainer / bare / metric update) | {syncs['note']} | metric: 0 | |")
    else:
        lines.append(
            f"| host syncs per step (trainer / bare / metric update) | {syncs['trainer_per_step']:.2f} / "
            f"{syncs['bare_per_step']:.2f} / {syncs['metric_update']} | metric: 0 | "
            f"{_ok(syncs['metric_update'], 0)} |"
        )
    for name, v in r["data_wait_fraction"].items():
        lines.append(f"| data wait, {name} ({r['data_wait_notes'][name]}) | {_pct(v)} | < 5% | {_ok(v, 0.05, True)} |")
    s = r["startup_s"]
    if s:
        imp = r["import_torch_s"]
        lines += [
            f'| `python -c "import torch"` | {imp:.2f} s | | |',
            f"| `python train.py --help` | {s['train_help']:.2f} s ({s['train_help'] / imp:.1f}x) | | |",
            f"| `python train.py` to its first step | {s['first_step']:.2f} s ({s['first_step'] / imp:.1f}x) | | |",
        ]
    if r.get("images_per_s"):
        cuda = r["cuda"]
        lines += [
            "",
            f"{cuda['model']}, batch {cuda['batch']}, {cuda['gpu']}, Trainer.train_epoch:",
            "",
            "| configuration | images/s | vs fp32 | GPU busy (profiler) |",
            "|---|---|---|---|",
        ]
        for name, v in r["images_per_s"].items():
            speed = cuda["amp_speedup_vs_fp32"].get(name)
            busy = cuda["gpu_busy_fraction"].get(name)
            lines.append(
                f"| {name} | {v:.1f} | {'' if speed is None else f'{speed:.2f}x'} | "
                f"{'' if busy is None else f'{100 * busy:.0f}%'} |"
            )
        lines.append("\ntarget: AMP >= 1.8x fp32 on a Hopper-class GPU")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny model and batch, few trials (smoke test)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "benchmark", help="where benchmark.json/.md go")
    parser.add_argument("--trials", type=int, default=None, help="timed trials per arm (default 7; quick 2)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per trial (default 8; quick 2)")
    parser.add_argument(
        "--epoch-batches",
        type=int,
        nargs=2,
        default=None,
        metavar=("TRAIN", "VAL"),
        help="batches in the measured epoch (default 32 8: the default job's epoch)",
    )
    parser.add_argument("--datasets", nargs="+", default=["shapes", "isbi_em", "camvid"])
    parser.add_argument("--data-steps", type=int, default=12, help="steps per data-wait measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--startup-repeats", type=int, default=None, help="default 3; quick 1")
    parser.add_argument("--no-startup", action="store_true")
    parser.add_argument("--no-compile", action="store_true", help="CUDA: leave out the torch.compile runs")
    parser.add_argument("--cuda-batch", type=int, default=16)
    args = parser.parse_args(argv)

    import _bench_trainer as bench
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available here")
    if args.threads:
        torch.set_num_threads(args.threads)
    quick = args.quick
    trials = args.trials or (2 if quick else 7)
    steps = args.steps or (2 if quick else 8)
    n_train, n_val = args.epoch_batches or ((2, 1) if quick else (32, 8))
    args.out.mkdir(parents=True, exist_ok=True)
    bench.quiet_segtrain_logging(args.out / "train.log")
    device = torch.device(args.device)
    say = lambda msg: print(msg, flush=True)  # noqa: E731

    if quick:
        job = bench.build_job(device, encoder="resnet18", image_size=32, batch_size=4, tiny=True)
    else:
        job = bench.build_job(device, encoder="resnet18", image_size=64, batch_size=16)
    say(f"device {device}, precision {job.precision}, {torch.get_num_threads()} threads; job: {job.description}")

    t0 = time.perf_counter()
    trainer = bench.trainer_overhead(job, steps, trials)
    say(
        f"trainer step ratio {trainer['ratio']:.3f}  ({trainer['trainer_step_s'] * 1e3:.1f} vs "
        f"{trainer['bare_step_s'] * 1e3:.1f} ms/step; trials {[round(x, 3) for x in trainer['trial_ratios']]})"
    )
    floor = bench.per_step_overhead(device, steps=20 if quick else 200, trials=trials)
    trainer["added_s_per_step"] = floor["added_s_per_step"]
    trainer["added_fraction"] = floor["added_s_per_step"] / trainer["bare_step_s"]
    say(
        f"trainer adds {floor['added_s_per_step'] * 1e6:.0f} us/step "
        f"(near-free model: {floor['trainer_step_s'] * 1e6:.0f} vs {floor['bare_step_s'] * 1e6:.0f} us) "
        f"= {100 * trainer['added_fraction']:.3f}% of the real step"
    )
    epoch = bench.epoch_overhead(job, n_train, n_val, 1 if quick else max(2, trials // 2))
    say(
        f"epoch ratio {epoch['ratio']:.3f}  ({epoch['epoch_s']:.2f} vs {epoch['bare_s']:.2f} s; "
        f"breakdown { ({k: round(v, 3) for k, v in epoch['breakdown_s'].items()}) })"
    )
    metric = bench.metric_cost(job, trainer["trainer_step_s"])
    say(f"metric update {metric['update_s'] * 1e3:.2f} ms = {100 * metric['fraction']:.2f}% of a step")
    syncs = bench.sync_counts(job)
    say(f"host syncs: {syncs}")
    waits, notes = _data_wait(args.datasets, args.data_steps, device, quick, job)
    say(f"data wait: { ({k: None if v is None else round(v, 4) for k, v in waits.items()}) }")
    startup = {}
    if not args.no_startup:
        startup = bench.startup(args.startup_repeats or (1 if quick else 3), args.device, tiny=quick)
        say(f"start-up: { ({k: round(v, 2) for k, v in startup.items()}) }")
    cuda = {}
    if device.type == "cuda":
        say("CUDA throughput (Trainer.train_epoch, fixed batch on the GPU):")
        cuda = bench.cuda_throughput(
            batch_size=2 if quick else args.cuda_batch,
            image_size=128 if quick else 512,
            steps=3 if quick else 20,
            trials=1 if quick else 3,
            compile_options=(False,) if args.no_compile or quick else (False, True),
            log=say,
        )

    command = "python benchmarks/benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {
        "trainer_step_ratio": trainer["ratio"],
        "epoch_ratio": epoch["ratio"],
        "metric_fraction": metric["fraction"],
        "data_wait_fraction": waits,
        "startup_s": {k: v for k, v in startup.items() if k != "import_torch"},
        "import_torch_s": startup.get("import_torch"),
        "device": str(device) if device.type == "cpu" else f"cuda ({torch.cuda.get_device_name()})",
        **({"images_per_s": cuda["images_per_s"]} if cuda else {}),
        "targets": TARGETS,
        "trainer": trainer,
        "epoch": epoch,
        "metric": metric,
        "host_syncs": syncs,
        "data_wait_notes": notes,
        "cuda": cuda,
        "job": job.description,
        "precision": job.precision,
        "quick": quick,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or platform.node()}, {cpu_name()}",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": command.strip(),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    write_results(args.out, result, markdown(result))
    return 0


def write_results(out: Path, result: dict, table: str) -> None:
    """``out``/benchmark.json (the figures) and benchmark.md (``table``), and the table printed."""
    (out / "benchmark.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "benchmark.md").write_text(table)
    print("\n" + table)
    print(f"wrote {out / 'benchmark.json'} and {out / 'benchmark.md'}")


def cpu_name() -> str:
    """The CPU model and count, for the benchmark records (bench_real.py uses it too)."""
    import os

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs"


if __name__ == "__main__":
    sys.exit(main())
