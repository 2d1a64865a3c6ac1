"""Process-wide CPU settings that change speed, never results: glibc keeping freed memory for reuse."""

from __future__ import annotations

import ctypes
import ctypes.util

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
