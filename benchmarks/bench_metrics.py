"""Cost of the end-of-job per-case metrics next to a plain validation pass, on CamVid-sized data.

    python benchmarks/bench_metrics.py --job [--rounds 3] [--checkpoint PT] [--override key=value ...]
    python benchmarks/bench_metrics.py [--rounds 3] [--batch 8] [--tolerance 1] [--pred perturbed|model]

``--job`` times the real thing: ``segtrain.job.final_eval.final_evaluation`` (the selected checkpoint on the
val split, loader included, case by case with HD95/NSD, per_case.csv and metrics.json written to a temporary run
directory) against ``Trainer.validate()`` (the per-epoch pass: forward, loss, confusion matrix, overlays),
for the job ``python train.py dataset=camvid <overrides>`` builds (the default U-Net, random init unless
``--checkpoint`` gives trained weights; camvid at $SEGTRAIN_DATA/camvid, 101 val images of 360 x 480,
padded to 384 x 480), on the CPU. The two arms alternate round by round in one process (after one warm-up
round of each); the ratio is the median over rounds of each round's final-evaluation/validation ratio.

Without ``--job``:
Times ``per_case_rows`` (Dice, IoU, HD95, NSD, counts: multiclass, so no clDice) over 101 images of
360 x 480, batch by batch, against the forward passes of the default U-Net (configs/model/unet.yaml: smp
Unet, tu-regnetx_002 encoder, random init) over the same images at the same batch size, on the CPU, in
eval mode without gradients: the two arms alternate round by round in one process and the reported ratio
is the median over rounds of each round's metrics/forward ratio. The metrics run on one thread; on a
loaded machine ``--threads 1`` gives the forward one thread too, a ratio that the load distorts less. The
forward runs on 384 x 480 inputs (the val pipeline pads CamVid's height to a multiple of 32).

Masks: the real val masks when ``$SEGTRAIN_DATA/camvid/masks/val`` exists (11 classes, void = 255 ignored),
else random smooth label maps with 12 classes. Predictions: ``perturbed`` (default) is the reference with
its region borders moved (a random per-image shift of up to 3 pixels) and a few wrong blobs, the errors of
a trained model; ``model`` is the argmax of the random-init model, a fragmented worst case.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segtrain.metrics.per_case import aggregate_cases, per_case_rows  # noqa: E402
from segtrain.models import build_model  # noqa: E402

N_IMAGES, HEIGHT, WIDTH, PADDED_HEIGHT = 101, 360, 480, 384


def side_by_side(base, other, rounds: int) -> tuple[list[float], list[float], list[float], object]:
    """One warm-up of each, then ``rounds`` of ``base`` and ``other`` in turn: their times (s), the ratio
    other / base per round, and ``other``'s last result."""
    base()
    other()
    t_base, t_other, ratios, out = [], [], [], None
    for _ in range(rounds):
        start = time.perf_counter()
        base()
        t_base.append(time.perf_counter() - start)
        start = time.perf_counter()
        out = other()
        t_other.append(time.perf_counter() - start)
        ratios.append(t_other[-1] / t_base[-1])
    return t_base, t_other, ratios, out


def load_masks(rng: np.random.Generator) -> tuple[np.ndarray, int, int | None, str]:
    """(N x H x W int64 masks, num_classes, ignore_index, description)."""
    root = os.environ.get("SEGTRAIN_DATA")
    folder = Path(root) / "camvid" / "masks" / "val" if root else None
    if folder is not None and folder.is_dir():
        files = sorted(folder.glob("*.png"))[:N_IMAGES]
        masks = np.stack([np.asarray(Image.open(f), dtype=np.int64) for f in files])
        if masks.shape[1:] != (HEIGHT, WIDTH):
            raise ValueError(f"{folder}: masks of shape {masks.shape[1:]}, expected {(HEIGHT, WIDTH)}")
        return masks, 11, 255, f"CamVid val masks ({len(files)} files)"
    fields = [gaussian_filter(rng.standard_normal((12, HEIGHT, WIDTH)), (0, 12, 12)) for _ in range(N_IMAGES)]
    return np.stack([f.argmax(0) for f in fields]), 12, None, "random smooth label maps, 12 classes"


