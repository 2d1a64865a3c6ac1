"""Map libtorch's constant pages before timing the losses (benchmarks only: speed, never results)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

import numpy as np

log = logging.getLogger(__name__)

_MADV_POPULATE_READ = 22  # Linux >= 5.14
_PAGE = 4096


def _constant_ranges(maps: str = "/proc/self/maps") -> list[tuple[int, int]]:
    """Address ranges of libtorch_cpu's read-only, non-executable mappings (its constants)."""
    ranges = []
    with open(maps) as f:
        for line in f:
            fields = line.split(None, 5)  # the path (6th field) may hold spaces
            if len(fields) < 6 or not os.path.basename(fields[5].strip()).startswith("libtorch_cpu"):
                continue
            if fields[1].startswith("r") and "x" not in fields[1]:
                start, end = (int(v, 16) for v in fields[0].split("-"))
                ranges.append((start, end))
    return ranges


def _populate(start: int, end: int, advice: int = _MADV_POPULATE_READ) -> int:
    """Map the pages of [start, end) (a readable mapping); returns their number."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.madvise(start, end - start, advice) != 0:
        # kernels before 5.14 refuse the advice: read one byte per page instead
        buf = (ctypes.c_char * (end - start)).from_address(start)
        np.frombuffer(buf, dtype=np.uint8)[::_PAGE].max()
    return (end - start) // _PAGE


def prefault_torch_constants() -> int:
    """Map every constant page of libtorch_cpu into this process now; returns the pages mapped.

    Why: torch's AVX-512 Sleef kernels (``log1p``, ``softplus``, ``logsigmoid``, so BCE and the focal
    losses) read some constants with masked broadcast loads. When the mask is empty and the page holding
    the constant has never been touched, the CPU suppresses the page fault with a microcode assist on
    every call instead of letting the kernel map the page once, so the page stays unmapped and the op
    runs about 20x slower for the life of the process (measured on this project's AMD EPYC VM:
    ``log1p`` of 1M floats 10 ms vs 0.5 ms on one thread) until other code happens to read that page.
    Populating the pages (about 60 MB of file-backed, shared memory; 15 ms) removes the assists.
    Linux only; elsewhere, or when nothing can be mapped, it returns 0.
    """
    if not sys.platform.startswith("linux"):
        return 0
    import torch  # noqa: F401  (loads libtorch_cpu, whose mappings are read below)

    try:
        ranges = _constant_ranges()
    except OSError:
        return 0
    pages = sum(_populate(start, end) for start, end in ranges)
    log.debug("prefaulted %d pages of libtorch_cpu constants", pages)
    return pages
