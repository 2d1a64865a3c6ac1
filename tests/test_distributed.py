"""Two CPU ranks (gloo): validation metrics summed across ranks equal a single-process run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import ROOT, TINY

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
