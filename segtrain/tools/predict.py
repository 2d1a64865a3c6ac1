"""Predict masks for an image or a folder of images with a trained checkpoint.

python scripts/predict.py checkpoint=outputs/runs/<date>/<run> input=photo.png output=preds
python scripts/predict.py checkpoint=<run>/checkpoints/best.pt input=images/ output=preds tta=true window=256
python scripts/predict.py checkpoint=<run> input=images/ output=preds threshold=0.3   # binary/multilabel cut

Each image is predicted at its own size: images larger than the training size go through sliding-window
inference (window=auto: the training image size; window=null: one pass). Writes <id>.png (class indices;
binary: 0/1; multilabel: one 0/1 <id>_<class>.png per channel) and <id>_overlay.png. Normalisation and
grayscale/RGB input come from the checkpoint's dataset config. Binary and multilabel masks are sigmoid >
threshold: auto (the threshold the training job tuned on val and stored in the checkpoint, else 0.5), or
a number. Keys: configs/predict.yaml.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from segtrain.tools.compose import compose, run_cli


def main(argv: list[str] | None = None) -> int:
    overrides = list(sys.argv[1:] if argv is None else argv)

    from omegaconf import OmegaConf

    from segtrain.checkpoint import load_checkpoint
    from segtrain.engine.trainer import resolve_device
    from segtrain.inference import (
        find_images,
        model_from_state,
        output_stride,
        predict_files,
        resolve_checkpoint,
        resolve_threshold,
        training_size,
    )
    from segtrain.modes import BINARY, MULTICLASS

    cfg = compose("predict", overrides)
    checkpoint = resolve_checkpoint(cfg.checkpoint)
    files = find_images(cfg.input)
    output = Path(cfg.output)
    device = resolve_device(str(cfg.device))
    state = load_checkpoint(checkpoint)
    model, config = model_from_state(state, checkpoint, device)
    ds, model_cfg = config.get("dataset") or {}, config["model"]
    window = cfg.window
    if window == "auto":
        size = training_size(config)
        stride = output_stride(model)
        window = None if size is None else -(-size // stride) * stride  # rounded up to the stride
    elif window is not None:
        window = int(window)
    mode = ds.get("mode", BINARY if int(model_cfg["classes"]) == 1 else MULTICLASS)
    setting = OmegaConf.to_container(cfg.threshold) if OmegaConf.is_config(cfg.threshold) else cfg.threshold
    threshold, why = resolve_threshold(setting, state, mode, int(model_cfg["classes"]), checkpoint)
    print(
        f"{len(files)} image(s) from {cfg.input} -> {output}  ({model_cfg['name']}, {mode}, "
        f"window {window or 'off'}, tta {'on' if cfg.tta else 'off'}, {device}); {why}"
    )
    start = time.perf_counter()
    written = predict_files(
        model,
        files,
        output,
        mode=mode,
        in_channels=int(model_cfg["in_channels"]),
        normalize=ds.get("normalize"),
        class_names=ds.get("class_names"),
        tta=bool(cfg.tta),
        window=window,
        overlap=float(cfg.overlap),
        blend=str(cfg.blend),
        alpha=float(cfg.alpha),
        device=device,
        threshold=threshold,
    )
    for w in written[:20]:
        print(f"  {w['id']}: {w['height']}x{w['width']}, classes {w['classes_present']}")
    if len(written) > 20:
        print(f"  ... and {len(written) - 20} more")
    print(f"wrote {len(written)} mask(s) and overlay(s) to {output} ({time.perf_counter() - start:.1f} s)")
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_cli(main, "predict.py", argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
