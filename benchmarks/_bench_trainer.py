"""Measuring code behind ``benchmarks/benchmark.py``: how much the framework costs on top of the model.

Tooling, not library: it times the Trainer's own methods from outside, so it lives beside the script.

Every overhead is a ratio taken in one process, arms interleaved (A B, B A, A B, ...) on the same
model, batch and loss, with the weights, optimizer and scheduler restored before each trial, so that
the machine's load weighs on both arms alike; the reported value is the median, over trials after
warm-up, of each trial's paired ratio (the two arms of a trial run back to back, so a burst of load
from elsewhere touches one ratio, not the median). Ratios of the medians and of the minima are kept
beside it.

    trainer step   Trainer.train_epoch() over N identical batches already on the device, everything on
                   as in a normal run (autocast, the non-finite check, scheduler, progress bar, loss
                   postfix every log_every_n_steps)  /  N hand-written steps (forward, loss, backward, step)
    epoch          the middle epoch of a three-epoch Trainer.fit() (train, validate with metrics and
                   overlays, history.csv, metrics.json, TensorBoard, last.pt + best.pt handed to the
                   background writer)  /  the bare train steps plus bare validation forwards of the same
                   batches
    metric         SegMetrics.update() on one training batch's logits  /  the trainer's step time
    start-up       wall time of ``python train.py --help`` and of a default job up to its first step,
                   next to ``python -c "import torch"``
    CUDA           images/s of the trainer for each precision x channels_last x torch.compile; host
                   syncs per step (torch.cuda.set_sync_debug_mode); GPU busy fraction from the profiler

Nothing here imports Hydra; the start-up probes run ``train.py`` in a subprocess.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segtrain.data import build_dataset, build_loader
from segtrain.engine import Trainer, TrainerConfig
from segtrain.engine.trainer import resolve_precision
from segtrain.losses import build_loss
from segtrain.metrics import SegMetrics
from segtrain.models import build_model
from segtrain.optim import build_optimizer, build_scheduler
from segtrain.trackers import Trackers
from segtrain.trackers.tensorboard_tracker import TensorBoardTracker

ROOT = Path(__file__).resolve().parents[1]
SHAPES_CLASSES = ["background", "ellipse", "rectangle", "triangle"]
AMP_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class FixedBatches:
    """A stand-in loader: the same pre-built batch ``n`` times, so no arm pays for data."""

    def __init__(self, batch: dict[str, Any], n: int) -> None:
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self.batch for _ in range(self.n))


@dataclass
class Job:
    """One model, loss, optimizer and batch shared by every arm of a measurement."""

    model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    batch: dict[str, Any]  # on the device
    device: torch.device
    precision: str
    description: str
    num_classes: int = 4
    _saved: dict[str, Any] = field(default_factory=dict, repr=False)

    def snapshot(self) -> None:
        self._saved = {
            "model": copy.deepcopy(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
        }

    def restore(self) -> None:
        """Weights and optimizer state (moments, lr) back to the snapshot: every trial starts alike."""
        self.model.load_state_dict(self._saved["model"])
        self.optimizer.load_state_dict(self._saved["optimizer"])
        self.optimizer.zero_grad(set_to_none=True)

    @property
    def batch_size(self) -> int:
        return int(self.batch["image"].shape[0])

    def metrics(self) -> SegMetrics:
        return SegMetrics(self.num_classes, "multiclass", None, SHAPES_CLASSES, device=self.device)


def build_job(
    device: str | torch.device = "cpu",
    precision: str = "auto",
    encoder: str = "resnet18",
    image_size: int = 64,
    batch_size: int = 16,
    loss: str = "ce_dice",
    tiny: bool = False,
    seed: int = 0,
) -> Job:
    """The default job's pieces (unet, ce_dice, AdamW, a batch of the shapes data set) on ``device``.

    ``tiny`` shrinks the model (3 encoder stages, 16-channel decoder) for smoke tests.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    extra = {"encoder_depth": 3, "decoder_channels": (16, 16, 16)} if tiny else {}
    model = build_model("unet", encoder_name=encoder, classes=4, **extra).to(device)
    loss_fn = build_loss(loss, mode="multiclass", ignore_index=None)
    optimizer = build_optimizer("adamw", model.parameters(), lr=1e-3, weight_decay=1e-4)
    data = build_dataset("shapes", split="train", class_names=SHAPES_CLASSES, length=batch_size, image_size=image_size)
    batch = next(iter(build_loader(data, batch_size)))
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    job = Job(
        model,
        loss_fn,
        optimizer,
        batch,
        device,
        resolve_precision(precision, device),
        f"unet-{encoder}{' (tiny)' if tiny else ''}, {loss}, AdamW, batch {batch_size}x3x{image_size}x{image_size}",
    )
    job.snapshot()
    return job


