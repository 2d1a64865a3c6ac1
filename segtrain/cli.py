"""The Hydra app behind ``python train.py``: config -> objects -> trainer. The only module importing hydra."""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from segtrain.build import (
    build_datasets,
    build_eval_loader,
    build_loaders,
    build_split,
    check_config,
    resolve_test_split,
    trainer_config,
)

# torch, smp and the rest load inside the functions that need them, so that `python train.py --help`
# and config errors answer in a second instead of after ~10 s of imports (smp pulls in timm/torchvision).
log = logging.getLogger("segtrain")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT_ROOT / "configs"


def _default_data_dir() -> str:
    """The data sets' root: ``$SEGTRAIN_DATA``, else ``<repo>/data`` (``paths.data_dir`` overrides both)."""
    return os.environ.get("SEGTRAIN_DATA") or str(PROJECT_ROOT / "data")


for _name, _fn in {"project_root": lambda: str(PROJECT_ROOT), "default_data_dir": _default_data_dir}.items():
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def configure_process(tcfg: Any) -> None:
    """Process-wide settings of a training job (``tcfg``: its TrainerConfig), before anything large is
    allocated and before loader workers fork: torch's thread count and glibc's reuse of freed memory."""
    import torch

    from segtrain.cpu import keep_freed_memory

    if tcfg.num_threads:  # parallel sweep jobs: cores / jobs each (docs/sweeps.md)
        torch.set_num_threads(int(tcfg.num_threads))
    if tcfg.keep_freed_memory:
        log.info("memory: %s (trainer.keep_freed_memory)", keep_freed_memory())


