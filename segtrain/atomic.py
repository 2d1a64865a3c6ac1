"""Files written so that a failure at any moment leaves the previous version intact: a temp file beside the
target, fsync, rename over it. A write that fails (a full disk, a read-only folder, no permission) removes
its temp file and raises ``WriteError`` naming the file and the OS error, so a job stops with one clear
message instead of carrying on without its records."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import, on the main thread (os.umask sets it process-wide)


class WriteError(OSError):
    """Writing ``path`` failed; the previous file, if any, is untouched."""


def atomic_write(path: str | Path, write: Callable[[IO[Any]], Any], *, text: bool = False) -> Path:
    """Call ``write(f)`` on a temp file beside ``path`` (binary, or text with ``text``), fsync, then rename
    over ``path``; returns ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; the file gets the usual mode
        with os.fdopen(fd, "w" if text else "wb", **({"newline": ""} if text else {})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as err:
        raise WriteError(
            err.errno, f"writing {path} failed: {err.strerror or err}; the previous file is intact"
        ) from err
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path
