"""A write that fails (a full disk, a read-only folder, no permission) leaves the previous file intact and
stops with one error naming the file and the OS error. Failures are injected at the write (the OS call that
a full disk would fail), not read off the code."""

from __future__ import annotations

import errno
import json
import os

import pytest
import torch

import segtrain.atomic
from segtrain.atomic import WriteError
from segtrain.checkpoint import CheckpointWriter, load_checkpoint, save_checkpoint
from segtrain.engine.records import write_json
from segtrain.metrics.per_case import COLUMNS, write_per_case_csv

FAILURES = [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system"),
            (errno.EACCES, "Permission denied")]  # fmt: skip


def fail_writes(monkeypatch, code: int) -> None:
    """Every fsync fails as a full disk (or a read-only or forbidden folder) would fail it."""

    def fsync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(segtrain.atomic.os, "fsync", fsync)


def row(case: str, dice: float) -> dict:
    out = dict.fromkeys(COLUMNS, 0)
    out.update(split="val", case=case, **{"class": "fg"}, dice=dice)
    return out


WRITERS = {
    "checkpoint": (lambda p, v: save_checkpoint({"model": {}, "epoch": v}, p), lambda p: load_checkpoint(p)["epoch"]),
    "metrics.json": (lambda p, v: write_json(p, {"epoch": v}), lambda p: json.loads(p.read_text())["epoch"]),
    "per_case.csv": (
        lambda p, v: write_per_case_csv(p, [row("img", v)]),
        lambda p: int(float(p.read_text().splitlines()[1].split(",")[COLUMNS.index("dice")])),
    ),
}


@pytest.mark.parametrize(("code", "message"), FAILURES, ids=[errno.errorcode[c] for c, _ in FAILURES])
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_failed_write_leaves_the_previous_file_and_names_it(tmp_path, monkeypatch, kind, code, message):
    write, read = WRITERS[kind]
    path = tmp_path / kind
    write(path, 1)
    fail_writes(monkeypatch, code)
    with pytest.raises(WriteError, match=rf"writing {path} failed: {message}; the previous file is intact") as info:
        write(path, 2)
    assert info.value.errno == code
    monkeypatch.undo()
    assert read(path) == 1  # the previous version, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [kind]  # no temp file left behind


def test_a_failed_background_checkpoint_stops_the_loop_with_the_path(tmp_path, monkeypatch):
    writer = CheckpointWriter()
    writer.save({"model": {}, "epoch": torch.tensor(1)}, tmp_path / "last.pt")
    writer.wait()
    fail_writes(monkeypatch, errno.ENOSPC)
    writer.save({"model": {}, "epoch": torch.tensor(2)}, tmp_path / "last.pt")  # fails on the writer's thread
    with pytest.raises(WriteError, match=rf"writing {tmp_path / 'last.pt'} failed: No space left on device"):
        writer.wait()  # the training thread sees it at the next save, or when fit() ends
    monkeypatch.undo()
    assert int(load_checkpoint(tmp_path / "last.pt")["epoch"]) == 1


def test_a_training_run_whose_checkpoint_cannot_be_written_stops_and_keeps_its_last_good_one(tmp_path, monkeypatch):
    from test_trainer import make_trainer

    trainer = make_trainer(tmp_path, max_epochs=3)
    real = segtrain.atomic.os.fsync
    calls = {"n": 0}

    def fsync(fd):  # the disk fills up after epoch 1's checkpoint and metrics.json
        calls["n"] += 1
        if calls["n"] > 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(segtrain.atomic.os, "fsync", fsync)
    with pytest.raises(WriteError, match="No space left on device; the previous file is intact"):
        trainer.fit()
    monkeypatch.undo()
    assert int(load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"]) == 1
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs_completed"] == 1
