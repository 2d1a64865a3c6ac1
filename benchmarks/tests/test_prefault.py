"""benchmarks/_prefault.py: the libtorch constant-page prefault the loss benchmark runs (speed only; results
must not change)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/
from _prefault import _constant_ranges, _populate, prefault_torch_constants  # noqa: E402

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")


def test_constant_ranges_keeps_only_libtorch_cpu_read_only_data(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(
        "7f0000000000-7f0000002000 r--p 00000000 08:01 1 /site-packages/torch/lib/libtorch_cpu.so\n"
        "7f0000002000-7f0000009000 r-xp 00002000 08:01 1 /site-packages/torch/lib/libtorch_cpu.so\n"
        "7f0000009000-7f000000a000 rw-p 00009000 08:01 1 /site-packages/torch/lib/libtorch_cpu.so\n"
        "7f1000000000-7f1000001000 r--p 00000000 08:01 2 /usr/lib/libc.so.6\n"
        "7f3000000000-7f3000001000 r--p 00000000 08:01 3 /home/me/my envs/torch/lib/libtorch_cpu.so\n"
        "7f2000000000-7f2000001000 rw-p 00000000 00:00 0\n"
    )
    assert _constant_ranges(str(maps)) == [
        (0x7F0000000000, 0x7F0000002000),
        (0x7F0000009000, 0x7F000000A000),
        (0x7F3000000000, 0x7F3000001000),
    ]


@linux
def test_prefault_maps_pages_and_leaves_results_unchanged():
    x = torch.linspace(-20, 20, 10_001)
    before = (torch.log1p(x.exp()), torch.nn.functional.softplus(x), torch.nn.functional.logsigmoid(x))
    assert prefault_torch_constants() > 1000  # libtorch_cpu's constants span thousands of 4 KiB pages
    after = (torch.log1p(x.exp()), torch.nn.functional.softplus(x), torch.nn.functional.logsigmoid(x))
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a, b)


@linux
def test_populate_falls_back_to_reading_when_the_kernel_refuses_the_advice():
    buf = np.ones(3 * 4096, dtype=np.uint8)
    start = buf.ctypes.data
    assert _populate(start, start + buf.nbytes, advice=-1) == 3
