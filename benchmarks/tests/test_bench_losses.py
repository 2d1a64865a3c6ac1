"""benchmarks/bench_losses.py: the paired ratio, and a --quick run that prints the table."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_losses import paired_ratio, parse_shape  # noqa: E402


def test_paired_ratio_is_the_median_of_per_round_ratios():
    # round 2 ran on a slow machine for both: the per-round ratio stays 0.5
    assert paired_ratio([1.0, 10.0, 2.0], [2.0, 20.0, 4.0]) == pytest.approx(0.5)
    assert paired_ratio([1.0, 3.0, 2.0], [1.0, 1.0, 1.0]) == pytest.approx(2.0)


def test_shape_option_takes_four_or_five_sizes():
    assert parse_shape("4x21x128x128") == (4, 21, 128, 128)
    assert parse_shape("2X4x8x8x8") == (2, 4, 8, 8, 8)
    for bad in ("4x21x128", "4x0x8x8", "4xax8x8"):
        with pytest.raises(argparse.ArgumentTypeError, match="--shape"):
            parse_shape(bad)


def test_quick_run_prints_a_row_per_loss_with_the_public_ratio():
    pytest.importorskip("monai")
    out = subprocess.run(
        [
            sys.executable,
            "benchmarks/bench_losses.py",
            "--quick",
            "--repeats",
            "1",
            "--only",
            "ce,dice,boundary",
            "--shapes",
            "multiclass",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    assert "pages prefaulted" in out
    rows = {
        line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ") and "---" not in line
    }
    assert set(rows) == {"loss", "ce", "dice", "boundary"}
    assert "| MONAI |" in rows["dice"] and "| torch |" in rows["ce"]
    assert "distance maps precomputed" in out


def test_step_versus_alternates_two_losses_and_prints_their_paired_ratio():
    from bench_losses import step_ms

    times = step_ms("tversky", 2, "cpu", versus="ce")
    assert len(times) == 2 and all(len(t) == 2 and min(t) > 0 for t in times)
    with pytest.raises(SystemExit, match="no multiclass mode"):
        step_ms("dice", 1, "cpu", versus="combo_taghanaki")
