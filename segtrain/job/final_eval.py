"""The end of a job: the selected checkpoint evaluated case by case (per_case.csv, metrics.json's ``selected``,
``val``, ``test``, ``threshold``), after ``Trainer.fit``. The CLI calls it on rank 0; plain Python values in."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("segtrain")
# job.tune_threshold: val's logits (float32) and masks up to this size are kept from the pass that tunes the
# threshold for the pass that scores val with it; a larger val split is predicted twice (the same numbers)
KEEP_LOGITS_BYTES = 1 << 30


def final_evaluation(
    trainer: Any,
    result: dict[str, Any],
    splits: dict[str, tuple[str, Any]],
    loaders: dict[str, Any],
    nsd_tolerance: float,
    run_dir: Path,
    select: str = "last",
    tune_threshold: bool = False,
) -> dict[str, Any]:
    """The selected checkpoint (``select``, job.select: the last epoch's weights, or best.pt's) evaluated case
    by case on ``splits`` (``{"val": (split, data set), "test": (...)}``) -> per_case.csv; then metrics.json
    with the aggregates and status ``completed`` (only now: a job killed before this redoes it on re-run).

    Binary and multilabel jobs with ``tune_threshold`` (job.tune_threshold) first pick each channel's
    Dice-best threshold on val (``segtrain.metrics.threshold``; that pass keeps val's logits, ``LogitCache``, so
    that val is predicted once), evaluate both splits with it, store it in the selected checkpoint and write
    metrics.json ``threshold``; without it they cut at 0.5, which ``threshold`` says.
    ``trainer.limit_val_batches`` limits these passes too, so that a debug run stays quick. ``loaders`` holds
    an unshuffled loader per key of ``splits``.
    """
    from segtrain.checkpoint import annotate_checkpoint
    from segtrain.engine.records import write_json
    from segtrain.inference.evaluation import LogitCache, case_summary, evaluate_cases, threshold_sweep
    from segtrain.metrics.empty_rules import EMPTY_RULES
    from segtrain.metrics.per_case import write_per_case_csv
    from segtrain.metrics.threshold import DEFAULT, GRID_SPEC, ThresholdSweep, choose_thresholds
    from segtrain.modes import BINARY, MULTICLASS

    start = time.perf_counter()
    # a job paused at job.stop_at_epoch (a successive-halving rung) is scored on val alone, stays paused,
    # and is evaluated again (per_case.csv rewritten) each time it stops
    paused = result.get("status") == "paused"
    if paused:
        splits = {"val": splits["val"]}
    epoch = trainer.load_weights(run_dir / "checkpoints" / "best.pt") if select == "best" else trainer.epoch
    val_data = splits["val"][1]
    mode, device, limit = val_data.mode, trainer.device, trainer.cfg.limit_val_batches
    channels = 1 if mode == BINARY else val_data.num_classes
    thresholds: list[float] | None = None
    sweeps: dict[str, ThresholdSweep] = {}
    kept: LogitCache | None = None
    if mode != MULTICLASS and tune_threshold:
        # val is predicted once: the pass that tunes the threshold keeps its logits for the pass that scores
        kept = LogitCache(KEEP_LOGITS_BYTES)
        sweeps["val"] = threshold_sweep(
            trainer.model, loaders["val"], mode=mode, num_channels=channels, ignore_index=val_data.ignore_index,
            device=device, amp_dtype=trainer.amp_dtype, limit_batches=limit, keep=kept,
        )  # fmt: skip
        thresholds = choose_thresholds(sweeps["val"].dice(), sweeps["val"].grid, sweeps["val"].positives())
        if not kept.complete:
            log.info("val's logits exceed %d MiB: predicting val again to score it", KEEP_LOGITS_BYTES >> 20)
    rows: list[dict[str, Any]] = []
    sections: dict[str, Any] = {}
    for key, (split, data) in splits.items():
        if thresholds is not None and key not in sweeps:  # the held-out split's Dice at 0.5 and at the tuned cut
            sweeps[key] = ThresholdSweep(mode, channels, data.ignore_index)
        split_rows = evaluate_cases(
            trainer.model, loaders[key], mode=data.mode, num_classes=data.num_classes,
            class_names=data.class_names, ignore_index=data.ignore_index, nsd_tolerance=nsd_tolerance,
            split=split, device=device, amp_dtype=trainer.amp_dtype, limit_batches=limit, threshold=thresholds,
            on_logits=(lambda lg, y, _ids, s=sweeps[key]: s.update(lg, y)) if key in sweeps and key != "val" else None,
            batches=kept.batches() if key == "val" and kept is not None and kept.complete else None,
        )  # fmt: skip
        rows += split_rows
        sections[key] = case_summary(split_rows, split)
    path = write_per_case_csv(run_dir / "per_case.csv", rows)
    extra: dict[str, Any] = {}
    if mode != MULTICLASS:
        record = threshold_record(thresholds or [DEFAULT] * channels, mode, val_data.class_names, sweeps, GRID_SPEC)
        extra["threshold"] = record
        if thresholds is not None:
            log.info(
                "threshold tuned on val: %s (val Dice at 0.5 %s -> %s at the tuned threshold)",
                record["value"], record["dice_at_0.5"]["val"], record["dice_at_tuned"]["val"],
            )  # fmt: skip
            ckpt = run_dir / "checkpoints" / ("best.pt" if select == "best" else "last.pt")
            if trainer.cfg.checkpoint and ckpt.is_file():
                held = annotate_checkpoint(ckpt, {"threshold": {**record, "epoch": epoch}})
                log.info("stored the threshold in %s", ", ".join(p.name for p in held))
    result = {
        **result,
        "status": "paused" if paused else "completed",
        "selected": {"checkpoint": select, "epoch": epoch},
        **extra,
        **sections,
        "empty_rules": EMPTY_RULES,
        "nsd_tolerance": nsd_tolerance,
    }
    result["timing"] = {**result.get("timing", {}), "final_eval_s": round(time.perf_counter() - start, 2)}
    write_json(run_dir / "metrics.json", result)
    log.info("wrote %s (%d rows) in %.1f s", path, len(rows), time.perf_counter() - start)
    return result


def threshold_record(
    thresholds: list[float], mode: str, class_names: Any, sweeps: dict[str, Any], grid_spec: Any
) -> dict[str, Any]:
    """metrics.json ``threshold``: ``value`` (a float in binary mode, one per channel in multilabel mode),
    ``tuned_on`` ("val", or None for the fixed 0.5); when tuned, the ``grid`` (start, stop, step),
    ``channels`` and each split's pooled Dice ``dice_at_0.5`` / ``dice_at_tuned`` (same shape as value)."""
    from segtrain.modes import BINARY

    def shaped(values: list[float]) -> Any:
        return values[0] if mode == BINARY else values

    record: dict[str, Any] = {"value": shaped(thresholds), "tuned_on": "val" if sweeps else None}
    if sweeps:
        half = [0.5] * len(thresholds)
        record["grid"] = list(grid_spec)
        record["channels"] = list(class_names)[-len(thresholds) :] if class_names else None
        record["dice_at_0.5"] = {key: shaped(s.dice_at(half)) for key, s in sweeps.items()}
        record["dice_at_tuned"] = {key: shaped(s.dice_at(thresholds)) for key, s in sweeps.items()}
    return record
