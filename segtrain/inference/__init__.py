"""Using a trained checkpoint: rebuild the model, predict (flip TTA, sliding window), evaluate, export.

Plain Python values in, no Hydra: the scripts ``evaluate.py``, ``predict.py`` and ``export.py`` are thin
wrappers over these functions, and a notebook can call them directly::

    model, config = model_from_checkpoint("outputs/runs/.../checkpoints/best.pt")
    logits = predict_logits(model, images, tta=True, window=256, overlap=0.5)

checkpoint: loading; predict: padding, sliding windows, TTA, hard masks; evaluation: metrics over a loader;
files: image files to PNG masks and overlays; export: ONNX and TorchScript.
"""

from segtrain.inference.checkpoint import (
    model_from_checkpoint,
    model_from_state,
    resolve_checkpoint,
    resolve_threshold,
    run_dir_of,
    training_size,
)
from segtrain.inference.evaluation import (
    case_summary,
    dice_distribution,
    evaluate,
    evaluate_cases,
    hard_predictions,
    threshold_sweep,
    write_per_image_csv,
)
from segtrain.inference.export import compare_exported, export_onnx, export_torchscript
from segtrain.inference.files import find_images, load_image, overlay, predict_files
from segtrain.inference.predict import (
    BLENDS,
    FLIPS,
    forward_padded,
    logits_to_mask,
    output_stride,
    predict_logits,
    sliding_window_logits,
)

__all__ = [
    "BLENDS",
    "FLIPS",
    "case_summary",
    "compare_exported",
    "dice_distribution",
    "evaluate",
    "evaluate_cases",
    "export_onnx",
    "export_torchscript",
    "find_images",
    "forward_padded",
    "hard_predictions",
    "load_image",
    "logits_to_mask",
    "model_from_checkpoint",
    "model_from_state",
    "output_stride",
    "overlay",
    "predict_files",
    "predict_logits",
    "resolve_checkpoint",
    "resolve_threshold",
    "run_dir_of",
    "sliding_window_logits",
    "threshold_sweep",
    "training_size",
    "write_per_image_csv",
]
