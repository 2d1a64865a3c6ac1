"""Measuring code behind ``benchmarks/bench_real.py``: a segtrain epoch on a real data set against the loop a
user writes by hand on the same data.

Tooling, not library. Both arms share one model, loss and optimizer (restored from a snapshot before every
arm, so each starts from the same weights and moments) and the same augmentation pipelines:

    segtrain   the Trainer and loaders exactly as ``python train.py dataset=<name>`` builds them (the data
               set's loader settings: workers, batch sizes, persistent workers; validation in batches);
               ``Trainer.train_epoch()`` then ``Trainer.validate()``
    bare       every image and mask decoded once into memory at start-up; per batch, in the main process,
               the data set's own train pipeline on each sample, a stack and the normalisation, then
               forward -> loss -> backward -> step; validation one full image at a time (the data set's val
               pipeline, e.g. padding to /32) with the loss and the same confusion-matrix metrics

Both arms run the same number of training batches (the trainer's: drop_last) and the same model settings.
``arm_process`` runs one arm in its own process (benchmarks/bench_real.py starts two and alternates them); the
segtrain arm also times an epoch over batches taken from its loader beforehand (the loader idle).
"""

from __future__ import annotations

import copy
import logging
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def quiet_logging(path: Path) -> None:
    """segtrain's log lines (the cache choice among them) go to ``path`` and to the console."""
    log = logging.getLogger("segtrain")
    log.setLevel(logging.INFO)
    if not log.handlers:
        for handler in (logging.FileHandler(path), logging.StreamHandler()):
            handler.setFormatter(logging.Formatter("[segtrain] %(message)s"))
            log.addHandler(handler)


@dataclass
class Run:
    """The pieces ``python train.py`` builds for one data set, shared by both arms."""

    name: str
    plain: dict[str, Any]
    trainer: Any
    train_set: Any
    val_set: Any
    train_loader: Any
    val_loader: Any
    tmp: tempfile.TemporaryDirectory
    _saved: dict[str, Any] = field(default_factory=dict, repr=False)

    def snapshot(self) -> None:
        t = self.trainer
        self._saved = {
            "model": copy.deepcopy(t.model.state_dict()),
            "optimizer": copy.deepcopy(t.optimizer.state_dict()),
            "scheduler": copy.deepcopy(t.scheduler.state_dict()),
        }

    def restore(self) -> None:
        t = self.trainer
        t.model.load_state_dict(self._saved["model"])
        t.optimizer.load_state_dict(self._saved["optimizer"])
        t.scheduler.load_state_dict(self._saved["scheduler"])
        t.optimizer.zero_grad(set_to_none=True)

    def describe(self) -> str:
        ds, model, trainer = self.plain["dataset"], self.plain["model"], self.trainer
        loader = ds.get("loader") or {}
        image, _ = self.train_set.load_pair(0)
        x = "x".join(str(v) for v in image.shape)
        return (
            f"{self.name}: {len(self.train_set)} train / {len(self.val_set)} val images of {x}, "
            f"{model['name']}-{model.get('encoder_name')}, {self.plain['loss']['name']}, "
            f"{self.plain['optimizer']['name']}, batch {trainer.train_loader.batch_size} (val "
            f"{trainer.val_loader.batch_size}), {loader.get('num_workers', 0)} workers, "
            f"{trainer._n_train_batches()} train batches/epoch"
        )


def build_run(name: str, overrides: list[str], seed: int = 0, as_train_py: bool = True) -> Run:
    """Compose ``train.yaml`` with ``dataset=<name>`` and ``overrides`` and build the job through the CLI's own
    ``segtrain.job.build_job``; ``as_train_py`` also applies the process settings ``python train.py`` applies
    (threads, glibc's reuse of freed memory); without it the data set keeps no decoded cache (the bare loop
    decodes for itself)."""
    from omegaconf import OmegaConf

    from segtrain.job import build_job
    from segtrain.tools.compose import compose

    cfg = compose("train", [f"dataset={name}", "trainer.progress_bar=false", f"seed={seed}", *overrides])
    plain = OmegaConf.to_container(cfg, resolve=True)
    if not as_train_py and "cache" in plain["dataset"]:
        plain["dataset"]["cache"] = False
    tmp = tempfile.TemporaryDirectory(prefix="segtrain-bench-real-")
    run_info = {"loss": plain["loss"]["name"], "model": plain["model"]["name"], "dataset": name, "seed": seed}
    job = build_job(plain, tmp.name, run_info, process_settings=as_train_py)
    trainer = job.trainer
    train_set, val_set = trainer.train_loader.dataset, trainer.val_loader.dataset
    run = Run(name, plain, trainer, train_set, val_set, trainer.train_loader, trainer.val_loader, tmp)
    run.snapshot()
    return run


