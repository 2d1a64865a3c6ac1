"""Export a checkpoint's model to ONNX or TorchScript, and check it against PyTorch.

python scripts/export.py checkpoint=outputs/runs/<date>/<run> format=onnx
python scripts/export.py checkpoint=<run>/checkpoints/best.pt format=torchscript output=model.pt

The exported model maps normalised N x C x H x W float32 images (H, W multiples of 32; ONNX axes batch,
height and width are dynamic) to raw N x classes x H x W logits. <output>.json beside it records what a
caller needs: normalisation, channels, class names, mode. Keys: configs/export.yaml.
"""

from __future__ import annotations

import sys
from pathlib import Path

from segtrain.tools.compose import compose, run_cli

SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


def main(argv: list[str] | None = None) -> int:
    overrides = list(sys.argv[1:] if argv is None else argv)

    from segtrain.engine.records import write_json
    from segtrain.inference import (
        compare_exported,
        export_onnx,
        export_torchscript,
        model_from_checkpoint,
        output_stride,
        resolve_checkpoint,
        run_dir_of,
        training_size,
    )

    cfg = compose("export", overrides)
    fmt = str(cfg.format).lower()
    if fmt not in SUFFIX:
        raise ValueError(f"format={cfg.format!r}; expected one of {', '.join(SUFFIX)}")
    ckpt_path = resolve_checkpoint(cfg.checkpoint)
    model, config = model_from_checkpoint(ckpt_path)
    model_cfg, ds = config["model"], config.get("dataset") or {}
    in_channels = int(model_cfg["in_channels"])
    stride = output_stride(model)
    size = int(cfg.size or -(-(training_size(config) or 256) // stride) * stride)
    if size % stride:
        raise ValueError(f"size={size} must be a multiple of {stride} (the encoder's output stride)")
    out = Path(cfg.output) if cfg.output else run_dir_of(ckpt_path) / "export" / f"model{SUFFIX[fmt]}"
    if fmt == "onnx":
        export_onnx(model, out, size=size, opset=int(cfg.opset), in_channels=in_channels)
    else:
        export_torchscript(model, out, size=size, in_channels=in_channels)
    info = {
        "checkpoint": str(ckpt_path),
        "format": fmt,
        "input": {"name": "image", "shape": ["batch", in_channels, "height", "width"], "multiple_of": stride},
        "output": {"name": "logits", "shape": ["batch", int(model_cfg["classes"]), "height", "width"]},
        "normalize": ds.get("normalize"),
        "mode": ds.get("mode"),
        "class_names": ds.get("class_names"),
        "model": {k: v for k, v in model_cfg.items() if k != "encoder_weights"},
        "opset": int(cfg.opset) if fmt == "onnx" else None,
    }
    if cfg.verify:
        # a different shape from the traced one: the dynamic axes are exercised too
        diff = compare_exported(model, out, size=(size, size + stride), in_channels=in_channels)
        info["max_abs_diff_vs_pytorch"] = diff
        print(
            f"max |logits - PyTorch logits| = {diff:.2e} on a random 2 x {in_channels} x {size} x {size + stride} batch"
        )
    write_json(out.with_suffix(out.suffix + ".json"), info)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out.name}.json ({fmt}, {model_cfg['name']})")
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_cli(main, "export.py", argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
