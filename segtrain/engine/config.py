"""What shapes the loop (``TrainerConfig``, defined with the other config schemas in segtrain/schemas.py) and
where it runs (device, precision)."""

from __future__ import annotations

import torch

from segtrain.schemas import TrainerConfig

__all__ = ["TrainerConfig", "resolve_device", "resolve_precision"]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"trainer.device={name} but CUDA is not available here; use trainer.device=auto or cpu")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """auto: bf16-mixed on GPUs that support it, fp16-mixed on older GPUs, fp32 on CPU."""
    if name != "auto":
        if name != "32" and device.type == "cpu" and name == "16-mixed":
            raise ValueError("trainer.precision=16-mixed needs a GPU; on CPU use 32 or bf16-mixed")
        return name
    if device.type == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32"
