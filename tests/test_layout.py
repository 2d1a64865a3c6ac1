"""The import direction of docs/architecture.md, read from the source: no import runs back up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "segtrain"


def imports(module_dir: str) -> dict[str, set[str]]:
    """file -> the segtrain / hydra / omegaconf modules it imports (at any depth, lazy imports included)."""
    found = {}
    for path in sorted((PACKAGE / module_dir).rglob("*.py")) if module_dir else sorted(PACKAGE.glob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(PACKAGE.parent))] = names
    return found


FORBIDDEN = {
    "engine": ("segtrain.inference", "segtrain.job", "segtrain.cli", "segtrain.report"),
    "inference": ("segtrain.engine", "segtrain.job", "segtrain.cli", "segtrain.report"),
    "losses": ("segtrain.engine", "segtrain.inference", "segtrain.job", "segtrain.cli", "segtrain.report"),
    "metrics": ("segtrain.engine", "segtrain.inference", "segtrain.job", "segtrain.cli", "segtrain.report"),
    "data": ("segtrain.engine", "segtrain.inference", "segtrain.job", "segtrain.cli", "segtrain.report"),
    "job": ("segtrain.cli", "segtrain.report", "hydra", "omegaconf"),
    "verdict": ("segtrain.report", "segtrain.engine", "segtrain.job", "hydra", "omegaconf", "torch"),
    "report": ("segtrain.engine", "segtrain.job", "hydra", "omegaconf", "torch"),
}


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_no_import_runs_back_up(part):
    bad = {
        path: sorted(m for m in names if m.startswith(FORBIDDEN[part]))
        for path, names in imports(part).items()
        if any(m.startswith(FORBIDDEN[part]) for m in names)
    }
    assert not bad, f"segtrain/{part} imports what sits above it: {bad}"


def test_only_the_cli_and_the_sweep_callback_import_hydra():
    hydra_users = {
        path
        for part in ("", "engine", "inference", "job", "losses", "metrics", "data", "halving", "report", "verdict")
        for path, names in imports(part).items()
        if any(m.split(".")[0] in ("hydra", "omegaconf") for m in names)
    }
    assert hydra_users == {"segtrain/cli.py", "segtrain/sweep_callback.py"}
