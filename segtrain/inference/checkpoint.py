"""Rebuilding a trained model from a segtrain checkpoint (file or run directory), and what its config says."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segtrain.checkpoint import load_checkpoint
from segtrain.metrics.threshold import DEFAULT, check_thresholds
from segtrain.models import build_model
from segtrain.modes import MULTICLASS


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run directory (``checkpoints/best.pt``, else ``checkpoints/last.pt``)."""
    path = Path(path).expanduser()
    if path.is_dir():
        for candidate in (path / "checkpoints" / "best.pt", path / "checkpoints" / "last.pt", path / "best.pt"):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(
            f"checkpoint={path} is a directory without checkpoints/best.pt or checkpoints/last.pt; "
            "give a .pt file or a run directory"
        )
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint={path} does not exist; give a .pt file or a run directory")
    return path


def run_dir_of(checkpoint: str | Path) -> Path:
    """The run directory a checkpoint belongs to (``<run>/checkpoints/x.pt`` -> ``<run>``)."""
    path = Path(checkpoint)
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def _strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # DistributedDataParallel ("module.") and torch.compile ("_orig_mod.") wrap the module names.
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint was trained with, load its weights; returns (model in eval mode, config).

    The architecture comes from the checkpoint's stored config (``config["model"]`` minus ``name``), with
    ``encoder_weights`` forced to None: the weights come from the checkpoint, nothing is downloaded.
    ``config`` is the full resolved training config (``model``, ``dataset``, ``loss``, ``trainer``, ...).
    """
    path = resolve_checkpoint(path)
    return model_from_state(load_checkpoint(path, map_location="cpu"), path, device)


def model_from_state(
    state: Mapping[str, Any], source: str | Path = "checkpoint", device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """``model_from_checkpoint`` for a checkpoint already loaded with ``load_checkpoint`` (``source`` names
    it in errors)."""
    config = state.get("config")
    if not isinstance(config, Mapping) or not isinstance(config.get("model"), Mapping):
        raise ValueError(
            f"checkpoint {source} has no 'config' with a 'model' section (found keys {sorted(state)}); "
            "it was not written by segtrain's trainer, so the architecture cannot be rebuilt"
        )
    model_cfg = dict(config["model"])
    if "name" not in model_cfg:
        raise ValueError(f"checkpoint {source}: config.model has no 'name' (keys: {sorted(model_cfg)})")
    unresolved = {k: v for k, v in model_cfg.items() if isinstance(v, str) and "${" in v}
    if unresolved:
        raise ValueError(f"checkpoint {source}: config.model holds unresolved interpolations {unresolved}")
    name = model_cfg.pop("name")
    model_cfg["encoder_weights"] = None
    model = build_model(name, **model_cfg)
    try:
        model.load_state_dict(_strip_prefixes(state["model"]))
    except RuntimeError as err:
        raise ValueError(
            f"checkpoint {source}: the stored weights do not fit model '{name}' built from config.model "
            f"{model_cfg}: {' '.join(str(err).split())[:500]}"
        ) from err
    return model.to(device).eval(), dict(config)


def training_size(config: Mapping[str, Any]) -> int | None:
    """The image side the model was trained on: ``dataset.image_size``, else the largest crop/resize
    ``height``/``width``/``size`` in ``dataset.augment.train``; None where neither says."""
    ds = config.get("dataset") or {}
    if isinstance(ds.get("image_size"), int):
        return int(ds["image_size"])
    sizes = []
    for entry in (ds.get("augment") or {}).get("train") or []:
        if isinstance(entry, Mapping) and "Crop" in str(entry.get("name", "")):
            size = entry.get("size")
            values = size if isinstance(size, Sequence) else [entry.get("height"), entry.get("width")]
            sizes += [int(v) for v in values if isinstance(v, int)]
    return max(sizes) if sizes else None


def resolve_threshold(
    setting: Any, state: Mapping[str, Any], mode: str, num_channels: int, source: str | Path = "checkpoint"
) -> tuple[list[float] | None, str]:
    """The per-channel thresholds that ``threshold: <setting>`` (evaluate.py, predict.py) means for a
    checkpoint, and a line saying where they come from.

    ``auto``: the checkpoint's tuned threshold (``state["threshold"]["value"]``, written by a job with
    ``job.tune_threshold: true``), else 0.5; a number (every channel) or a list (one per channel) in
    (0, 1) overrides it. Multiclass models take no threshold: ``auto`` gives None (argmax), anything else
    is an error.
    """
    if mode == MULTICLASS:
        if setting != "auto":
            raise ValueError(
                f"threshold={setting!r} given for a multiclass model (argmax takes no threshold); leave threshold=auto"
            )
        return None, "argmax (multiclass)"
    if setting == "auto":
        stored = state.get("threshold")
        if isinstance(stored, Mapping) and stored.get("value") is not None:
            values = check_thresholds(stored["value"], num_channels, f"checkpoint {source}: threshold.value")
            return values, f"threshold {_show(values)}: tuned on {stored.get('tuned_on')} (from the checkpoint)"
        return [DEFAULT] * num_channels, (
            f"threshold 0.5: checkpoint {source} holds no tuned threshold (trained without job.tune_threshold)"
        )
    if isinstance(setting, str) or setting is None:
        raise ValueError(f"threshold={setting!r}: expected auto, a number in (0, 1) or a list of them per channel")
    values = check_thresholds(setting, num_channels)
    return values, f"threshold {_show(values)} (given)"


def _show(values: Sequence[float]) -> str:
    return f"{values[0]:g}" if len(set(values)) == 1 else "[" + ", ".join(f"{v:g}" for v in values) + "]"
