"""Using a trained checkpoint: rebuild the model, predict (flip TTA, sliding window), evaluate, export.

Plain Python values in, no Hydra: the scripts ``evaluate.py``, ``predict.py`` and ``export.py`` are thin
wrappers over these functions, and a notebook can call them directly::

    model, config = model_from_checkpoint("outputs/runs/.../checkpoints/best.pt")
    logits = predict_logits(model, images, tta=True, window=256, overlap=0.5)

Conventions:
- ``predict_logits`` returns logits. Flip TTA averages the **logits** of the views (as nnU-Net v2 does for
  its mirroring), so the result is still raw logits that the metrics and the losses take as they are.
- Sliding windows are blended with a Gaussian weight (sigma = window / 8, nnU-Net's choice) or uniformly;
  every tile has the window's size, so only images smaller than the window are padded.
- Inputs whose height or width is not a multiple of the encoder's output stride (32 for most smp
  encoders) are padded (reflect, replicate where the image is too small) and the logits cropped back.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from segtrain.data import io
from segtrain.engine.checkpoint import load_checkpoint
from segtrain.engine.records import colorize
from segtrain.metrics import EMPTY_CLASS_POLICY, SegMetrics
from segtrain.models import build_model

BLENDS = ("gaussian", "uniform")
# The four 2-D flips: none, width, height, both (dims of an N x C x H x W tensor).
FLIPS: tuple[tuple[int, ...], ...] = ((), (3,), (2,), (2, 3))


# ---------------------------------------------------------------------------------------- checkpoint
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


# ---------------------------------------------------------------------------------------- prediction
def output_stride(model: nn.Module) -> int:
    """The multiple that input height and width must have (the smp encoder's output stride, else 32)."""
    stride = getattr(getattr(model, "encoder", None), "output_stride", 32)
    return int(stride) if isinstance(stride, int) and stride > 0 else 32


def _pad(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad bottom/right up to height x width: reflect where the image allows it, replicate otherwise."""
    ph, pw = height - images.shape[-2], width - images.shape[-1]
    if ph == 0 and pw == 0:
        return images
    mode = "reflect" if ph < images.shape[-2] and pw < images.shape[-1] else "replicate"
    return F.pad(images, (0, pw, 0, ph), mode=mode)


def forward_padded(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``model(images)`` for any H x W: pad to a multiple of the output stride, crop the logits back."""
    h, w = images.shape[-2:]
    s = output_stride(model)
    logits = model(_pad(images, math.ceil(h / s) * s, math.ceil(w / s) * s))
    return logits[..., :h, :w]


def _starts(length: int, window: int, step: int) -> list[int]:
    if length <= window:
        return [0]
    n = math.ceil((length - window) / step) + 1
    return sorted({round(i * (length - window) / (n - 1)) for i in range(n)})


def _blend_weight(window: int, blend: str, device: torch.device) -> torch.Tensor:
    if blend == "uniform":
        return torch.ones(window, window, device=device)
    centre, sigma = (window - 1) / 2, window / 8
    g = torch.exp(-((torch.arange(window, device=device, dtype=torch.float32) - centre) ** 2) / (2 * sigma**2))
    weight = g[:, None] * g[None, :]
    return (weight / weight.max()).clamp(min=1e-4)  # the corners still count where one tile covers them


def sliding_window_logits(
    model: nn.Module, images: torch.Tensor, window: int, overlap: float = 0.5, blend: str = "gaussian"
) -> torch.Tensor:
    """Logits of ``images`` (N x C x H x W) from ``window`` x ``window`` tiles overlapping by ``overlap``,
    blended by ``blend`` ("gaussian" or "uniform"). An image that fits in one window is one forward pass."""
    s = output_stride(model)
    if window < s or window % s:
        raise ValueError(f"window={window} must be a positive multiple of {s} (the encoder's output stride)")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap={overlap} must be in [0, 1)")
    if blend not in BLENDS:
        raise ValueError(f"blend={blend!r} must be one of {BLENDS}")
    h, w = images.shape[-2:]
    if h <= window and w <= window:
        return forward_padded(model, images).float()
    padded = _pad(images, max(h, window), max(w, window))
    ph, pw = padded.shape[-2:]
    step = max(1, int(window * (1 - overlap)))
    weight = _blend_weight(window, blend, images.device)
    total, norm = None, torch.zeros(ph, pw, device=images.device)
    for y in _starts(ph, window, step):
        for x in _starts(pw, window, step):
            tile = model(padded[..., y : y + window, x : x + window]).float()
            if total is None:
                total = torch.zeros(*tile.shape[:2], ph, pw, device=images.device)
            total[..., y : y + window, x : x + window] += tile * weight
            norm[y : y + window, x : x + window] += weight
    return (total / norm)[..., :h, :w]


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    tta: bool = False,
    window: int | None = None,
    overlap: float = 0.5,
    blend: str = "gaussian",
) -> torch.Tensor:
    """N x C x H x W float32 logits for N x in_channels x H x W (normalised) images of any size; ``model``
    should be in eval mode (``model_from_checkpoint`` returns it so).

    ``tta``: average the logits of the four flips (none, horizontal, vertical, both), each flipped back;
    the result is flip-equivariant whatever the model. ``window``: sliding-window inference with square
    tiles of that side (a multiple of the output stride) for images larger than it; None: one pass.
    """

    def one(x: torch.Tensor) -> torch.Tensor:
        if window is None:
            return forward_padded(model, x).float()
        return sliding_window_logits(model, x, window, overlap, blend)

    if not tta:
        return one(images)
    out = None
    for dims in FLIPS:
        view = one(images.flip(dims)).flip(dims) if dims else one(images)
        out = view if out is None else out + view
    return out / len(FLIPS)


def logits_to_mask(logits: torch.Tensor, mode: str) -> torch.Tensor:
    """Hard prediction of one image's C x H x W logits: H x W class indices (multiclass: argmax; binary:
    logit > 0 as 0/1) or, in multilabel mode, C x H x W in {0, 1}."""
    if mode == "multiclass":
        return logits.argmax(0)
    if mode == "binary":
        return (logits[0] > 0).long()
    if mode == "multilabel":
        return (logits > 0).long()
    raise ValueError(f"mode must be multiclass, binary or multilabel, got {mode!r}")


# ---------------------------------------------------------------------------------------- evaluation
def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value


def dice_distribution(values: Iterable[float], bins: int = 10) -> dict[str, Any]:
    """mean, median, p10, p90, std, min, max and a histogram over [0, 1] of the defined (non-NaN) values."""
    all_values = list(values)
    arr = np.asarray([v for v in all_values if not math.isnan(v)], dtype=np.float64)
    counts, edges = np.histogram(arr, bins=bins, range=(0.0, 1.0))
    stats: dict[str, Any] = {"count": int(arr.size), "undefined": len(all_values) - int(arr.size)}
    if arr.size:
        p10, median, p90 = np.percentile(arr, [10, 50, 90])
        stats.update(
            mean=float(arr.mean()), median=float(median), p10=float(p10), p90=float(p90),
            std=float(arr.std()), min=float(arr.min()), max=float(arr.max()),
        )  # fmt: skip
    else:
        stats.update({k: math.nan for k in ("mean", "median", "p10", "p90", "std", "min", "max")})
    stats["histogram"] = {"bin_edges": [round(float(e), 6) for e in edges], "counts": counts.tolist()}
    return stats


def _image_dice(metrics: SegMetrics, logits: torch.Tensor, target: torch.Tensor) -> float:
    """One image's foreground Dice as SegMetrics defines it (mean over its foreground classes with a
    defined Dice; NaN when it has none): SegMetrics itself on that one image."""
    metrics.reset()
    metrics.update(logits, target)
    dice, _ = metrics.per_class()
    fg = dice[1:] if metrics.mode == "multiclass" else dice
    kept = [d for d in fg if not math.isnan(d)]
    return sum(kept) / len(kept) if kept else math.nan


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Mapping[str, Any]],
    mode: str,
    num_classes: int,
    ignore_index: int | None = None,
    class_names: Sequence[str] | None = None,
    tta: bool = False,
    device: str | torch.device = "cpu",
    window: int | None = None,
    overlap: float = 0.5,
    blend: str = "gaussian",
    bins: int = 10,
) -> dict[str, Any]:
    """Dice/IoU over the whole of ``loader`` (batches of ``{"image", "mask", "id"}``) with SegMetrics, and
    each image's foreground Dice for a distribution.

    Returns ``{"dice", "iou", "dice_per_image", "per_class": {"dice": {cls: v}, "iou": {...}},
    "per_image_dice": {mean, median, p10, p90, ..., histogram}, "per_image": [{"id", "dice"}, ...],
    "num_images", "tta", "window", "empty_class_policy"}``; NaN where a value is undefined.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    metrics = SegMetrics(num_classes, mode, ignore_index, class_names, device=device)
    single = SegMetrics(num_classes, mode, ignore_index, class_names, device=device)
    per_image: list[dict[str, Any]] = []
    for batch in loader:
        x, y = batch["image"].to(device), batch["mask"].to(device)
        logits = predict_logits(model, x, tta=tta, window=window, overlap=overlap, blend=blend)
        metrics.update(logits, y)
        ids = list(batch.get("id", [])) or [str(len(per_image) + i) for i in range(x.shape[0])]
        for i in range(x.shape[0]):
            per_image.append({"id": str(ids[i]), "dice": _image_dice(single, logits[i : i + 1], y[i : i + 1])})
    if not per_image:
        raise ValueError("evaluate: the loader yielded no batches (empty split?)")
    values = metrics.compute()
    names = metrics.class_names
    return {
        "dice": values["dice"],
        "iou": values["iou"],
        "dice_per_image": values["dice_per_image"],
        "per_class": {
            "dice": {c: values[f"dice/{c}"] for c in names},
            "iou": {c: values[f"iou/{c}"] for c in names},
        },
        "per_image_dice": dice_distribution((r["dice"] for r in per_image), bins),
        "per_image": per_image,
        "num_images": len(per_image),
        "mode": mode,
        "tta": bool(tta),
        "window": window,
        "empty_class_policy": EMPTY_CLASS_POLICY,
    }


def write_per_image_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """``id,dice`` rows (empty where an image's Dice is undefined)."""
    with Path(path).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "dice"])
        for r in rows:
            d = r["dice"]
            writer.writerow([r["id"], "" if d is None or math.isnan(d) else f"{d:.6f}"])


