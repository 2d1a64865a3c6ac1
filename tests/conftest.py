import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SEGTRAIN_DATA", ROOT.parent / "shared" / "data"))

# two xdist workers on two cores: one thread per process (and per subprocess) avoids OpenMP
# oversubscription, which made the suite ~10x slower on a shared 2-core machine
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

# A tiny, fast job: small images, few samples, 2 epochs.
TINY = [
    "dataset.image_size=32",
    "dataset.length.train=32",
    "dataset.length.val=16",
    "dataset.loader.batch_size=8",
    "trainer.max_epochs=2",
    "trainer.progress_bar=false",
]


def run_train(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python train.py *args`` in a subprocess with outputs under ``cwd``."""
    env = {**os.environ, "SEGTRAIN_OUTPUT": str(cwd / "outputs"), "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture
def train_cli():
    return run_train
