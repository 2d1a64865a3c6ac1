"""Shared by the command-line tools: Hydra's compose API over configs/ (no run directory, no logging set-up), the
dataset section of a composed config as plain values, and the one-line error convention of the scripts."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any


def compose(config_name: str, overrides: list[str]) -> Any:
    """configs/<config_name>.yaml with Hydra overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from segtrain.cli import CONFIG_DIR  # importing it registers the project_root / default_data_dir resolvers

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)


def dataset_config(overrides: list[str]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(name, constructor keywords, loader settings) of configs/train.yaml's ``dataset`` after ``overrides``,
    as train.py composes it."""
    from omegaconf import OmegaConf

    from segtrain.build import split_dataset_config

    return split_dataset_config(OmegaConf.to_container(compose("train", overrides).dataset, resolve=True))


def run_cli(main: Callable[[list[str] | None], int], name: str, argv: list[str] | None = None, doc: str = "") -> int:
    """``main`` with ``-h``/``--help`` printing ``doc``, and an error as one line on stderr with exit status 1
    (HYDRA_FULL_ERROR=1: traceback)."""
    if {"-h", "--help"} & set(sys.argv[1:] if argv is None else argv):
        print(doc)
        return 0
    try:
        return main(argv)
    except Exception as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"{name}: error: {type(err).__name__}: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
