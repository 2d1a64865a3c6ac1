"""Does the input pipeline keep up with training? Loader images/s next to the training step's rate.

    python benchmarks/bench_data.py                       # isbi_em and camvid at their config's loader settings
    python benchmarks/bench_data.py --datasets camvid --steps 20 --workers 0 1 2

For each data set (train split, its default augmentation, batch size and loader settings):
  1. loader alone: images/s of iterating the DataLoader (decode + augment + collate, workers included);
  2. step alone: images/s of a training step (smp Unet resnet18, encoder_weights=None, forward +
     backward + AdamW step on this machine's device) on a fixed batch of the same shape;
  3. together: a training loop fed by the loader; data wait = time blocked in next(loader) as a
     fraction of the loop's time. Target: below 5%.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's segtrain
from segtrain.tools.compose import dataset_config  # noqa: E402


def _loader_rate(loader, batches: int) -> float:
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    n, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        n += batch["image"].shape[0]
    return n / (time.perf_counter() - start)


def _model_and_loss(mode: str, in_channels: int, classes: int, ignore_index, device):
    import segmentation_models_pytorch as smp
    import torch

    from segtrain.modes import MULTICLASS

    model = smp.Unet("resnet18", encoder_weights=None, in_channels=in_channels, classes=classes).to(device)
    if mode == MULTICLASS:
        ce = torch.nn.CrossEntropyLoss(ignore_index=-100 if ignore_index is None else ignore_index)

        def loss_fn(logits, mask):
            return ce(logits, mask)
    else:
        bce = torch.nn.BCEWithLogitsLoss()

        def loss_fn(logits, mask):
            target = mask.float().unsqueeze(1) if mask.ndim == 3 else mask.float()
            return bce(logits, target)

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return model, loss_fn, opt


def _step(model, loss_fn, opt, batch, device) -> None:
    image = batch["image"].to(device, non_blocking=True)
    mask = batch["mask"].to(device, non_blocking=True)
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(image), mask)
    loss.backward()
    opt.step()
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize()


def bench(name_override: str, steps: int, workers: int | None, device) -> dict:
    from segtrain.data import build_dataset, build_loader

    name, kwargs, loader_cfg = dataset_config([f"dataset={name_override}"])
    if workers is not None:
        loader_cfg = {**loader_cfg, "num_workers": workers}
    dataset = build_dataset(name, split="train", **kwargs)
    batch_size = int(loader_cfg.get("batch_size", 8))
    loader = build_loader(
        dataset,
        batch_size=batch_size,
        num_workers=int(loader_cfg.get("num_workers", 0)),
        pin_memory=bool(loader_cfg.get("pin_memory", False)) and device.type == "cuda",
        persistent_workers=bool(loader_cfg.get("persistent_workers", False)),
        shuffle=True,
        drop_last=len(dataset) > batch_size,
    )
    load_rate = _loader_rate(loader, max(steps, 2 * len(loader)))

    model, loss_fn, opt = _model_and_loss(
        kwargs["mode"], kwargs["in_channels"], kwargs["num_classes"], kwargs.get("ignore_index"), device
    )
    fixed = next(iter(loader))
    _step(model, loss_fn, opt, fixed, device)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        _step(model, loss_fn, opt, fixed, device)
    step_time = (time.perf_counter() - start) / steps

    wait = total = 0.0
    done = 0
    it = iter(loader)
    next(it)
    loop_start = time.perf_counter()
    while done < steps:
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        wait += time.perf_counter() - t0
        _step(model, loss_fn, opt, batch, device)
        done += 1
    total = time.perf_counter() - loop_start
    shape = "x".join(str(s) for s in fixed["image"].shape)
    return {
        "dataset": name_override,
        "batch": shape,
        "workers": int(loader_cfg.get("num_workers", 0)),
        "loader_img_s": load_rate,
        "step_img_s": batch_size / step_time,
        "wait_fraction": wait / total,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["isbi_em", "camvid"])
    parser.add_argument("--steps", type=int, default=12, help="training steps timed per measurement")
    parser.add_argument("--workers", nargs="*", type=int, default=None, help="num_workers values to compare")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    import torch

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    print(f"device: {device}, torch threads: {torch.get_num_threads()}")
    header = (
        f"{'dataset':<10} {'batch (NxCxHxW)':<18} {'workers':>7} {'loader img/s':>12} "
        f"{'step img/s':>10} {'data wait':>9}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for ds in args.datasets:
        for w in args.workers or [None]:
            r = bench(ds, args.steps, w, device)
            worst = max(worst, r["wait_fraction"])
            print(
                f"{r['dataset']:<10} {r['batch']:<18} {r['workers']:>7} {r['loader_img_s']:>12.1f} "
                f"{r['step_img_s']:>10.1f} {100 * r['wait_fraction']:>8.1f}%"
            )
    print(f"target: data wait < 5% of step time -> {'met' if worst < 0.05 else 'NOT met'} (worst {100 * worst:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