def jsonable(value: Any) -> Any:
    """NaN -> None everywhere (lists included), so the JSON is valid."""
    return _nan_to_none(value)


# ---------------------------------------------------------------------------------------- files
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
    normalize = normalize or {}
    stats = []
    for key, default in (("mean", 0.0), ("std", 1.0)):
        value = normalize.get(key)
        v = np.asarray(default if value is None else value, dtype=np.float32).reshape(-1)
        if v.size == 1:
            v = np.repeat(v, in_channels)
        if v.size != in_channels:
            raise ValueError(f"dataset.normalize.{key} has {v.size} values but the model takes {in_channels} channels")
        stats.append(v)
    image = torch.from_numpy(np.ascontiguousarray(((unit - stats[0]) / stats[1]).transpose(2, 0, 1)))
    display = torch.from_numpy(np.ascontiguousarray(unit.transpose(2, 0, 1)))
    return image, display.expand(3, -1, -1) if display.shape[0] == 1 else display[:3]


def overlay(display: torch.Tensor, labels: torch.Tensor, alpha: float = 0.5) -> np.ndarray:
    """H x W x 3 uint8: the image (3 x H x W in [0, 1]) with class colours blended over labels > 0."""
    colour = colorize(labels)
    fg = (labels > 0).unsqueeze(0)
    out = torch.where(fg, (1 - alpha) * display + alpha * colour, display)
    return (out.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


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
) -> list[dict[str, Any]]:
    """Predict each image at its own resolution and write ``<id>.png`` and ``<id>_overlay.png`` to ``output``.

    Masks: multiclass class indices (uint8, uint16 past 255 classes); binary 0/1. Multilabel: one 0/1 mask
    per channel, ``<id>_<class>.png``, and the overlay draws the highest-scoring positive channel.
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
        mask = logits_to_mask(logits, mode)
        if mode == "multilabel":
            names = names or [f"class_{i}" for i in range(mask.shape[0])]
            mask_paths = [output / f"{sid}_{n}.png" for n in names]
            for channel, p in zip(mask, mask_paths, strict=True):
                _save_png(p, channel)
            score = torch.where(logits > 0, logits, torch.full_like(logits, -torch.inf))
            labels = torch.where(mask.bool().any(0), score.argmax(0) + 1, 0)
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
                "mask": [str(p) for p in mask_paths] if mode == "multilabel" else str(mask_paths[0]),
                "overlay": str(overlay_path),
                "height": int(image.shape[-2]),
                "width": int(image.shape[-1]),
                "classes_present": present,
            }
        )
    return written


# ---------------------------------------------------------------------------------------- export
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
