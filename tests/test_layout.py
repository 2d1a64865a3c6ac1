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
    "report": ("segtrain.engine", "segtrain.job", "segtrain.halving", "segtrain.fair", "hydra", "omegaconf", "torch"),
    "halving": ("segtrain.fair", "segtrain.engine", "segtrain.job", "hydra", "omegaconf", "torch"),
    "fair": ("segtrain.engine", "segtrain.job", "segtrain.cli", "hydra", "omegaconf"),
    "trackers": ("segtrain.engine", "segtrain.inference", "segtrain.job", "segtrain.cli", "segtrain.report", "hydra"),
}


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_no_import_runs_back_up(part):
    bad = {
        path: sorted(m for m in names if m.startswith(FORBIDDEN[part]))
        for path, names in imports(part).items()
        if any(m.startswith(FORBIDDEN[part]) for m in names)
    }
    assert not bad, f"segtrain/{part} imports what sits above it: {bad}"


def test_only_the_entry_points_import_hydra():
    parts = ("", "engine", "inference", "job", "losses", "metrics", "data", "halving", "fair", "report", "verdict",
             "tools", "trackers")  # fmt: skip
    hydra_users = {
        path
        for part in parts
        for path, names in imports(part).items()
        if any(m.split(".")[0] in ("hydra", "omegaconf") for m in names)
    }
    assert {p for p in hydra_users if not p.startswith("segtrain/tools/")} == {
        "segtrain/cli.py",
        "segtrain/sweep_callback.py",
    }


def test_the_tools_are_installed_commands():
    """pyproject's [project.scripts] names each tool's entry point, and each resolves to a callable."""
    import importlib
    import tomllib

    scripts = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]["scripts"]
    tools = {"summarize", "evaluate", "predict", "export", "check-dataset", "dataset-stats"}
    assert {f"segtrain-{t}" for t in tools} <= set(scripts)
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), target
    for tool in tools:  # python scripts/<tool>.py keeps working: a shim around the same entry point
        shim = (PACKAGE.parent / "scripts" / f"{tool.replace('-', '_')}.py").read_text()
        assert f"from segtrain.tools.{tool.replace('-', '_')} import" in shim


def test_the_config_schemas_are_a_leaf_that_hydra_loads_without_torch():
    """segtrain/schemas.py imports nothing of segtrain, and the plugin that registers it (scanned by Hydra at
    every start-up) loads neither torch nor the rest of the package."""
    import subprocess
    import sys

    tree = ast.parse((PACKAGE / "schemas.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.startswith("segtrain")}, imported
    code = (
        "import sys, hydra_plugins.segtrain_schemas.schemas; "
        "print(sorted(k for k in ('torch', 'segtrain.engine', 'segtrain.job') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                         cwd=PACKAGE.parent)  # fmt: skip
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
