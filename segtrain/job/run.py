"""One training job from a plain config: build the objects, train, evaluate the selected checkpoint.

    result = run_job(config, output_dir, run_info)   # config: the resolved config as plain values

The CLI (segtrain/cli.py) and the benchmarks call the same ``build_job``; nothing here imports Hydra.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segtrain.build import (
    build_datasets,
    build_eval_loader,
    build_loaders,
    build_split,
    resolve_test_split,
    trainer_config,
)
from segtrain.config_checks import check_config
from segtrain.job.devices import sweep_device
from segtrain.job.process import configure_process, seed_everything
from segtrain.job.signals import PreemptionSignals, signal_number

log = logging.getLogger("segtrain")


@dataclass
class Job:
    """What ``build_job`` made: the trainer (model, loss, optimizer, loaders, metrics inside), the end-of-job
    evaluation's splits (``{"val": (split, data set), "test": ...}``), the metrics' NSD tolerance, and the
    process's place in a DDP group."""

    trainer: Any
    final_splits: dict[str, tuple[str, Any]]
    nsd_tolerance: float
    run_dir: Path
    rank: int
    world_size: int
    device_lease: Any = None  # a sweep job's GPU (segtrain.job.devices), held while the job lives


def build_job(
    config: dict[str, Any],
    output_dir: str | Path,
    run_info: dict[str, Any],
    *,
    process_settings: bool = True,
    sweep_dir: str | Path | None = None,
) -> Job:
    """Check ``config``, apply the process settings (``process_settings=False``: leave threads and the
    allocator as they are, for a benchmark's own process), seed, and build every object of the job. Under DDP
    every rank works in rank 0's ``output_dir`` (resume reads its last.pt); only rank 0 writes there. A job of
    a multirun (``sweep_dir``) on a machine with several GPUs leases one of its own (``job.devices``)."""
    import torch

    from segtrain.config_checks import check_metrics_config
    from segtrain.data import TargetMaps, dataset_class_frequencies, map_names
    from segtrain.engine import Trainer
    from segtrain.engine.distributed import broadcast_object, init_distributed
    from segtrain.losses import build_loss
    from segtrain.metrics import SegMetrics
    from segtrain.models import build_model
    from segtrain.optim import build_optimizer, build_scheduler

    recorded = copy.deepcopy(config)  # metrics.json's config, as resolved (the builders below read copies)
    check_config(config)
    tcfg = trainer_config(config["trainer"])
    for name in tcfg.preempt_signals:  # a misspelt signal stops here, before the data sets are built
        signal_number(name)
    if process_settings:
        configure_process(tcfg)
    rank, world_size, local_rank = init_distributed()
    run_dir = Path(broadcast_object(str(output_dir)))
    lease = None
    if world_size > 1 and torch.cuda.is_available() and tcfg.device in ("auto", "cuda"):
        tcfg.device = f"cuda:{local_rank}"
    else:
        tcfg.device, lease = sweep_device(tcfg.device, sweep_dir)
    seed = int(config["seed"])
    seed_everything(seed, tcfg.deterministic)
    nsd_tolerance = check_metrics_config(config.get("metrics"))
    train_set, val_set = build_datasets(config["dataset"])
    ds = train_set
    # the end-of-job evaluation's splits, built now so that a missing held-out split stops the job before training
    final_splits = {"val": ("val", val_set)}
    test_split, why = resolve_test_split(config["dataset"])
    if test_split is not None:
        final_splits["test"] = (test_split, build_split(config["dataset"], test_split))
    log.info("end-of-job evaluation on val%s (%s)", f" and {test_split}" if test_split else "", why)
    model_cfg = dict(config["model"])
    model = build_model(model_cfg.pop("name"), **model_cfg)
    loss_cfg = dict(config["loss"])
    if loss_cfg.get("frequencies") == "dataset":  # class weights from the training split's pixel counts
        loss_cfg["frequencies"] = dataset_class_frequencies(ds)
        log.info("loss frequencies from the training split: %s", loss_cfg["frequencies"])
    loss_fn = build_loss(**loss_cfg)
    maps = map_names(loss_fn.aux_inputs)
    if maps:  # boundary, skeleton_recall, hausdorff_dt: target maps made in the loader's workers
        train_set, val_set = TargetMaps(train_set, maps), TargetMaps(val_set, maps)
    train_loader, val_loader = build_loaders(config["dataset"], train_set, val_set, seed, rank, world_size)
    opt_cfg = dict(config["optimizer"])
    optimizer = build_optimizer(opt_cfg.pop("name"), model.parameters(), **opt_cfg)
    sched_cfg = dict(config["scheduler"])
    sched_name = sched_cfg.pop("name")
    metrics = SegMetrics(ds.num_classes, ds.mode, ds.ignore_index, ds.class_names)
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
        config_dict=recorded,
        tensorboard=bool((config.get("logger") or {}).get("tensorboard", True)),
        rank=rank,
        world_size=world_size,
    )
    return Job(trainer, final_splits, nsd_tolerance, run_dir, rank, world_size, lease)


def run_job(
    config: dict[str, Any], output_dir: str | Path, run_info: dict[str, Any], sweep_dir: str | Path | None = None
) -> dict[str, Any]:
    """Build the job, train, and evaluate the selected checkpoint case by case (rank 0); returns the
    metrics.json content. ``sweep_dir``: the multirun's directory, where its jobs lease GPUs."""
    job = build_job(config, output_dir, run_info, sweep_dir=sweep_dir)
    try:
        return _train_and_evaluate(job, config)
    finally:  # joblib's workers run job after job: the GPU goes back now, not when the worker exits
        if job.device_lease is not None:
            job.device_lease.release()


def _train_and_evaluate(job: Job, config: dict[str, Any]) -> dict[str, Any]:
    import torch

    from segtrain.engine.records import write_json
    from segtrain.job.final_eval import final_evaluation

    trainer = job.trainer
    tcfg = trainer.cfg
    try:
        # a preemption signal stops the loop after an optimizer step, with last.pt at that position
        with PreemptionSignals(tcfg.preempt_signals) as signals:
            result = trainer.fit(until_epoch=tcfg.stop_at_epoch, should_stop=signals.received)
    finally:
        if job.world_size > 1:
            torch.distributed.destroy_process_group()
    if trainer.preempted_at is not None:  # metrics.json says "preempted"; a re-run resumes from last.pt
        signals.hand_over()
    if job.rank != 0 or not result:  # under DDP rank 0 alone evaluates, on the whole of each split
        return result
    # stopped at trainer.stop_at_epoch (a successive-halving rung): paused, and a later run continues; else
    # "evaluating" until the end-of-job evaluation is on disk, so that a job killed during it is redone
    paused = trainer.epoch < tcfg.max_epochs and not trainer.stopped_early
    if paused:
        log.info("paused after epoch %d of %d (trainer.stop_at_epoch)", trainer.epoch, tcfg.max_epochs)
    result = {**result, "status": "paused" if paused else "evaluating"}
    write_json(job.run_dir / "metrics.json", result)
    # one process, no extra loss inputs: the trainer's val loader (workers already running) is the same loader
    val_loader = trainer.val_loader
    same = job.world_size == 1 and val_loader.dataset is job.final_splits["val"][1]
    reuse = {"val": val_loader} if same else {}
    loaders = {
        k: reuse.get(k) or build_eval_loader(config["dataset"], data) for k, (_, data) in job.final_splits.items()
    }
    return final_evaluation(trainer, result, job.final_splits, loaders, job.nsd_tolerance, job.run_dir)