def perturb(masks: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """The masks with shifted region borders and a few blobs of a wrong class."""
    out = np.empty_like(masks)
    for i, mask in enumerate(masks):
        dy, dx = rng.integers(-3, 4, size=2)
        shifted = np.roll(mask, (dy, dx), axis=(0, 1))
        wrong = gaussian_filter(rng.standard_normal(mask.shape), 8) > 2.5 * 0.035  # ~5% of pixels, a few blobs
        out[i] = np.where(wrong, rng.integers(0, num_classes), shifted)
    out[out >= num_classes] = 0  # void (255) rolled into place becomes a real class in the prediction
    return out


def bench_job(rounds: int, checkpoint: str | None, overrides: list[str]) -> None:
    """Final evaluation vs the trainer's validation pass for ``train.py dataset=camvid <overrides>``."""
    import tempfile

    from omegaconf import OmegaConf

    from segtrain.build import build_datasets, build_eval_loader, build_loaders, trainer_config
    from segtrain.checkpoint import load_checkpoint
    from segtrain.engine import Trainer
    from segtrain.job.final_eval import final_evaluation
    from segtrain.losses import build_loss
    from segtrain.losses.search import loss_kwargs
    from segtrain.metrics import SegMetrics
    from segtrain.optim import build_optimizer, build_scheduler
    from segtrain.tools.compose import compose

    cfg = OmegaConf.to_container(compose("train", ["dataset=camvid", "logger=none", *overrides]), resolve=True)
    train_set, val_set = build_datasets(cfg["dataset"])
    model_cfg = dict(cfg["model"])
    model = build_model(model_cfg.pop("name"), **model_cfg)
    if checkpoint:
        model.load_state_dict(load_checkpoint(checkpoint)["model"])
    loss_fn = build_loss(**loss_kwargs(cfg["loss"]))
    _, val_loader = build_loaders(cfg["dataset"], train_set, val_set, 0)
    tcfg = trainer_config({**cfg["trainer"], "num_vis": cfg["trainer"]["num_vis"], "resume": None})
    run_dir = Path(tempfile.mkdtemp(prefix="bench-final-eval-"))
    trainer = Trainer(
        tcfg, model, loss_fn, build_optimizer("sgd", model.parameters(), lr=0.0),
        lambda opt, total: build_scheduler("constant", opt, total), val_loader, val_loader,
        SegMetrics(val_set.num_classes, val_set.mode, val_set.ignore_index, val_set.class_names), run_dir,
    )  # fmt: skip
    tolerance = float(cfg["metrics"]["nsd_tolerance"])
    splits = {"val": ("val", val_set)}
    n_images = len(build_eval_loader(cfg["dataset"], val_set).dataset)
    print(
        f"job: dataset=camvid {' '.join(overrides)} ({cfg['model']['name']}/{cfg['model'].get('encoder_name')}, "
        f"{'weights ' + checkpoint if checkpoint else 'random init'}); val {n_images} images, batch "
        f"{val_loader.batch_size}, {cfg['dataset']['loader'].get('num_workers', 0)} loader workers; "
        f"torch threads {torch.get_num_threads()}; nsd tolerance {tolerance:g} px"
    )

    def validate() -> None:
        trainer.validate()

    def evaluate() -> dict:
        # as train() calls it in one process: the trainer's val loader is reused
        reuse = {"val": val_loader}
        return final_evaluation(trainer, {"timing": {}}, splits, reuse, tolerance, run_dir)

    t_val, t_eval, ratios, result = side_by_side(validate, evaluate, rounds)  # warm-up: loader workers, allocator
    v = result["val"]
    print(f"per-case means: dice {v['dice']:.3f}, hd95 {v['hd95']:.2f} px, nsd {v['nsd']:.3f} ({v['num_cases']} cases)")
    print(f"trainer.validate() (s), per round: {' '.join(f'{t:.2f}' for t in t_val)}")
    print(f"final_evaluation (s), per round: {' '.join(f'{t:.2f}' for t in t_eval)}")
    print(
        f"final evaluation / validation: median {statistics.median(ratios):.3f} "
        f"(rounds: {' '.join(f'{r:.3f}' for r in ratios)}); target <= 1.25"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", action="store_true", help="time final_evaluation against Trainer.validate()")
    parser.add_argument("--checkpoint", help="--job: weights to load (a .pt of a camvid run)")
    parser.add_argument("--override", action="append", default=[], help="--job: train.py override (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tolerance", type=float, default=1.0, help="NSD tolerance in pixels")
    parser.add_argument("--pred", choices=("perturbed", "model"), default="perturbed")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for the forward (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.job:
        bench_job(args.rounds, args.checkpoint, args.override)
        return
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    masks, num_classes, ignore_index, source = load_masks(rng)
    model = build_model(
        "unet", classes=num_classes, in_channels=3, encoder_name="tu-regnetx_002", encoder_weights=None,
        decoder_channels=[128, 64, 32, 16, 16],
    ).eval()  # fmt: skip
    images = torch.randn(len(masks), 3, PADDED_HEIGHT, WIDTH)
    batches = [slice(s, s + args.batch) for s in range(0, len(masks), args.batch)]

    def forward() -> list[torch.Tensor]:
        with torch.no_grad():
            return [model(images[b]).argmax(1)[:, :HEIGHT] for b in batches]

    if args.pred == "model":
        preds = torch.cat(forward()).numpy()
    else:
        preds = perturb(masks, num_classes, rng)

    def metrics() -> list[dict]:
        rows = []
        for b in batches:
            rows += per_case_rows(
                preds[b], masks[b], mode="multiclass", num_classes=num_classes, ignore_index=ignore_index,
                nsd_tolerance=args.tolerance, case_ids=[str(i) for i in range(b.start, min(b.stop, len(masks)))],
            )  # fmt: skip
        return rows

    print(f"data: {source}; predictions: {args.pred}; batch {args.batch}; torch threads {torch.get_num_threads()}")
    t_fwd, t_met, ratios, rows = side_by_side(forward, metrics, args.rounds)
    summary = aggregate_cases(rows)["mean"]
    print(f"rows: {len(rows)}; mean dice {summary['dice']['mean']:.3f}, hd95 {summary['hd95']['mean']:.2f} px, "
          f"nsd {summary['nsd']['mean']:.3f}")  # fmt: skip
    print(f"forward pass (s), per round: {' '.join(f'{t:.2f}' for t in t_fwd)}")
    print(f"per-case metrics (s), per round: {' '.join(f'{t:.2f}' for t in t_met)}")
    print(f"metrics / forward: median {statistics.median(ratios):.3f} (rounds: {' '.join(f'{r:.3f}' for r in ratios)})")


if __name__ == "__main__":
    main()
