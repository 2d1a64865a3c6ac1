"""Shared by the data scripts: compose configs/train.yaml with command-line overrides, like train.py does.

Uses Hydra's compose API (no run directory, no logging set-up): the scripts only need ``cfg.dataset``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _compose import compose  # noqa: E402


def dataset_config(overrides: list[str]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(name, constructor keywords, loader settings) of ``cfg.dataset`` after ``overrides``."""
    from omegaconf import OmegaConf

    cfg = compose("train", overrides)
    ds = OmegaConf.to_container(cfg.dataset, resolve=True)
    loader = ds.pop("loader", None) or {}
    name = ds.pop("name")
    return name, ds, loader