def train(cfg: DictConfig) -> dict[str, Any]:
    """Build everything from ``cfg``, train, and evaluate the selected checkpoint case by case (rank 0);
    returns the metrics.json content."""
    import torch

    from segtrain.config_schema import check_metrics_config
    from segtrain.data import TargetMaps, dataset_class_frequencies, map_names
    from segtrain.engine import Trainer
    from segtrain.engine.distributed import broadcast_object, init_distributed
    from segtrain.engine.final_eval import final_evaluation
    from segtrain.losses import build_loss
    from segtrain.metrics import SegMetrics
    from segtrain.models import build_model
    from segtrain.optim import build_optimizer, build_scheduler

    plain = OmegaConf.to_container(cfg, resolve=True)
    check_config(plain)
    tcfg = trainer_config(plain["trainer"])
    configure_process(tcfg)
    rank, world_size, local_rank = init_distributed()
    # every rank works in rank 0's run directory (resume reads its last.pt); only rank 0 writes there
    run_dir = Path(broadcast_object(HydraConfig.get().runtime.output_dir))
    if world_size > 1 and torch.cuda.is_available() and tcfg.device in ("auto", "cuda"):
        tcfg.device = f"cuda:{local_rank}"
    seed_everything(int(cfg.seed), tcfg.deterministic)
    nsd_tolerance = check_metrics_config(plain.get("metrics"))
    train_set, val_set = build_datasets(plain["dataset"])
    ds = train_set
    # the end-of-job evaluation's splits, built now so that a missing held-out split stops the job before training
    final_splits = {"val": ("val", val_set)}
    test_split, why = resolve_test_split(plain["dataset"])
    if test_split is not None:
        final_splits["test"] = (test_split, build_split(plain["dataset"], test_split))
    log.info("end-of-job evaluation on val%s (%s)", f" and {test_split}" if test_split else "", why)
    model_cfg = dict(plain["model"])
    model = build_model(model_cfg.pop("name"), **model_cfg)
    loss_cfg = dict(plain["loss"])
    if loss_cfg.get("frequencies") == "dataset":  # class weights from the training split's pixel counts
        loss_cfg["frequencies"] = dataset_class_frequencies(ds)
        log.info("loss frequencies from the training split: %s", loss_cfg["frequencies"])
    loss_fn = build_loss(**loss_cfg)
    maps = map_names(loss_fn.aux_inputs)
    if maps:  # boundary, skeleton_recall, hausdorff_dt: target maps made in the loader's workers
        train_set, val_set = TargetMaps(train_set, maps), TargetMaps(val_set, maps)
    train_loader, val_loader = build_loaders(plain["dataset"], train_set, val_set, int(cfg.seed), rank, world_size)
    opt_cfg = dict(plain["optimizer"])
    optimizer = build_optimizer(opt_cfg.pop("name"), model.parameters(), **opt_cfg)
    sched_cfg = dict(plain["scheduler"])
    sched_name = sched_cfg.pop("name")
    metrics = SegMetrics(ds.num_classes, ds.mode, ds.ignore_index, ds.class_names)
    run_info = {
        "loss": cfg.loss.name,
        "model": cfg.model.name,
        "encoder": cfg.model.get("encoder_name"),
        "dataset": cfg.dataset.name,
        "seed": int(cfg.seed),
    }
    # what a sweep varies (dataset.foreground_fraction, loss.alpha, ...) shows in TensorBoard's HParams view
    hydra_cfg = HydraConfig.get()
    skip = set(hydra_cfg.job.config.override_dirname.exclude_keys)
    for item in hydra_cfg.overrides.task:
        key = item.lstrip("+~").partition("=")[0]
        value = OmegaConf.select(cfg, key, default=None)
        if key not in run_info and key not in skip and value is not None and not OmegaConf.is_config(value):
            run_info[key] = value
    trainer = Trainer(
        tcfg,
        model,
        loss_fn,
        optimizer,
        lambda opt, total: build_scheduler(sched_name, opt, total, **sched_cfg),
        train_loader,
        val_loader,
        metrics,
        run_dir,
        run_info,
        config_dict=OmegaConf.to_container(cfg, resolve=True),
        tensorboard=bool(cfg.logger.get("tensorboard", True)),
        rank=rank,
        world_size=world_size,
    )
    try:
        result = trainer.fit(status_when_done="evaluating")
    finally:
        if world_size > 1:
            torch.distributed.destroy_process_group()
    if rank != 0 or not result:  # under DDP rank 0 alone evaluates, on the whole of each split
        return result
    # one process, no extra loss inputs: the trainer's val loader (workers already running) is the same loader
    reuse = {"val": val_loader} if world_size == 1 and val_loader.dataset is final_splits["val"][1] else {}
    loaders = {k: reuse.get(k) or build_eval_loader(plain["dataset"], data) for k, (_, data) in final_splits.items()}
    return final_evaluation(trainer, result, final_splits, loaders, nsd_tolerance, run_dir)


def _fmt(v: float | None) -> str:
    return "nan" if v is None or v != v else f"{v:.4f}"


def final_summary(result: dict[str, Any], run_dir: Path) -> str:
    """The table printed at the end of a run: best epoch, mean and per-class Dice/IoU, where the files are."""
    best, per_class = result.get("best", {}), result.get("per_class", {})
    lines = [
        f"best {result['monitor']} at epoch {best.get('epoch')}/{result.get('epochs_completed')}: "
        f"val/dice {_fmt(best.get('val/dice'))}  val/iou {_fmt(best.get('val/iou'))}  "
        f"per-image dice {_fmt(best.get('val/dice_per_image'))}",
        f"  {'class':<16} {'dice':>7} {'iou':>7}",
    ]
    for name, dice in per_class.get("dice", {}).items():
        lines.append(f"  {name:<16} {_fmt(dice):>7} {_fmt(per_class['iou'].get(name)):>7}")
    selected = result.get("selected")
    if selected:
        lines.append(f"{selected['checkpoint']} checkpoint (epoch {selected['epoch']}), case means over classes:")
        for key in ("val", "test"):
            if key in result:
                r = result[key]
                lines.append(
                    f"  {r['split']:<6} {r['num_cases']} cases  dice {_fmt(r['dice'])}  iou {_fmt(r['iou'])}  "
                    f"hd95 {_fmt(r['hd95'])} px  nsd@{result['nsd_tolerance']:g}px {_fmt(r['nsd'])}"
                )
    threshold = result.get("threshold")
    if isinstance(threshold, dict) and threshold.get("tuned_on"):
        at_half, tuned = threshold["dice_at_0.5"], threshold["dice_at_tuned"]
        changes = ", ".join(f"{k} {at_half[k]} -> {tuned[k]}" for k in tuned)
        lines.append(
            f"threshold {threshold['value']} (tuned on {threshold['tuned_on']}); pooled dice at 0.5 -> it: {changes}"
        )
    lines.append(f"{result.get('timing', {}).get('total_s')} s; run directory {run_dir}")
    return "\n".join(lines)


