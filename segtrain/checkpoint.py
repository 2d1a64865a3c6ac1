"""Checkpoints: written atomically (temp file, fsync, rename) on a background thread, read as data
(``weights_only=True``). A leaf: the engine writes and resumes from them, inference and the job layer read
them, and none of those import each other for it."""

from __future__ import annotations

import os
import pickle
import random
import shutil
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segtrain.atomic import atomic_write


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` so that a kill at any moment leaves the previous file intact."""
    atomic_write(Path(path), lambda f: torch.save(state, f))


def copy_checkpoint(src: str | Path, dst: str | Path) -> None:
    """Atomic copy (``best.pt`` from the ``last.pt`` just written)."""
    with open(src, "rb") as s:
        atomic_write(Path(dst), lambda f: shutil.copyfileobj(s, f, 1 << 20))


def link_checkpoint(src: str | Path, dst: str | Path) -> None:
    """``dst`` becomes the same file as ``src`` (``best.pt`` from the ``last.pt`` just written): an atomic hard
    link, which costs nothing and stays valid because saves replace ``last.pt`` instead of rewriting it; a
    copy where the file system has no hard links."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        copy_checkpoint(src, dst)
        return
    os.replace(tmp, dst)


def snapshot(obj: Any) -> Any:
    """A copy of a (nested dict/list/tuple) state whose tensors are detached CPU copies, so that training
    can go on changing the originals while the copy is written."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(snapshot(v) for v in obj)
    return obj


class CheckpointWriter:
    """Writes checkpoints on one background thread, so the next epoch starts while the file is written.

    ``save`` copies the state (:func:`snapshot`, tens of milliseconds), waits for the previous write, then
    returns; ``wait`` joins the write in flight and re-raises its error (a full disk, say). Each file is
    still written atomically, so a kill at any moment leaves the previous checkpoint readable.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, state: dict[str, Any], path: str | Path, best: str | Path | None = None) -> None:
        """Write ``state`` to ``path`` and, when ``best`` is given, make ``best`` the same file."""
        state = snapshot(state)
        self.wait()

        def write() -> None:
            try:
                save_checkpoint(state, path)
                if best is not None:
                    link_checkpoint(path, best)
            except BaseException as err:  # re-raised on the training thread by wait()
                self._error = err

        self._thread = threading.Thread(target=write, name="segtrain-checkpoint")
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            if isinstance(err, OSError):  # WriteError: names the file and the OS error
                raise err
            raise RuntimeError(f"writing a checkpoint failed: {err}") from err


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a segtrain checkpoint; a missing, truncated or foreign file raises a ValueError that says so."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        raise ValueError(
            f"checkpoint {path} cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
            "it is truncated, corrupt, or not a plain-data torch checkpoint"
        ) from err
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"checkpoint {path} is not a segtrain checkpoint (expected a dict with a 'model' entry)")
    return state


def annotate_checkpoint(path: str | Path, entries: dict[str, Any]) -> list[Path]:
    """Add ``entries`` (plain data) to the checkpoint at ``path``, rewritten atomically. Every other ``*.pt``
    beside it that is the same file (best.pt hard-linked to last.pt) is linked to the new file, so that it
    goes on holding the same weights and the entries too. Returns the paths that now hold them."""
    path = Path(path)
    same = [p for p in sorted(path.parent.glob("*.pt")) if p != path and os.path.samefile(p, path)]
    state = load_checkpoint(path)
    save_checkpoint({**state, **entries}, path)
    for other in same:
        link_checkpoint(path, other)
    return [path, *same]


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) generator states, as plain data."""
    np_state = np.random.get_state()
    state = {
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate((3, tuple(int(v) for v in state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