class BareLoop:
    """The hand-written loop: decoded arrays in memory, no workers, validation one image at a time."""

    def __init__(self, run: Run, seed: int = 0) -> None:
        from segtrain.metrics import SegMetrics

        self.run = run
        t = run.trainer
        self.model, self.loss_fn, self.optimizer = t.model, t.loss_fn, t.optimizer
        self.batch_size = int(run.train_loader.batch_size)
        self.n_batches = t._n_train_batches()
        self.limit_val = t.cfg.limit_val_batches
        self.train_tf, self.val_tf = run.train_set.transform, run.val_set.transform
        ds = run.train_set
        self.mean = torch.tensor(ds.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(ds.std, dtype=torch.float32).view(1, -1, 1, 1)
        self.metrics = SegMetrics(ds.num_classes, ds.mode, ds.ignore_index, ds.class_names)
        self.generator = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        self.train = [self._decoded(run.train_set, i) for i in range(len(run.train_set))]
        self.val = [self._decoded(run.val_set, i) for i in range(len(run.val_set))]
        self.decode_s = time.perf_counter() - start
        self.memory_mb = sum(a.nbytes + b.nbytes for a, b in self.train + self.val) / 2**20

    @staticmethod
    def _decoded(data: Any, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, mask = data.load_pair(index)
        if image.dtype != np.uint8:  # as the data set does: albumentations takes uint8 or float32 in 0..1
            from segtrain.data import io

            image = image.astype(np.float32) / io.dtype_max(image)
        return image, mask

    def _tensors(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
        # C x H x W per image, then stacked: a plain N x C x H x W batch. (A permute of the stacked H x W x C
        # arrays would leave channels-last strides, which for one channel still count as contiguous, and the
        # convolutions would then run channels-last: faster on the CPU, but not what segtrain's loader gives.)
        images = [p[0] if p[0].ndim == 3 else p[0][..., None] for p in pairs]
        x = torch.from_numpy(np.stack([np.ascontiguousarray(a.transpose(2, 0, 1)) for a in images])).float()
        if images[0].dtype == np.uint8:
            x = x / 255.0
        x = (x - self.mean) / self.std
        masks = np.stack([p[1] for p in pairs])
        if self.run.train_set.mode == "multilabel":
            y = torch.from_numpy(masks).permute(0, 3, 1, 2).float()
        else:
            y = torch.from_numpy(masks).long()
        return x, y

    def train_epoch(self) -> dict[str, float]:
        """One epoch; returns its seconds and the share spent preparing batches (loader idle during steps)."""
        self.model.train()
        order = torch.randperm(len(self.train), generator=self.generator).tolist()
        prep = loss_sum = 0.0
        start = time.perf_counter()
        for b in range(self.n_batches):
            t0 = time.perf_counter()
            pairs = []
            for i in order[b * self.batch_size : (b + 1) * self.batch_size]:
                out = self.train_tf(image=self.train[i][0], mask=self.train[i][1])
                pairs.append((out["image"], out["mask"]))
            x, y = self._tensors(pairs)
            prep += time.perf_counter() - t0
            loss = self.loss_fn(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.item()
        return {"seconds": time.perf_counter() - start, "prep_s": prep, "loss": loss_sum / max(self.n_batches, 1)}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.model.eval()
        self.metrics.reset()
        start = time.perf_counter()
        loss_sum = 0.0
        n = len(self.val) if not self.limit_val else min(len(self.val), self.limit_val * self.run.val_loader.batch_size)
        for image, mask in self.val[:n]:
            out = self.val_tf(image=image, mask=mask)
            x, y = self._tensors([(out["image"], out["mask"])])
            logits = self.model(x)
            loss_sum += self.loss_fn(logits, y).item()
            self.metrics.update(logits, y)
        scores = self.metrics.compute()
        return {"seconds": time.perf_counter() - start, "loss": loss_sum / max(n, 1), "dice": scores["dice"]}


def segtrain_epoch(run: Run) -> dict[str, float]:
    """``Trainer.train_epoch()`` then ``Trainer.validate()``, timed apart."""
    t = run.trainer
    start = time.perf_counter()
    loss, wait = t.train_epoch()
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    val = t.validate()
    return {
        "train_s": train_s,
        "data_wait_s": wait,
        "val_s": time.perf_counter() - start,
        "val_wait_s": t.val_data_wait,
        "loss": loss,
        "dice": val["dice"],
    }


class Batches(list):
    """Batches taken from a loader beforehand: the training loop over them runs with the loader idle."""

    def __init__(self, batches: list, batch_size: int) -> None:
        super().__init__(batches)
        self.batch_size = batch_size


def _children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's live children (the loader's workers)."""
    import os

    total = 0
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                for pid in f.read().split():
                    with open(f"/proc/{pid}/stat") as st:
                        fields = st.read().rsplit(")", 1)[1].split()
                    total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    except OSError:
        return float("nan")
    return total / os.sysconf("SC_CLK_TCK")


def arm_process(conn: Any, arm: str, name: str, overrides: list[str], threads: int | None) -> None:
    """One arm in its own process, so that process-wide settings (segtrain's allocator setting, thread
    pools) stay with the arm that makes them: builds the run, answers ``"epoch"`` with that arm's epoch
    figures (CPU seconds of the process and of its loader workers included), stops on ``"stop"``."""
    try:
        import multiprocessing

        # loader workers start as under python train.py (the platform's default, fork on Linux), not as
        # this spawned process was started
        multiprocessing.set_start_method(multiprocessing.get_all_start_methods()[0], force=True)
        if threads:
            torch.set_num_threads(threads)
        run = build_run(name, overrides, as_train_py=arm == "segtrain")
        bare = BareLoop(run) if arm == "bare" else None
        info = {"job": run.describe(), "train_batches": run.trainer._n_train_batches()}
        if bare is not None:
            info.update(decoded_images=len(bare.train) + len(bare.val), decode_s=bare.decode_s)
            info["memory_mb"] = bare.memory_mb
        else:
            info["cache"] = [getattr(d, "cache_report", None) for d in (run.train_set, run.val_set)]
        idle = None
        if bare is None:  # the training batches of one epoch, for the step with the loader idle
            loader, n = run.trainer.train_loader, run.trainer._n_train_batches()
            idle = Batches([b for _, b in zip(range(n), loader, strict=False)], loader.batch_size)
        conn.send(info)
        while (msg := conn.recv()) in ("epoch", "idle"):
            if msg == "idle":  # Trainer.train_epoch over batches prepared beforehand: the loader does nothing
                t = run.trainer
                run.restore()
                t.train_loader = idle
                start = time.perf_counter()
                t.train_epoch()
                conn.send({"idle_train_s": time.perf_counter() - start})
                t.train_loader = loader
                continue
            run.restore()
            cpu0, child0, usage0 = time.process_time(), _children_cpu_s(), resource.getrusage(resource.RUSAGE_SELF)
            if bare is None:
                out = segtrain_epoch(run)
            else:
                tr, va = bare.train_epoch(), bare.validate()
                out = {"train_s": tr["seconds"], "prep_s": tr["prep_s"], "val_s": va["seconds"], "dice": va["dice"]}
            out["cpu_s"] = time.process_time() - cpu0
            out["worker_cpu_s"] = _children_cpu_s() - child0
            usage = resource.getrusage(resource.RUSAGE_SELF)
            # page faults, and context switches: waits (voluntary) and preemptions by other processes (involuntary)
            for key in ("ru_minflt", "ru_majflt", "ru_nvcsw", "ru_nivcsw"):
                out[key[3:]] = getattr(usage, key) - getattr(usage0, key)
            out["peak_rss_mb"] = usage.ru_maxrss / 1024  # the arm's main process so far (Linux: KiB)
            conn.send(out)
        run.tmp.cleanup()
    except BaseException as err:  # the parent reports it
        import traceback

        conn.send({"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})
