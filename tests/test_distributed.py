"""Two CPU ranks (gloo): validation metrics summed across ranks equal a single-process run; a non-finite
loss on one rank is skipped by all; gradient accumulation all-reduces once per group."""

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import ROOT, TINY
from test_trainer import PoisonedLoss as PoisonedCE  # CE that is NaN on the listed calls
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.utils.data import DistributedSampler

from segtrain.data import build_dataset, build_loader
from segtrain.engine import Trainer, TrainerConfig
from segtrain.engine.distributed import ShardSampler
from segtrain.losses import build_loss
from segtrain.metrics import SegMetrics
from segtrain.models import build_model
from segtrain.optim import build_scheduler

NAMES = ["background", "ellipse", "rectangle", "triangle"]


def validate(rank: int, world_size: int, out: Path) -> dict:
    torch.manual_seed(0)
    model = build_model("unet", classes=4, encoder_depth=3, decoder_channels=(16, 16, 16))
    val_set = build_dataset("shapes", split="val", class_names=NAMES, length=21, image_size=32)
    sampler = ShardSampler(len(val_set), rank, world_size) if world_size > 1 else None
    val = build_loader(val_set, batch_size=4, sampler=sampler)
    trainer = Trainer(
        TrainerConfig(device="cpu", num_vis=0, progress_bar=False),
        model,
        build_loss("ce", mode="multiclass", ignore_index=None),
        torch.optim.SGD(model.parameters(), lr=0.1),
        lambda opt, total: build_scheduler("constant", opt, total),
        val,
        val,
        SegMetrics(4, class_names=NAMES),
        out,
        rank=rank,
        world_size=world_size,
    )
    return trainer.validate()


def _worker(rank: int, world_size: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        result = validate(rank, world_size, Path(out))
        if rank == 0:
            Path(out, "ddp.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_two_rank_validation_equals_single_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ddp = json.loads((tmp_path / "ddp.json").read_text())
    single = validate(0, 1, tmp_path)
    for key, value in single.items():
        if isinstance(value, float):
            assert ddp[key] == pytest.approx(value, abs=1e-6, nan_ok=True), key


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun test uses the gloo backend on Linux")
def test_torchrun_trains_with_two_ranks_and_only_rank0_writes(tmp_path):
    env = {**os.environ, "SEGTRAIN_OUTPUT": str(tmp_path / "outputs"), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29533",
        str(ROOT / "train.py"),
        "trainer=ddp",
        *TINY,
        "trainer.max_epochs=1",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = list((tmp_path / "outputs").rglob("metrics.json"))
    assert len(runs) == 1
    metrics = json.loads(runs[0].read_text())
    assert metrics["status"] == "completed"
    assert (runs[0].parent / "checkpoints" / "last.pt").exists()


def spawn_with_timeout(fn, args: tuple, timeout: float = 120.0) -> None:
    """mp.spawn of two ranks that fails the test instead of waiting for ever on a hung collective."""
    ctx = mp.spawn(fn, args=args, nprocs=2, join=False)
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"the ranks were still running after {timeout:.0f} s: a collective hangs")


def train_ranks(
    rank: int, world_size: int, out: Path, name: str, accumulate: int, bad_calls: set[int], stop_after: int = 0
) -> None:
    """One epoch of 4 micro-batches per rank with a one-bucket model (so comm-hook calls = synchronised
    backwards); rank 1 alone sees a NaN loss on ``bad_calls``, and with ``stop_after`` a stop request (a
    preemption signal) once it took that many steps. Writes step, hook calls, weights and where it stopped."""
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 1)
    ds = build_dataset("shapes", split="train", class_names=NAMES, length=16, image_size=16)
    train = build_loader(ds, 2, sampler=DistributedSampler(ds, world_size, rank, shuffle=False))
    trainer = Trainer(
        TrainerConfig(
            device="cpu",
            num_vis=0,
            progress_bar=False,
            max_epochs=1,
            checkpoint=False,
            on_nan="skip",
            accumulate_grad_batches=accumulate,
        ),
        model,
        PoisonedCE(bad_calls if rank == 1 else set()),
        torch.optim.SGD(model.parameters(), lr=0.1),
        lambda opt, total: build_scheduler("constant", opt, total),
        train,
        build_loader(ds, 4, sampler=ShardSampler(4, rank, world_size)),
        SegMetrics(4, class_names=NAMES),
        out / name,
        rank=rank,
        world_size=world_size,
    )
    calls = []

    def counting_hook(state, bucket):
        calls.append(1)
        return allreduce_hook(state, bucket)

    trainer.train_forward.register_comm_hook(None, counting_hook)
    if stop_after:
        trainer.should_stop = lambda: rank == 1 and trainer.step >= stop_after
    trainer.train_epoch()
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    record = {"step": trainer.step, "hook_calls": len(calls), "weights": weights, "stopped": trainer.preempted_at}
    torch.save(record, out / f"{name}-rank{rank}.pt")


def _train_worker(rank: int, world_size: int, init_file: str, out: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size, timeout=timedelta(seconds=30)
    )
    try:
        train_ranks(rank, world_size, Path(out), "accumulate", 2, set())
        train_ranks(rank, world_size, Path(out), "skip", 1, {1})
        train_ranks(rank, world_size, Path(out), "skip-last-of-group", 2, {1})
        train_ranks(rank, world_size, Path(out), "skip-first-of-group", 2, {2})
    finally:
        dist.destroy_process_group()


def test_two_ranks_skip_a_rank_local_nan_together_and_all_reduce_once_per_accumulation_group(tmp_path):
    spawn_with_timeout(_train_worker, (2, str(tmp_path / "init"), str(tmp_path)))
    results = {}
    for name in ("accumulate", "skip", "skip-last-of-group", "skip-first-of-group"):
        a, b = (torch.load(tmp_path / f"{name}-rank{r}.pt") for r in (0, 1))
        assert torch.equal(a["weights"], b["weights"]), f"{name}: the ranks' weights differ"
        assert a["step"] == b["step"] and a["hook_calls"] == b["hook_calls"], name
        results[name] = (a["step"], a["hook_calls"])
    # 4 micro-batches in 2 groups: 2 optimizer steps, 2 all-reduces (not 4)
    assert results["accumulate"] == (2, 2)
    # rank 1's NaN on micro-batch 1 is skipped by both ranks: 3 steps, 3 all-reduces
    assert results["skip"] == (3, 3)
    # the skipped micro-batch was the group's synchronising one: the group still steps, all-reduced once
    assert results["skip-last-of-group"] == (2, 2)
    assert results["skip-first-of-group"] == (2, 2)


def _stop_worker(rank: int, world_size: int, init_file: str, out: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size, timeout=timedelta(seconds=30)
    )
    try:
        train_ranks(rank, world_size, Path(out), "stop", 1, set(), stop_after=1)
    finally:
        dist.destroy_process_group()


def test_a_preemption_signal_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    """The stop flag rides the loss's all-reduce: rank 1 alone is signalled after step 1; both ranks see it in
    the next step's all-reduce and stop after that step, with the same weights (no rank waits for ever)."""
    spawn_with_timeout(_stop_worker, (2, str(tmp_path / "init"), str(tmp_path)))
    a, b = (torch.load(tmp_path / f"stop-rank{r}.pt") for r in (0, 1))
    assert a["stopped"] == b["stopped"] == {"epoch": 0, "step": 2, "batch": 2}
    assert a["step"] == b["step"] == 2 and torch.equal(a["weights"], b["weights"])