def make_trainer(
    job: Job, run_dir: Path, n_train: int, n_val: int = 1, train_loader: Any = None, **overrides: Any
) -> Trainer:
    """A Trainer as ``python train.py`` builds it (progress bar, TensorBoard, checkpoints on), fed fixed
    batches unless ``train_loader`` is given."""
    settings = dict(
        device=str(job.device),
        precision=job.precision,
        max_epochs=1,
        limit_train_batches=n_train,
        limit_val_batches=n_val,
        resume=None,
    )
    settings.update(overrides)
    tensorboard = settings.pop("tensorboard", True)
    trackers = Trackers([TensorBoardTracker(Path(run_dir) / "tb")]) if tensorboard else None
    return Trainer(
        TrainerConfig(**settings),
        job.model,
        job.loss_fn,
        job.optimizer,
        lambda opt, total: build_scheduler("poly", opt, total),
        train_loader if train_loader is not None else FixedBatches(job.batch, n_train),
        FixedBatches(job.batch, n_val),
        job.metrics(),
        run_dir,
        run_info={"loss": "ce_dice", "model": "unet", "dataset": "shapes", "seed": 0},
        trackers=trackers,
    )


def bare_train_steps(job: Job, n: int) -> None:
    """The minimal loop: forward (under the same autocast), loss, backward, step."""
    model, loss_fn, opt = job.model, job.loss_fn, job.optimizer
    x, y = job.batch["image"], job.batch["mask"]
    dtype = AMP_DTYPES.get(job.precision)
    scaler = torch.amp.GradScaler(job.device.type, enabled=job.precision == "16-mixed")
    model.train()
    for _ in range(n):
        with torch.autocast(job.device.type, dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)


@torch.no_grad()
def bare_val_steps(job: Job, n: int) -> None:
    model, x, y = job.model, job.batch["image"], job.batch["mask"]
    dtype = AMP_DTYPES.get(job.precision)
    model.eval()
    for _ in range(n):
        with torch.autocast(job.device.type, dtype=dtype, enabled=dtype is not None):
            job.loss_fn(model(x), y)


