"""A run killed with SIGKILL mid-epoch and resumed ends bit-identical to the same run uninterrupted."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, TINY, run_train

from segtrain.checkpoint import CheckpointWriter, load_checkpoint, save_checkpoint

ARGS = [*TINY, "trainer.max_epochs=4", "trainer.deterministic=true", "dataset.length.train=64", "logger=none"]


def history(run):
    with (run / "history.csv").open() as f:
        return [{k: v for k, v in r.items() if k not in ("seconds", "data_wait")} for r in csv.DictReader(f)]


# with oversampling on, every training crop draws from torch's generator, which the checkpoint restores
OVERSAMPLED = ["dataset.image_size=64", "dataset.crop_size=32", "dataset.oversample_foreground=0.5"]


@pytest.mark.parametrize("extra", [[], OVERSAMPLED], ids=["plain", "oversampled"])
def test_killed_and_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path, extra):
    args = [*ARGS, *extra]
    straight = tmp_path / "straight"
    run_train([*args, f"hydra.run.dir={straight}"], tmp_path)

    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={killed}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # metrics.json is written at the end of an epoch while last.pt is still being written on a background
    # thread: wait for both, else a loaded machine can kill the run before its first checkpoint exists
    written = (killed / "metrics.json", killed / "checkpoints" / "last.pt")
    while not all(p.exists() for p in written) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # into the second epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted = json.loads((killed / "metrics.json").read_text())
    assert interrupted["status"] == "running" and interrupted["epochs_completed"] < 4

    run_train([*args, f"hydra.run.dir={killed}"], tmp_path)  # trainer.resume=auto is the default
    assert "resumed from" in (killed / "train.log").read_text()
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(killed / "checkpoints" / "last.pt")
    assert a["epoch"] == b["epoch"] == 4 and a["step"] == b["step"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert history(straight) == history(killed)
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in (straight, killed))
    assert ma["best"] == mb["best"] and ma["final"] == mb["final"]


def test_truncated_checkpoint_gives_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match="cannot be read.*truncated, corrupt"):
        load_checkpoint(path)


def test_foreign_file_is_not_taken_for_a_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(2)}, path)
    with pytest.raises(ValueError, match="not a segtrain checkpoint"):
        load_checkpoint(path)


def test_checkpoint_write_is_atomic_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.zeros(3)}}, path)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"model": {"w": torch.ones(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.zeros(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_background_writer_saves_a_snapshot_and_links_best(tmp_path):
    writer = CheckpointWriter()
    w = torch.zeros(1000)
    writer.save({"model": {"w": w}, "epoch": 1}, tmp_path / "last.pt", tmp_path / "best.pt")
    w.add_(1)  # training goes on while the file is written: the checkpoint keeps the state at save()
    writer.wait()
    assert torch.equal(load_checkpoint(tmp_path / "best.pt")["model"]["w"], torch.zeros(1000))
    writer.save({"model": {"w": w}, "epoch": 2}, tmp_path / "last.pt")  # not an improvement: best stays
    writer.wait()
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_background_writer_reraises_a_failed_write(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    writer = CheckpointWriter()
    writer.save({"model": {}}, tmp_path / "file" / "last.pt")
    from segtrain.atomic import WriteError

    with pytest.raises(WriteError, match=r"writing .*/file/last\.pt failed: File exists; the previous file is intact"):
        writer.wait()
    writer.wait()  # the error is reported once


def test_checkpoint_gets_the_usual_file_mode_not_mkstemps_0600(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.zeros(3)}}, path)
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_paused_at_stop_at_epoch_and_resumed_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    """job.stop_at_epoch (a successive-halving rung): the LR schedule and loss ramps span max_epochs, so
    pausing at epoch 2 and continuing to 4 ends where the straight run ends."""
    straight = tmp_path / "straight"
    run_train([*ARGS, f"hydra.run.dir={straight}"], tmp_path)
    paused = tmp_path / "paused"
    run_train([*ARGS, "job.stop_at_epoch=2", f"hydra.run.dir={paused}"], tmp_path)
    first = json.loads((paused / "metrics.json").read_text())
    assert first["status"] == "paused" and first["epochs_completed"] == 2 and first["max_epochs"] == 4
    assert load_checkpoint(paused / "checkpoints" / "last.pt")["epoch"] == 2

    # the same stop again is a no-op (a re-run of a finished rung); a later stop continues from last.pt
    run_train([*ARGS, "job.stop_at_epoch=2", f"hydra.run.dir={paused}"], tmp_path)
    assert json.loads((paused / "metrics.json").read_text())["epochs_completed"] == 2
    run_train([*ARGS, "job.stop_at_epoch=4", f"hydra.run.dir={paused}"], tmp_path)
    assert "resumed from" in (paused / "train.log").read_text()
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(paused / "checkpoints" / "last.pt")
    assert a["epoch"] == b["epoch"] == 4 and a["step"] == b["step"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert history(straight) == history(paused)
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in (straight, paused))
    assert mb["status"] == "completed" and ma["best"] == mb["best"] and ma["final"] == mb["final"]


def test_paused_and_resumed_with_persistent_loader_workers_is_bit_identical(tmp_path):
    """Two persistent worker processes keep their own random state across epochs, which a resumed run cannot
    restore; the augmentations do not draw from it: each sample's seed comes with its index from the sampler
    (segtrain.data.sample_seeds), a function of the run's seed and the epoch. So a halving rung's pause and
    resume changes nothing."""
    from _data_fixtures import make_folder

    root = make_folder(tmp_path / "data", n=8, size=(64, 64))
    args = [
        "dataset=folder",
        f"dataset.root={root}",
        "dataset.num_classes=3",
        "dataset.loader.batch_size=4",
        "dataset.loader.num_workers=2",
        "dataset.loader.persistent_workers=true",
        "dataset.augment.train=[{name: RandomCrop, height: 32, width: 32}, {name: HorizontalFlip, p: 0.5}]",
        "dataset.augment.val=[]",
        "trainer.max_epochs=2",
        "trainer.deterministic=true",
        "trainer.progress_bar=false",
        "logger=none",
    ]
    straight, paused = tmp_path / "straight", tmp_path / "paused"
    run_train([*args, f"hydra.run.dir={straight}"], tmp_path)
    run_train([*args, "job.stop_at_epoch=1", f"hydra.run.dir={paused}"], tmp_path)
    run_train([*args, f"hydra.run.dir={paused}"], tmp_path)
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(paused / "checkpoints" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


WRITE_FOREVER = """
import sys, torch
from segtrain.checkpoint import save_checkpoint
i = 0
while True:  # 32 MB checkpoints, each one's values all equal to its number
    save_checkpoint({"model": {"w": torch.full((8_000_000,), float(i))}, "epoch": i}, sys.argv[1])
    i += 1
"""


def test_kill_9_during_checkpoint_writes_leaves_a_whole_last_pt(tmp_path):
    """A real SIGKILL at three moments of a process that writes checkpoints back to back (so most likely in
    the middle of one): last.pt is always a whole earlier checkpoint, never a mix or a truncated file."""
    path = tmp_path / "last.pt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for delay in (0.4, 0.9, 1.5):
        proc = subprocess.Popen([sys.executable, "-c", WRITE_FOREVER, str(path)], env=env)
        deadline = time.time() + 120
        while not path.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = load_checkpoint(path)
        assert torch.equal(state["model"]["w"], torch.full((8_000_000,), float(state["epoch"])))
