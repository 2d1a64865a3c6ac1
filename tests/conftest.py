import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# the real data sets: $SEGTRAIN_DATA, else (tests only) a shared/data folder beside the checkout; the variable
# is set so that train.py subprocesses see it too (the code itself defaults to <repo>/data)
if not os.environ.get("SEGTRAIN_DATA") and (Path(__file__).resolve().parents[2] / "shared" / "data").is_dir():
    os.environ["SEGTRAIN_DATA"] = str(Path(__file__).resolve().parents[2] / "shared" / "data")
SHARED_DATA = Path(os.environ.get("SEGTRAIN_DATA", ROOT / "data"))

# two xdist workers on two cores: one thread per process (and per subprocess) avoids OpenMP
# oversubscription, which made the suite ~10x slower on a shared 2-core machine
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


def pytest_configure(config: pytest.Config) -> None:
    # one seed per run of the suite, drawn by the controller before xdist starts its workers (they inherit
    # the environment); SEGTRAIN_TEST_SEED=<n> repeats a run's random inputs
    os.environ.setdefault("SEGTRAIN_TEST_SEED", str(int.from_bytes(os.urandom(4), "little") % 2**31))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    # also under -q, so that a failure on random inputs can be repeated
    seed = os.environ["SEGTRAIN_TEST_SEED"]
    terminalreporter.write_line(f"random test inputs: SEGTRAIN_TEST_SEED={seed} repeats them")


def fresh_seed() -> int:
    """A seed new to every run of the suite and different for every test (case), from the run's
    SEGTRAIN_TEST_SEED and the running test's id, so a failure repeats with the seed the run prints last."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    return (int(os.environ["SEGTRAIN_TEST_SEED"]) + zlib.crc32(test.encode())) % 2**31


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
