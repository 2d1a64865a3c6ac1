"""One sweep job per GPU: a job of a multirun leases a free GPU of this machine for its lifetime.

Parallel jobs of one sweep (``hydra/launcher=joblib hydra.launcher.n_jobs=N``, or the halving sweeper's rungs
on it) all see every GPU, and with ``trainer.device=auto`` every one of them would pick ``cuda:0``. Instead each
job takes an exclusive lock (``fcntl.flock``) on ``<sweep dir>/.gpus/<i>.lock`` for the first GPU i that no
other job holds, and keeps it until its process ends (the operating system drops the lock then, also when
the job is killed). A job finding every GPU taken waits for one. Jobs of a SLURM allocation (submitit) use the
GPUs SLURM gave them, and torchrun's ranks their ``LOCAL_RANK``: neither leases.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("segtrain")


class DeviceLease:
    """An exclusive hold on one GPU index of a sweep; ``release`` (or the process's end) gives it back."""

    def __init__(self, index: int, handle: IO[Any], path: Path) -> None:
        self.index, self._handle, self.path = index, handle, path

    def release(self) -> None:
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


def lease_gpu(
    sweep_dir: str | Path, n_gpus: int, *, wait_s: float = 1.0, timeout_s: float | None = None
) -> DeviceLease:
    """Lease the first of ``n_gpus`` GPU indices no other job of ``sweep_dir`` holds; waits (polling every
    ``wait_s``) while all are taken, up to ``timeout_s`` (None: as long as it takes)."""
    if n_gpus < 1:
        raise ValueError(f"lease_gpu needs at least one GPU, got n_gpus={n_gpus}")
    folder = Path(sweep_dir) / ".gpus"
    folder.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    while True:
        for i in range(n_gpus):
            path = folder / f"{i}.lock"
            handle = path.open("a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            return DeviceLease(i, handle, path)
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"every one of the {n_gpus} GPUs of {folder} stayed leased for {timeout_s:g} s")
        time.sleep(wait_s)


def leases_here(environ: dict[str, str] | None = None) -> bool:
    """Whether this process should lease a GPU: not under torchrun (WORLD_SIZE > 1) nor inside a SLURM job,
    whose allocation already decides its GPUs."""
    env = os.environ if environ is None else environ
    return int(env.get("WORLD_SIZE", "1")) <= 1 and "SLURM_JOB_ID" not in env


def sweep_device(device: str, sweep_dir: str | Path | None) -> tuple[str, DeviceLease | None]:
    """The device a sweep job trains on: ``cuda:<i>`` from a lease where ``device`` is auto or cuda, the job
    is part of a multirun (``sweep_dir``), there are several GPUs and ``leases_here``; else ``device`` as it
    is (a pinned ``cuda:1`` stays pinned)."""
    import torch

    if device not in ("auto", "cuda") or sweep_dir is None or not leases_here():
        return device, None
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n < 2:
        return device, None
    lease = lease_gpu(sweep_dir, n)
    log.info("device cuda:%d (leased %s: one sweep job per GPU)", lease.index, lease.path)
    return f"cuda:{lease.index}", lease
