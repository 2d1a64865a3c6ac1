"""DataLoader construction with the data set config's loader settings, per-sample and per-worker seeding."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading

import cv2
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

from segtrain.data.sample_seeds import SeededSampler, takes_sample_seeds
from segtrain.data.transforms import seed_worker


def worker_context() -> str | None:
    """The start method for loader workers: the interpreter's own, or the platform's default where a
    process pool changed it. Inside a joblib/loky worker (``hydra/launcher=joblib``) the default context
    is loky's, whose processes DataLoader cannot start ("'Process' object has no attribute ...";
    pytorch/pytorch#44687, hydra#964)."""
    method = multiprocessing.get_start_method(allow_none=True)
    if method in (None, "fork", "spawn", "forkserver"):
        return None
    return multiprocessing.get_all_start_methods()[0]


def _outlive_job_signals() -> None:
    """In a loader worker: ignore the preemption signals that a scheduler sends to every process of a job step
    (SLURM: preemption's SIGTERM, ``--signal``'s USR1), so that the main process can finish its step and save
    (segtrain.job.signals) instead of failing on its next batch because a worker died.

    SIGTERM still ends the worker when the main process sends it (multiprocessing terminates daemonic children
    at exit; ignoring it outright would hang that exit): it is blocked here and taken by a thread that looks at
    the sender, as torch's own worker handler does in C. A worker whose parent is gone exits anyway (torch's
    watchdog), and a scheduler's SIGKILL ends everything."""
    for sig in (signal.SIGUSR1, signal.SIGUSR2):  # multiprocessing never sends these
        signal.signal(sig, signal.SIG_IGN)
    parent = os.getppid()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # threads started later inherit the mask

    def take_sigterm() -> None:
        while True:
            info = signal.sigwaitinfo({signal.SIGTERM})
            if info.si_pid == parent or os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=take_sigterm, name="segtrain-worker-sigterm", daemon=True).start()


def init_worker(worker_id: int) -> None:
    """``worker_init_fn`` of every loader: a job's preemption signals left to the main process
    (``_outlive_job_signals``), OpenCV single-threaded inside the worker (albumentations' advice for
    DataLoader workers: each worker is already one of several processes, and OpenCV's own thread pool
    per worker would compete with them and with the training step for the cores; the pixels it computes
    do not depend on its thread count), then the per-worker seeds (``seed_worker``)."""
    _outlive_job_signals()
    cv2.setNumThreads(0)
    cv2.ocl.setUseOpenCL(False)
    seed_worker(worker_id)


def build_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int = 0,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    shuffle: bool = False,
    drop_last: bool = False,
    seed: int = 0,
    prefetch_factor: int | None = None,
    sampler: Sampler | None = None,
    rank: int = 0,
) -> DataLoader:
    """A DataLoader seeded by ``seed`` (shuffle order, the samples' augmentations, each worker's generators).

    ``pin_memory`` only takes effect when CUDA is available; ``persistent_workers`` and
    ``prefetch_factor`` only with ``num_workers > 0`` (torch refuses them otherwise). A ``sampler``
    (e.g. a DistributedSampler) replaces ``shuffle``. A data set that takes per-sample seeds
    (``takes_sample_seeds``) gets its indices through a SeededSampler (segtrain.data.sample_seeds; ``rank``
    is the torchrun rank), shuffled by a generator that only the sampler draws from, so neither its order
    nor its augmentations depend on the workers.
    """
    if batch_size < 1:
        raise ValueError(f"dataset.loader.batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator()
    generator.manual_seed(seed)
    if takes_sample_seeds(dataset):
        if sampler is None and shuffle:
            # A generator of its own, not the loader's: each new loader iterator draws the workers' base seed
            # from the loader's generator before the sampler shuffles, a persistent one only at its first
            # epoch, so a shared generator would give other orders with persistent workers and after a resume.
            # The trainer checkpoints this one (sampler.generator).
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
        sampler = SeededSampler(SequentialSampler(dataset) if sampler is None else sampler, seed, rank)
    extra = {}
    if num_workers > 0:
        extra["persistent_workers"] = persistent_workers
        extra["multiprocessing_context"] = worker_context()
        if prefetch_factor is not None:
            extra["prefetch_factor"] = prefetch_factor
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else None,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=pin_memory and torch.cuda.is_available(),
        worker_init_fn=init_worker,
        generator=generator,
        **extra,
    )
