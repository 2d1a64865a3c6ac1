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
    job_config,
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
    settings: Any  # the job section (segtrain.schemas.JobConfig)
    final_splits: dict[str, tuple[str, Any]]
    nsd_tolerance: float
    run_dir: Path
    rank: int
    world_size: int
    device_lease: Any = None  # a sweep job's GPU (segtrain.job.devices), held while the job lives
    trackers: Any = None  # segtrain.trackers.Trackers (rank 0's; empty on the other ranks)


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
    a multirun (``sweep_dir``) on a machine with several GPUs leases one of its own (``job.devices``). The
    ``logger`` section's trackers (segtrain.trackers) are built here, on rank 0: a tracker whose package is
    missing stops the job before training."""
    import torch

    from segtrain.config_checks import check_metrics_config
    from segtrain.data import TargetMaps, dataset_class_frequencies, map_names
    from segtrain.engine import Trainer
    from segtrain.engine.distributed import broadcast_object, init_distributed
    from segtrain.losses import build_loss
    from segtrain.losses.search import loss_kwargs
    from segtrain.metrics import SegMetrics
    from segtrain.models import build_model
    from segtrain.optim import build_optimizer, build_scheduler
    from segtrain.trackers import Trackers, build_trackers, sweep_name

    recorded = copy.deepcopy(config)  # metrics.json's config, as resolved (the builders below read copies)
    check_config(config)
    tcfg = trainer_config(config["trainer"])
    jcfg = job_config(config.get("job"))
    for name in jcfg.preempt_signals:  # a misspelt signal stops here, before the data sets are built
        signal_number(name)
    if process_settings:
        configure_process(jcfg)
    rank, world_size, local_rank = init_distributed()
    run_dir = Path(broadcast_object(str(output_dir)))
    # a run is named after its job directory, a sweep's runs are grouped under the sweep's folder name; built
    # first and on every rank (nothing opens before start), so that a missing package stops all ranks at once
    sweep = sweep_name(sweep_dir, (config.get("paths") or {}).get("output_dir"))
    trackers = build_trackers(config.get("logger"), run_dir, run_dir.name, sweep)
    if rank != 0:  # rank 0 alone logs
        trackers = Trackers()
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
    loss_cfg = loss_kwargs(config["loss"])  # without its search space (experiment=fair_loss_sweep reads that)
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
        trackers=trackers,
        rank=rank,
        world_size=world_size,
    )
    return Job(trainer, jcfg, final_splits, nsd_tolerance, run_dir, rank, world_size, lease, trackers)


def run_job(
    config: dict[str, Any], output_dir: str | Path, run_info: dict[str, Any], sweep_dir: str | Path | None = None
) -> dict[str, Any]:
    """Build the job, train, and evaluate the selected checkpoint case by case (rank 0); returns the
    metrics.json content. ``sweep_dir``: the multirun's directory, where its jobs lease GPUs.

    The trackers' runs end here: after the evaluation, metrics.json, per_case.csv (and the selected checkpoint,
    where a tracker's ``log_checkpoint`` asks) are logged as artifacts, each run ends with the job's status,
    and metrics.json ``tracking`` says where each run is or what a failing tracker did not log."""
    job = build_job(config, output_dir, run_info, sweep_dir=sweep_dir)
    try:
        result = _train_and_evaluate(job, config)
    except BaseException:
        if job.trainer.preempted_at is None:  # a preempted job ended its runs as preempted, to be continued
            job.trackers.finish("failed")
        raise
    finally:  # joblib's workers run job after job: the GPU goes back now, not when the worker exits
        if job.device_lease is not None:
            job.device_lease.release()
    if job.rank == 0 and result and job.trackers:
        result = _finish_tracking(job, result)
    return result


def _finish_tracking(job: Job, result: dict[str, Any]) -> dict[str, Any]:
    from segtrain.engine.records import write_json

    run_dir = job.run_dir
    selected = (result.get("selected") or {}).get("checkpoint")
    checkpoint = run_dir / "checkpoints" / f"{selected}.pt" if selected else None
    job.trackers.log_artifacts([run_dir / "metrics.json", run_dir / "per_case.csv"], checkpoint)
    status = "paused" if result.get("status") == "paused" else "completed"
    result = {**result, "tracking": job.trackers.finish(status)}
    write_json(run_dir / "metrics.json", result)
    return result


def _train_and_evaluate(job: Job, config: dict[str, Any]) -> dict[str, Any]:
    import torch

    from segtrain.engine.records import write_json
    from segtrain.job.final_eval import final_evaluation

    trainer = job.trainer
    tcfg, jcfg = trainer.cfg, job.settings
    try:
        # a preemption signal stops the loop after an optimizer step, with last.pt at that position
        with PreemptionSignals(jcfg.preempt_signals) as signals:
            result = trainer.fit(until_epoch=jcfg.stop_at_epoch, should_stop=signals.received)
    finally:
        if job.world_size > 1:
            torch.distributed.destroy_process_group()
    if trainer.preempted_at is not None:  # metrics.json says "preempted"; a re-run resumes from last.pt
        if job.rank == 0 and job.trackers:  # before hand_over, which ends the process: the re-run continues them
            job.trackers.finish("preempted")
        signals.hand_over()
    if job.rank != 0 or not result:  # under DDP rank 0 alone evaluates, on the whole of each split
        return result
    # stopped at job.stop_at_epoch (a successive-halving rung): paused, and a later run continues; else
    # "evaluating" until the end-of-job evaluation is on disk, so that a job killed during it is redone
    paused = trainer.epoch < tcfg.max_epochs and not trainer.stopped_early
    if paused:
        log.info("paused after epoch %d of %d (job.stop_at_epoch)", trainer.epoch, tcfg.max_epochs)
    result = {**result, "status": "paused" if paused else "evaluating"}
    write_json(job.run_dir / "metrics.json", result)
    # one process, no extra loss inputs: the trainer's val loader (workers already running) is the same loader
    val_loader = trainer.val_loader
    same = job.world_size == 1 and val_loader.dataset is job.final_splits["val"][1]
    reuse = {"val": val_loader} if same else {}
    loaders = {
        k: reuse.get(k) or build_eval_loader(config["dataset"], data) for k, (_, data) in job.final_splits.items()
    }
    return final_evaluation(
        trainer, result, job.final_splits, loaders, job.nsd_tolerance, job.run_dir, jcfg.select, jcfg.tune_threshold
    )
