"""Process-wide CPU fixes that change speed, never results."""

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


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_THRESHOLD = 1 << 30  # blocks below 1 GiB come from the heap and stay there when freed


def keep_freed_memory() -> str:
    """Let glibc keep freed blocks below 1 GiB in the process instead of returning them to the kernel.

    Why: glibc serves a block above its mmap threshold (dynamic, at most 32 MB) with a fresh ``mmap`` and
    unmaps it on ``free``, so every large activation of a forward/backward pass (a batch of 8 x 16 x 512 x
    512 floats is 128 MB) is page-faulted in again, zero-filled by the kernel, on every step. Raising the
    mmap threshold and switching trimming off makes the heap reuse those pages. Speed only: the values
    computed are the same. Cost: the process keeps the peak of its heap (what its largest step needed)
    until it exits. Must run in the process before the large allocations it should speed up; processes
    forked afterwards (DataLoader workers) inherit it. Returns what was done, for the log; a C library
    without ``mallopt`` (not glibc) is left alone and says so.
    """
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return "allocator left as it is (no glibc mallopt in this C library)"
    if libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_THRESHOLD) and libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1):
        return "glibc malloc keeps freed blocks below 1 GiB for reuse (mmap threshold 1 GiB, no trimming)"
    return "allocator left as it is (glibc refused mallopt)"
