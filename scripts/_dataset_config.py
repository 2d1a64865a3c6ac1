"""Shared by the data scripts: compose configs/train.yaml with command-line overrides, like train.py does.

Uses Hydra's compose API (no run directory, no logging set-up): the scripts only need ``cfg.dataset``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def dataset_config(overrides: list[str]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(name, constructor keywords, loader settings) of ``cfg.dataset`` after ``overrides``."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import segtrain.cli  # noqa: F401  (registers the project_root / default_data_dir resolvers)

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    ds = OmegaConf.to_container(cfg.dataset, resolve=True)
    loader = ds.pop("loader", None) or {}
    name = ds.pop("name")
    return name, ds, loader