def _completed_result(run_dir: Path, cfg: DictConfig) -> dict[str, Any] | None:
    """metrics.json of a finished job of the same experiment in ``run_dir`` (re-running a sweep into its
    own directory skips the jobs that completed; unfinished ones resume from last.pt).

    The whole resolved config is compared with the one the job stored, except keys that do not change
    results (segtrain/run_config.py); a difference is an error naming the keys, never stale metrics.
    A larger ``trainer.max_epochs`` is not a difference: the job continues from its last.pt.
    """
    from segtrain.run_config import config_differences, describe_differences

    path = run_dir / "metrics.json"
    if not cfg.trainer.get("skip_completed", True) or not path.exists():
        return None
    try:
        previous = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if previous.get("status") != "completed":
        return None
    stored = previous.get("config")
    if not isinstance(stored, dict):
        raise ValueError(
            f"{path} records a completed job but not its config, so it cannot tell whether this is the same "
            "experiment; train into another directory (hydra.run.dir=... / hydra.sweep.dir=...) or remove it"
        )
    diffs = config_differences(stored, OmegaConf.to_container(cfg, resolve=True), ignore=["trainer.max_epochs"])
    if diffs:
        raise ValueError(
            f"{run_dir} holds a completed job of another configuration: {describe_differences(diffs)}. "
            "Train into another directory (hydra.run.dir=... / hydra.sweep.dir=...) or remove that one"
        )
    if previous.get("max_epochs") != cfg.trainer.max_epochs:
        return None
    return previous


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Entry point; returns the best monitored value so Hydra sweepers (Optuna) can optimise it."""
    from segtrain.config_schema import check_config_types

    # a value of the wrong type (optimizer.lr=abc) stops here with its key named
    check_config_types(
        *(OmegaConf.to_container(cfg[g], resolve=True) for g in ("trainer", "optimizer", "scheduler")),
        metrics=OmegaConf.to_container(cfg.metrics, resolve=True) if "metrics" in cfg else None,
    )
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    done = _completed_result(run_dir, cfg) if main_rank else None
    if done is not None:
        log.info("%s says this job already completed; skipping it", run_dir / "metrics.json")
        return done.get("best", {}).get(cfg.trainer.monitor)
    try:
        result = train(cfg)
    except Exception as err:
        if not main_rank:
            raise
        from segtrain.engine.records import write_json

        write_json(
            run_dir / "metrics.json",
            {
                "status": "failed",
                "error": f"{type(err).__name__}: {err}".splitlines()[0][:500],
                "loss": cfg.loss.get("name"),
                "model": cfg.model.get("name"),
                "dataset": cfg.dataset.get("name"),
                "seed": cfg.get("seed"),
                "traceback": traceback.format_exc(limit=8),
            },
        )
        raise
    best = result.get("best", {}).get(cfg.trainer.monitor)
    if result and main_rank:
        log.info("\n%s", final_summary(result, run_dir))
    return best


def main() -> None:
    """``python train.py ...``; under torchrun, ranks > 0 leave Hydra's run directory and log to rank 0."""
    if int(os.environ.get("RANK", "0")) > 0 and "-m" not in sys.argv and "--multirun" not in sys.argv:
        scratch = tempfile.mkdtemp(prefix=f"segtrain-rank{os.environ['RANK']}-")
        sys.argv += [f"hydra.run.dir={scratch}", "hydra.output_subdir=null", "hydra/job_logging=disabled"]
    hydra_main()


if __name__ == "__main__":
    main()
