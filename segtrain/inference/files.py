"""Predicting image files: one PNG mask (or one per channel) and a colour overlay per input image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from segtrain.data import io
from segtrain.data.normalize import normalize_stats
from segtrain.inference.predict import logits_to_mask, predict_logits
from segtrain.metrics.threshold import shift_logits
from segtrain.modes import MULTILABEL
from segtrain.overlays import blend, highest_positive


def find_images(path: str | Path) -> list[Path]:
    """``path`` itself if it is an image file, else the images (png, jpg, tif, bmp) in that folder, sorted."""
    path = Path(path).expanduser()
    if path.is_file():
        if path.suffix.lower() not in io.IMAGE_EXTENSIONS:
            raise ValueError(f"input={path} is not an image (expected one of {', '.join(io.IMAGE_EXTENSIONS)})")
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"input={path} does not exist; give an image file or a folder of images")
    files = io.find_files(path, io.IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(
            f"input folder {path} has no images (expected files ending in {', '.join(io.IMAGE_EXTENSIONS)})"
        )
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen:
            raise ValueError(f"input folder {path}: {seen[f.stem].name} and {f.name} would both write {f.stem}.png")
        seen[f.stem] = f
    return files


def load_image(
    path: str | Path, in_channels: int, normalize: Mapping[str, Any] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised in_channels x H x W float32 tensor, the image in [0, 1] as 3 x H x W for overlays).

    Scaled by the bit depth (255 or 65535), then ``(x - mean) / std`` with the data set's ``normalize``.
    A grayscale image is repeated to 3 channels where the model takes 3; a colour image where it takes 1
    is an error that names the file.
    """
    arr = io.read_image(path, in_channels)
    unit = arr.astype(np.float32) / io.dtype_max(arr)
    mean, std = normalize_stats(normalize, in_channels)
    image = torch.from_numpy(np.ascontiguousarray(((unit - mean) / std).transpose(2, 0, 1)))
    display = torch.from_numpy(np.ascontiguousarray(unit.transpose(2, 0, 1)))
    return image, display.expand(3, -1, -1) if display.shape[0] == 1 else display[:3]


def overlay(display: torch.Tensor, labels: torch.Tensor, alpha: float = 0.5) -> np.ndarray:
    """H x W x 3 uint8: the image (3 x H x W in [0, 1]) with class colours blended over labels > 0."""
    return (blend(display, labels, alpha).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def _save_png(path: Path, labels: torch.Tensor) -> None:
    arr = labels.cpu().numpy()
    Image.fromarray(arr.astype(np.uint8 if arr.max(initial=0) < 256 else np.uint16)).save(path)


@torch.no_grad()
def predict_files(
    model: nn.Module,
    files: Sequence[Path],
    output: str | Path,
    mode: str,
    in_channels: int,
    normalize: Mapping[str, Any] | None = None,
    class_names: Sequence[str] | None = None,
    tta: bool = False,
    window: int | None = None,
    overlap: float = 0.5,
    blend: str = "gaussian",
    alpha: float = 0.5,
    device: str | torch.device = "cpu",
    threshold: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Predict each image at its own resolution and write ``<id>.png`` and ``<id>_overlay.png`` to ``output``.

    Masks: multiclass class indices (uint8, uint16 past 255 classes); binary 0/1. Multilabel: one 0/1 mask
    per channel, ``<id>_<class>.png``, and the overlay draws the highest-scoring positive channel.
    ``threshold`` (binary, multilabel; one per channel): foreground where sigmoid > t (None: 0.5).
    Returns one ``{"id", "input", "mask", "overlay", "height", "width", "classes_present"}`` per file.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    model = model.to(device).eval()
    names = list(class_names) if class_names else None
    written = []
    for path in files:
        image, display = load_image(path, in_channels, normalize)
        logits = predict_logits(model, image[None].to(device), tta=tta, window=window, overlap=overlap, blend=blend)
        logits = logits[0].cpu()
        sid = Path(path).stem
        mask = logits_to_mask(logits, mode, threshold)
        if mode == MULTILABEL:
            names = names or [f"class_{i}" for i in range(mask.shape[0])]
            mask_paths = [output / f"{sid}_{n}.png" for n in names]
            for channel, p in zip(mask, mask_paths, strict=True):
                _save_png(p, channel)
            labels = highest_positive(shift_logits(logits, threshold), 0)  # the channels the masks hold
            present = [n for n, c in zip(names, mask, strict=True) if c.any()]
        else:
            mask_paths = [output / f"{sid}.png"]
            _save_png(mask_paths[0], mask)
            labels = mask
            present = sorted(int(v) for v in mask.unique())
        overlay_path = output / f"{sid}_overlay.png"
        Image.fromarray(overlay(display, labels, alpha)).save(overlay_path)
        written.append(
            {
                "id": sid,
                "input": str(path),
                "mask": [str(p) for p in mask_paths] if mode == MULTILABEL else str(mask_paths[0]),
                "overlay": str(overlay_path),
                "height": int(image.shape[-2]),
                "width": int(image.shape[-1]),
                "classes_present": present,
            }
        )
    return written
