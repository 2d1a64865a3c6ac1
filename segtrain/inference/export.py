"""Exporting a model to ONNX or TorchScript, and checking the exported file against PyTorch."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn


def _example_input(in_channels: int, size: int | tuple[int, int], batch: int = 1) -> torch.Tensor:
    h, w = (size, size) if isinstance(size, int) else size
    return torch.randn(batch, in_channels, h, w, generator=torch.Generator().manual_seed(0))


def export_onnx(
    model: nn.Module, path: str | Path, size: int | tuple[int, int] = 256, opset: int = 17, in_channels: int = 3
) -> Path:
    """Export to ONNX (``image`` -> ``logits``) with dynamic batch, height and width axes.

    Inputs are normalised N x in_channels x H x W float32 images, H and W multiples of the output stride
    (the exported graph does not pad). Uses torch's TorchScript-based exporter (``dynamo=False``), which
    needs no onnxscript.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    example = _example_input(in_channels, size)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy-exporter deprecation and tracer warnings
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": axes, "logits": axes},
            opset_version=opset,
            do_constant_folding=True,
        )
    return path


def export_torchscript(
    model: nn.Module, path: str | Path, size: int | tuple[int, int] = 256, in_channels: int = 3
) -> Path:
    """Export with ``torch.jit.trace`` (smp models are not scriptable); load with ``torch.jit.load``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, _example_input(in_channels, size), check_trace=False)
        torch.jit.save(traced, str(path))
    return path


@torch.no_grad()
def compare_exported(
    model: nn.Module, path: str | Path, size: int | tuple[int, int] = 256, in_channels: int = 3, batch: int = 2
) -> float:
    """Max absolute difference between PyTorch's logits and the exported file's (ONNX in onnxruntime on
    CPU, or TorchScript) on a random batch of ``batch`` x ``size`` images."""
    path = Path(path)
    x = _example_input(in_channels, size, batch)
    ref = model.cpu().eval()(x).numpy()
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = session.run(None, {"image": x.numpy()})[0]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            out = torch.jit.load(str(path), map_location="cpu")(x).numpy()
    return float(np.abs(out - ref).max())
