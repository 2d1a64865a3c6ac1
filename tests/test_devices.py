"""One sweep job per GPU, without a GPU: the device count is simulated, and parallel jobs are processes that
lease from the same sweep directory at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from segtrain.job.devices import lease_gpu, leases_here, sweep_device


def test_leases_are_exclusive_and_given_back(tmp_path):
    held = [lease_gpu(tmp_path, 3) for _ in range(3)]
    assert [lease.index for lease in held] == [0, 1, 2]
    with pytest.raises(TimeoutError, match="every one of the 3 GPUs"):
        lease_gpu(tmp_path, 3, wait_s=0.01, timeout_s=0.05)
    held[1].release()
    assert lease_gpu(tmp_path, 3).index == 1  # the freed one, not a fourth


def test_n_parallel_jobs_get_n_distinct_devices(tmp_path):
    """4 processes start together on a simulated 4-GPU machine, as joblib's workers would; each holds its
    lease while the others look."""
    code = textwrap.dedent(
        f"""
        import time, torch
        torch.cuda.is_available = lambda: True
        torch.cuda.device_count = lambda: 4
        from segtrain.job.devices import sweep_device
        device, lease = sweep_device("auto", {str(tmp_path)!r})
        print(device, flush=True)
        time.sleep(2)
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SLURM_JOB_ID", "WORLD_SIZE")}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env) for _ in range(4)
    ]
    devices_got = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert devices_got == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]


def test_pinned_devices_single_runs_one_gpu_and_slurm_jobs_do_not_lease(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert sweep_device("cuda:1", tmp_path) == ("cuda:1", None)  # pinned stays pinned
    assert sweep_device("cpu", tmp_path) == ("cpu", None)
    assert sweep_device("auto", None) == ("auto", None)  # a single run: not part of a sweep
    device, lease = sweep_device("auto", tmp_path)
    assert device == "cuda:0" and lease is not None
    assert sweep_device("cuda", tmp_path)[0] == "cuda:1"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert sweep_device("auto", tmp_path / "other") == ("auto", None)  # one GPU: nothing to share out
    assert not leases_here({"SLURM_JOB_ID": "42"}) and not leases_here({"WORLD_SIZE": "2"})
    assert leases_here({})
    monkeypatch.setenv("SLURM_JOB_ID", "42")  # SLURM gave the job its GPUs (CUDA_VISIBLE_DEVICES)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert sweep_device("auto", tmp_path / "slurm") == ("auto", None)


def test_the_lease_file_names_its_holder(tmp_path):
    lease = lease_gpu(tmp_path, 2)
    assert lease.path == tmp_path / ".gpus" / "0.lock" and lease.path.read_text() == f"{os.getpid()}\n"
