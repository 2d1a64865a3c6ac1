"""The loss registry and configs/loss/ stay in step, and the README's loss table matches the registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from segtrain.losses import LOSSES, available_losses, build_loss, loss_table_markdown
from segtrain.losses.search import loss_kwargs

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs" / "loss"


def resolve(cfg: dict, mode: str, ignore_index: int | None) -> dict:
    """Substitute the ``${dataset.*}`` interpolations the way Hydra would for a given data set."""
    values = {"${dataset.mode}": mode, "${dataset.ignore_index}": ignore_index}
    return {k: values.get(v, v) if isinstance(v, str) else v for k, v in loss_kwargs(cfg).items()}


def supported_mode(name: str) -> str:
    modes = LOSSES.get(name).modes
    return "multiclass" if "multiclass" in modes else modes[0]


@pytest.mark.parametrize("name", available_losses())
def test_every_registered_loss_has_a_config_file(name: str) -> None:
    assert (CONFIG_DIR / f"{name}.yaml").is_file(), f"configs/loss/{name}.yaml is missing"


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_loss_config_builds_and_runs(path: Path) -> None:
    cfg = yaml.safe_load(path.read_text())
    # a file is one registered loss, a preset of the generic combo (e.g. skeleton_recall_combo), or a named
    # preset of a loss (tversky_recall: tversky at a paper's setting)
    assert (
        cfg["name"] == path.stem
        or (cfg["name"] == "combo" and path.stem.endswith("_combo"))
        or path.stem.startswith(cfg["name"] + "_")
    )
    assert cfg["mode"] == "${dataset.mode}" and cfg["ignore_index"] == "${dataset.ignore_index}"
    mode = supported_mode(cfg["name"])
    ignore_index = None if mode == "multilabel" else 255
    loss_fn = build_loss(**resolve(cfg, mode, ignore_index))
    channels = 1 if mode == "binary" else 3
    logits = torch.randn(2, channels, 8, 8, requires_grad=True)
    if mode == "multiclass":
        target = torch.randint(0, 3, (2, 8, 8))
    else:
        target = torch.randint(0, 2, (2, channels, 8, 8))
    value = loss_fn(logits, target)
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_loss_configs_build_with_a_null_ignore_index(path: Path) -> None:
    cfg = yaml.safe_load(path.read_text())
    build_loss(**resolve(cfg, supported_mode(cfg["name"]), None))


def test_loss_configs_resolve_through_omegaconf() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        raw = omegaconf.OmegaConf.load(path)
        root = omegaconf.OmegaConf.create(
            {"dataset": {"mode": supported_mode(raw["name"]), "ignore_index": 255}, "loss": raw}
        )
        cfg = omegaconf.OmegaConf.to_container(root.loss, resolve=True)
        build_loss(**loss_kwargs(cfg))


def test_readme_loss_table_matches_registry() -> None:
    readme = ROOT / "README.md"
    start, end = "<!-- loss-table:start -->", "<!-- loss-table:end -->"
    text = readme.read_text() if readme.is_file() else ""
    if start not in text or end not in text:
        pytest.skip("README.md has no loss-table markers yet")
    table = text.split(start, 1)[1].split(end, 1)[0].strip()
    assert table == loss_table_markdown().strip(), "regenerate with segtrain.losses.loss_table_markdown()"


def test_every_loss_documents_its_formula_paper_and_when_to_use_it() -> None:
    for name in available_losses():
        cls = LOSSES.get(name)
        assert all(cls.info), f"{name}: formula, paper and use_when feed the README"
