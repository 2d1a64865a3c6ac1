"""Checkpoints: written atomically (temp file, fsync, rename), read as data (``weights_only=True``)."""

from __future__ import annotations

import os
import pickle
import random
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(f)`` on a temp file beside ``path``, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` so that a kill at any moment leaves the previous file intact."""
    _atomic_write(Path(path), lambda f: torch.save(state, f))


def copy_checkpoint(src: str | Path, dst: str | Path) -> None:
    """Atomic copy (``best.pt`` from the ``last.pt`` just written)."""
    with open(src, "rb") as s:
        _atomic_write(Path(dst), lambda f: shutil.copyfileobj(s, f, 1 << 20))


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
