"""Evaluate a checkpoint: Dice/IoU per class, the per-image Dice distribution and the per-case records
(Dice, IoU, HD95, NSD, clDice per image x class, as a training job writes them) on any split.

python scripts/evaluate.py checkpoint=outputs/runs/<date>/<run>            # its own data set, split=val
python scripts/evaluate.py checkpoint=<run>/checkpoints/best.pt split=test tta=true
python scripts/evaluate.py checkpoint=<run> dataset.length.val=32          # override a key of its data set
python scripts/evaluate.py checkpoint=<run> dataset=folder dataset.root=/data/mine dataset.num_classes=3
python scripts/evaluate.py checkpoint=<run> threshold=0.5                  # binary: ignore the tuned threshold

Keys (configs/eval.yaml): checkpoint, split, tta, window, overlap, blend, threshold, batch_size, num_workers, device,
histogram_bins, metrics.nsd_tolerance, output. Writes metrics.json (with the per-case aggregates under the
split's name), per_image.csv and per_case.csv to output (default <run dir>/eval_<split>).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from segtrain.tools.compose import compose, run_cli


def dataset_config(overrides: list[str], stored: dict[str, Any] | None) -> tuple[Any, dict[str, Any], bool]:
    """(eval config, dataset config as a plain dict, whether it is the checkpoint's own data set).

    Without ``dataset=<option>`` the data set is the checkpoint's stored one, and ``dataset.key=value``
    overrides apply to it; with it, Hydra composes that configs/dataset file with the overrides.
    """
    from omegaconf import OmegaConf

    picks_group = any(o.lstrip("+~").split("=", 1)[0] == "dataset" for o in overrides)
    own = [o for o in overrides if o.lstrip("+~").startswith("dataset.")] if not picks_group else []
    cfg = compose("eval", [o for o in overrides if o not in own])
    if picks_group:
        return cfg, OmegaConf.to_container(cfg.dataset, resolve=True), False
    if not stored:
        raise ValueError("the checkpoint's config has no 'dataset' section; pick one with dataset=<option>")
    merged = OmegaConf.merge(OmegaConf.create(stored), OmegaConf.from_dotlist([o.lstrip("+")[8:] for o in own]))
    return cfg, OmegaConf.to_container(merged, resolve=True), True


def main(argv: list[str] | None = None) -> int:
    overrides = list(sys.argv[1:] if argv is None else argv)

    from omegaconf import OmegaConf

    from segtrain.build import build_eval_loader, build_split
    from segtrain.checkpoint import load_checkpoint
    from segtrain.config_checks import check_metrics_config, check_model_fits_dataset
    from segtrain.engine.records import write_json
    from segtrain.engine.trainer import resolve_device
    from segtrain.inference import (
        case_summary,
        evaluate,
        model_from_state,
        resolve_checkpoint,
        resolve_threshold,
        run_dir_of,
        write_per_image_csv,
    )
    from segtrain.metrics.empty_rules import EMPTY_RULES
    from segtrain.metrics.per_case import write_per_case_csv
    from segtrain.modes import BINARY

    probe = compose("eval", [o for o in overrides if not o.lstrip("+~").startswith("dataset")])
    ckpt_path = resolve_checkpoint(probe.checkpoint)
    state = load_checkpoint(ckpt_path)
    device = resolve_device(str(probe.device))
    model, config = model_from_state(state, ckpt_path, device)
    cfg, ds, own = dataset_config(overrides, config.get("dataset"))
    nsd_tolerance = check_metrics_config(OmegaConf.to_container(cfg.metrics, resolve=True))

    name, split = ds["name"], str(cfg.split)
    model_cfg = config["model"]
    check_model_fits_dataset(
        model_cfg, ds, "the checkpoint's model needs a data set with the same classes and channels"
    )
    dataset = build_split(ds, split)
    loader = build_eval_loader(ds, dataset, cfg.batch_size, cfg.num_workers)

    channels = 1 if dataset.mode == BINARY else dataset.num_classes
    setting = OmegaConf.to_container(cfg.threshold) if OmegaConf.is_config(cfg.threshold) else cfg.threshold
    threshold, why = resolve_threshold(setting, state, dataset.mode, channels, ckpt_path)
    run_info = state.get("run_info") or {}
    print(
        f"checkpoint {ckpt_path} (epoch {state.get('epoch')}, {model_cfg['name']}/{model_cfg.get('encoder_name')}, "
        f"trained on {config.get('dataset', {}).get('name')})"
    )
    print(f"evaluating on '{name}' split '{split}': {len(dataset)} images, tta {'on' if cfg.tta else 'off'}, {device}")
    print(why)
    start = time.perf_counter()
    result = evaluate(
        model,
        loader,
        mode=dataset.mode,
        num_classes=dataset.num_classes,
        ignore_index=dataset.ignore_index,
        class_names=dataset.class_names,
        tta=bool(cfg.tta),
        device=device,
        window=cfg.window,
        overlap=float(cfg.overlap),
        blend=str(cfg.blend),
        bins=int(cfg.histogram_bins),
        nsd_tolerance=nsd_tolerance,
        split=split,
        threshold=threshold,
    )
    seconds = time.perf_counter() - start

    default_out = run_dir_of(ckpt_path) / (f"eval_{split}" if own else f"eval_{name}_{split}")
    out = Path(cfg.output) if cfg.output else default_out
    out.mkdir(parents=True, exist_ok=True)
    per_image = result.pop("per_image")
    per_case = result.pop("per_case")
    summary = {
        "checkpoint": str(ckpt_path),
        "epoch": state.get("epoch"),
        "run_info": run_info,
        "dataset": name,
        "split": split,
        **result,
        "threshold_source": why,
        split: case_summary(per_case, split),
        "empty_rules": EMPTY_RULES,
        "nsd_tolerance": nsd_tolerance,
        "device": str(device),
        "seconds": round(seconds, 2),
    }
    write_json(out / "metrics.json", summary)
    write_per_image_csv(out / "per_image.csv", per_image)
    write_per_case_csv(out / "per_case.csv", per_case)

    dist = result["per_image_dice"]
    print(
        f"dice {result['dice']:.4f}  iou {result['iou']:.4f}  per-image dice mean {dist['mean']:.4f} "
        f"(median {dist['median']:.4f}, p10 {dist['p10']:.4f}, p90 {dist['p90']:.4f}; "
        f"{dist['undefined']} image(s) without foreground)  ({seconds:.1f} s)"
    )
    width = max(len(c) for c in result["per_class"]["dice"])
    print(f"  {'class':<{width}}    dice     iou")
    for c, d in result["per_class"]["dice"].items():
        print(f"  {c:<{width}}  {d:6.4f}  {result['per_class']['iou'][c]:6.4f}")
    cases = summary[split]
    print(
        f"per case ({cases['num_cases']} cases, means over classes): dice {cases['dice']:.4f}  "
        f"hd95 {cases['hd95']:.2f} px  nsd@{nsd_tolerance:g}px {cases['nsd']:.4f}"
    )
    print(f"wrote {out / 'metrics.json'}, {out / 'per_image.csv'} and {out / 'per_case.csv'}")
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_cli(main, "evaluate.py", argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