def interleaved(
    arms: dict[str, Callable[[], Any]], trials: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """Seconds of each arm per trial (or the float an arm returns); the order alternates (A B, B A, ...) so
    drift hits both arms."""
    names = list(arms)
    times: dict[str, list[float]] = {name: [] for name in names}
    for trial in range(warmup + trials):
        order = names if trial % 2 == 0 else names[::-1]
        for name in order:
            synchronize(device)
            start = time.perf_counter()
            out = arms[name]()
            synchronize(device)
            if trial >= warmup:  # an arm may return the seconds of the span it measured itself
                times[name].append(out if isinstance(out, float) else time.perf_counter() - start)
    return times


def trainer_overhead(job: Job, steps: int, trials: int, warmup: int = 1, **trainer_overrides: Any) -> dict[str, Any]:
    """Trainer.train_epoch() over ``steps`` batches versus ``steps`` bare steps."""
    with tempfile.TemporaryDirectory(prefix="segtrain-bench-") as tmp:
        trainer = make_trainer(job, Path(tmp), steps, **trainer_overrides)
        sched_state = trainer.scheduler.state_dict()

        def trainer_arm() -> None:
            job.restore()
            trainer.scheduler.load_state_dict(sched_state)
            trainer.train_epoch()

        def bare_arm() -> None:
            job.restore()
            bare_train_steps(job, steps)

        times = interleaved({"trainer": trainer_arm, "bare": bare_arm}, trials, warmup, job.device)
    t, b = median(times["trainer"]), median(times["bare"])
    ratios = [x / y for x, y in zip(times["trainer"], times["bare"], strict=True)]
    return {
        "trainer_step_s": t / steps,
        "bare_step_s": b / steps,
        "ratio": median(ratios),  # median of the paired (adjacent in time) trial ratios
        "ratio_of_medians": t / b,
        "ratio_of_minima": min(times["trainer"]) / min(times["bare"]),
        "trial_ratios": ratios,
        "steps_per_trial": steps,
        "trials": trials,
    }


def per_step_overhead(device: str | torch.device, precision: str = "auto", steps: int = 200, trials: int = 7) -> dict:
    """Absolute seconds the trainer adds per step, measured with a model that costs next to nothing
    (one 1x1 convolution on a 2x3x8x8 batch), where the loop's own work is not drowned by the model's.
    Divided by a real step's time it bounds the trainer's overhead independently of machine noise."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 1).to(device)
    batch = {
        "image": torch.randn(2, 3, 8, 8, device=device),
        "mask": torch.randint(0, 4, (2, 8, 8), device=device),
        "id": ["a", "b"],
    }
    job = Job(
        model,
        build_loss("ce_dice", mode="multiclass", ignore_index=None),
        build_optimizer("adamw", model.parameters(), lr=1e-3),
        batch,
        device,
        resolve_precision(precision, device),
        "1x1 conv, batch 2x3x8x8",
    )
    job.snapshot()
    r = trainer_overhead(job, steps, trials)
    return {"added_s_per_step": r["trainer_step_s"] - r["bare_step_s"], **r}


def epoch_overhead(job: Job, n_train: int, n_val: int, trials: int, warmup: int = 1) -> dict[str, Any]:
    """A steady-state Trainer.fit() epoch versus the sum of its bare train steps and validation forwards.

    Each trial fits three epochs and times the middle one, from the start of its training to the start of
    the next epoch's: training, validation, records, and the checkpoint handed to the background writer
    (whose previous write may still be running), as every epoch but the last of a real run.
    """
    parts: dict[str, list[float]] = {"train_epoch": [], "validate": [], "records_and_checkpoint": []}
    with tempfile.TemporaryDirectory(prefix="segtrain-bench-") as tmp:
        counter = iter(range(10**6))

        def fit_arm() -> float:
            job.restore()
            run_dir = Path(tmp) / f"run{next(counter)}"
            trainer = make_trainer(job, run_dir, n_train, n_val, max_epochs=3)
            marks: list[tuple[str, float, float]] = []
            for name in ("train_epoch", "validate"):  # time the halves without touching the trainer's code
                inner = getattr(trainer, name)

                def timed(*args, inner=inner, name=name, **kwargs):  # fit() passes train_epoch its writer
                    start = time.perf_counter()
                    out = inner(*args, **kwargs)
                    synchronize(job.device)
                    marks.append((name, start, time.perf_counter()))
                    return out

                setattr(trainer, name, timed)
            trainer.fit()
            (_, train_start, train_end), (_, val_start, val_end), (_, next_start, _) = marks[2:5]
            epoch = next_start - train_start
            parts["train_epoch"].append(train_end - train_start)
            parts["validate"].append(val_end - val_start)
            parts["records_and_checkpoint"].append(epoch - (train_end - train_start) - (val_end - val_start))
            return epoch

        def bare_arm() -> None:
            job.restore()
            bare_train_steps(job, n_train)
            bare_val_steps(job, n_val)

        times = interleaved({"fit": fit_arm, "bare": bare_arm}, trials, warmup, job.device)
    for name in parts:
        parts[name] = parts[name][warmup:]
    f, b = median(times["fit"]), median(times["bare"])
    ratios = [x / y for x, y in zip(times["fit"], times["bare"], strict=True)]
    checkpoint_mb = sum(p.numel() * p.element_size() for p in job.model.state_dict().values()) * 3 / 2**20
    return {
        "epoch_s": f,
        "bare_s": b,
        "ratio": median(ratios),  # median of the paired trial ratios
        "ratio_of_medians": f / b,
        "ratio_of_minima": min(times["fit"]) / min(times["bare"]),
        "trial_ratios": ratios,
        "breakdown_s": {name: median(v) for name, v in parts.items()},
        "train_batches": n_train,
        "val_batches": n_val,
        "checkpoint_mb_approx": round(checkpoint_mb, 1),  # weights + AdamW's two moments
        "trials": trials,
    }


def trainer_data_wait(job: Job, loader: Any, steps: int) -> float:
    """Fraction of Trainer.train_epoch() time spent in ``next(loader)`` and the copy to the device
    (the trainer's own ``data_wait``), over ``steps`` batches of a real loader."""
    with tempfile.TemporaryDirectory(prefix="segtrain-bench-") as tmp:
        trainer = make_trainer(job, Path(tmp), steps, train_loader=loader)
        job.restore()
        trainer.train_epoch()  # warm-up (workers start, allocator)
        job.restore()
        start = time.perf_counter()
        _, wait = trainer.train_epoch()
        synchronize(job.device)
        return wait / (time.perf_counter() - start)


def metric_cost(job: Job, step_s: float, repeats: int = 20) -> dict[str, Any]:
    """Seconds of one SegMetrics.update on a training batch's logits, and its share of a step."""
    dtype = AMP_DTYPES.get(job.precision)
    with torch.no_grad(), torch.autocast(job.device.type, dtype=dtype, enabled=dtype is not None):
        job.model.eval()
        logits = job.model(job.batch["image"])
    metrics, y = job.metrics(), job.batch["mask"]
    metrics.update(logits, y)  # warm-up
    synchronize(job.device)
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            metrics.update(logits, y)
        synchronize(job.device)
        runs.append((time.perf_counter() - start) / repeats)
    update_s = median(runs)
    return {"update_s": update_s, "fraction": update_s / step_s}


def count_syncs(fn: Callable[[], Any]) -> int:
    """Host-device synchronisations made by ``fn`` on CUDA (torch.cuda.set_sync_debug_mode('warn'))."""
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    return sum("synchroniz" in str(w.message) for w in caught)


def sync_counts(job: Job, steps: int = 10) -> dict[str, Any]:
    """Host syncs per training step (trainer and bare loop) and per metric update; CUDA only."""
    if job.device.type != "cuda":
        return {"note": "n/a (CPU)"}
    with tempfile.TemporaryDirectory(prefix="segtrain-bench-") as tmp:
        trainer = make_trainer(job, Path(tmp), steps)
        job.restore()
        trainer.train_epoch()  # warm-up (cuDNN autotune, allocator)
        job.restore()
        per_epoch = count_syncs(trainer.train_epoch)
    job.restore()
    bare = count_syncs(lambda: bare_train_steps(job, steps))
    with torch.no_grad():
        logits = job.model(job.batch["image"])
    metrics = job.metrics()
    update = count_syncs(lambda: metrics.update(logits, job.batch["mask"]))
    return {
        "trainer_per_step": per_epoch / steps,  # includes the epoch's final loss .item() / steps
        "bare_per_step": bare / steps,
        "metric_update": update,
        "steps": steps,
    }


# ---------------------------------------------------------------------------------------- start-up
def _timed_run(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=600)
    return time.perf_counter() - start


def _time_to_first_step(overrides: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds from launching ``python train.py`` until it logs 'device ..., precision ...' (the line
    the trainer writes right before its first step). The process is stopped there."""
    cmd = [sys.executable, str(ROOT / "train.py"), *overrides]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen, tail = math.nan, []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = (tail + [line])[-20:]
            if "precision" in line and "train batches/epoch" in line:
                seen = time.perf_counter() - start
                break
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    if math.isnan(seen):
        raise RuntimeError(f"train.py never reached its first step ({' '.join(cmd)}):\n{''.join(tail)}")
    return seen


def startup(repeats: int, device: str, tiny: bool = False) -> dict[str, Any]:
    """Median wall seconds of ``import torch``, ``train.py --help`` and a default job's first step."""
    with tempfile.TemporaryDirectory(prefix="segtrain-bench-") as tmp:
        env = {**os.environ, "SEGTRAIN_OUTPUT": str(Path(tmp) / "outputs"), "PYTHONUNBUFFERED": "1"}
        job = [
            f"trainer.device={device}",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1",
            "trainer.progress_bar=false",
            "job.skip_completed=false",
            f"hydra.run.dir={Path(tmp) / 'run'}",
        ]
        if tiny:
            job += ["dataset.image_size=32", "dataset.length.train=8", "dataset.length.val=8"]
        times: dict[str, list[float]] = {"import_torch": [], "train_help": [], "first_step": []}
        for _ in range(repeats):
            times["import_torch"].append(_timed_run([sys.executable, "-c", "import torch"], env, Path(tmp)))
            times["train_help"].append(_timed_run([sys.executable, str(ROOT / "train.py"), "--help"], env, Path(tmp)))
            times["first_step"].append(_time_to_first_step(job, env, Path(tmp)))
    return {name: median(v) for name, v in times.items()}


# ---------------------------------------------------------------------------------------- CUDA
def config_name(precision: str, channels_last: bool, compile: bool) -> str:
    name = {"32": "fp32"}.get(precision, precision)
    return name + ("+channels_last" if channels_last else "") + ("+compile" if compile else "")


def _gpu_busy_fraction(fn: Callable[[], Any]) -> float:
    """Summed GPU kernel time / wall time of ``fn`` under torch.profiler (one stream: kernels do not overlap)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    busy_us = 0.0
    for event in prof.events():
        if str(getattr(event, "device_type", "")).endswith("CUDA"):
            busy_us += getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0.0)
    return busy_us / 1e6 / wall


def cuda_throughput(
    batch_size: int = 16,
    image_size: int = 512,
    encoder: str = "resnet34",
    steps: int = 20,
    trials: int = 3,
    precisions: tuple[str, ...] = ("32", "bf16-mixed", "16-mixed"),
    compile_options: tuple[bool, ...] = (False, True),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Trainer images/s for unet-``encoder`` at ``image_size`` per precision x channels_last x compile."""
    torch.backends.cudnn.benchmark = True
    images_per_s: dict[str, float] = {}
    gpu_busy: dict[str, float] = {}
    for precision in precisions:
        for channels_last in (False, True):
            for compiled in compile_options:
                name = config_name(precision, channels_last, compiled)
                torch._dynamo.reset()
                # channels_last: the trainer converts model and batch itself, as in a real run
                job = build_job("cuda", precision, encoder, image_size, batch_size)
                with tempfile.TemporaryDirectory(prefix="segtrain-bench-") as tmp:
                    trainer = make_trainer(job, Path(tmp), steps, channels_last=channels_last, compile=compiled)
                    trainer.train_epoch()  # warm-up: cuDNN autotuning, compilation
                    runs = []
                    for _ in range(trials):
                        torch.cuda.synchronize()
                        start = time.perf_counter()
                        trainer.train_epoch()
                        torch.cuda.synchronize()
                        runs.append(time.perf_counter() - start)
                    images_per_s[name] = steps * batch_size / median(runs)
                    if not compiled:
                        gpu_busy[name] = _gpu_busy_fraction(trainer.train_epoch)
                log(
                    f"  {name:<34} {images_per_s[name]:8.1f} images/s"
                    + (f"  GPU busy {100 * gpu_busy[name]:.0f}%" if name in gpu_busy else "")
                )
                del trainer, job
                torch.cuda.empty_cache()
    fp32 = images_per_s.get("fp32")
    speedup = {k: v / fp32 for k, v in images_per_s.items() if fp32 and not k.startswith("fp32")}
    return {
        "images_per_s": images_per_s,
        "gpu_busy_fraction": gpu_busy,
        "amp_speedup_vs_fp32": speedup,
        "model": f"unet-{encoder}",
        "batch": f"{batch_size}x3x{image_size}x{image_size}",
        "gpu": torch.cuda.get_device_name(),
    }


def quiet_segtrain_logging(path: Path | None = None) -> None:
    """Send the trainer's log lines to ``path`` (as train.log would) instead of the console."""
    logger = logging.getLogger("segtrain")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler: logging.Handler = logging.FileHandler(path) if path else logging.NullHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logger.addHandler(handler)
