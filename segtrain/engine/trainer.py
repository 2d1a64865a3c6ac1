"""The training loop: one file, one loop, the step in plain sight (nanoGPT's shape).

    for each epoch:
        for each micro-batch: forward under autocast -> loss -> (scaled) backward
            at the end of each accumulation group: clip -> step -> lr step
        validate: confusion matrix on the device over the whole split -> Dice/IoU
        record: history.csv, the trackers (TensorBoard, MLflow, W&B), metrics.json; checkpoints last.pt (+ best.pt)
    after an optimizer step, mid-epoch: last.pt at that exact position every trainer.checkpoint_every_minutes
    (or _n_steps), and on a stop request (a preemption signal, on any rank): last.pt, metrics.json, return

No callbacks or hooks: what happens at each step is written out below. A non-finite loss raises, or with
trainer.on_nan=skip drops that micro-batch alone (the rest of its accumulation group still steps). Under
DDP, ranks decide to skip together, and gradients are all-reduced once per accumulation group (no_sync).
What shapes the loop (TrainerConfig, device, precision) is in config.py; the rest stays in this one file
(about 550 lines) on purpose: the loop, what a checkpoint holds and restores (``_state``/``resume_from``)
and what metrics.json says (``_summary``) all read and write the same trainer attributes, and splitting
them would spread one object's state over several modules.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from segtrain.checkpoint import CheckpointWriter, load_checkpoint, rng_state, set_rng_state
from segtrain.engine.config import TrainerConfig, resolve_device, resolve_precision
from segtrain.engine.distributed import any_rank, loss_value_and_finite_everywhere, sync_accumulated_gradients
from segtrain.engine.records import HistoryCSV, write_json
from segtrain.metrics import EMPTY_CLASS_POLICY, SegMetrics
from segtrain.modes import BINARY, MULTICLASS
from segtrain.overlays import highest_positive, overlay_grid
from segtrain.run_config import config_differences, describe_differences, resume_ignored_keys
from segtrain.trackers import Trackers

log = logging.getLogger("segtrain")


class NonFiniteLossError(FloatingPointError):
    pass


class Trainer:
    """Trains ``model`` with ``loss_fn`` and records everything under ``run_dir``.

    ``make_scheduler(optimizer, total_steps)`` builds the per-step schedule once the number of
    optimizer steps is known. ``run_info`` (loss, model, encoder, dataset, seed, ...) is copied into
    metrics.json and the trackers' run (TensorBoard's hparams entry). ``trackers`` (segtrain.trackers, built by
    the job layer for rank 0): the loop starts them and logs each epoch's scalars there; ending their runs is
    the job layer's, after the end-of-job evaluation. None: no tracker.
    """

    def __init__(
        self,
        cfg: TrainerConfig,
        model: nn.Module,
        loss_fn: nn.Module,
        optimizer: torch.optim.Optimizer,
        make_scheduler: Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler],
        train_loader: DataLoader,
        val_loader: DataLoader,
        metrics: SegMetrics,
        run_dir: str | Path,
        run_info: dict[str, Any] | None = None,
        config_dict: dict[str, Any] | None = None,
        rank: int = 0,
        world_size: int = 1,
        trackers: Trackers | None = None,
    ) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.is_main = rank == 0
        self.trackers = trackers if trackers is not None else Trackers()
        self.world_size = world_size
        self.model = model.to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if world_size > 1 and cfg.sync_batchnorm:
            if self.device.type != "cuda":
                raise ValueError("trainer.sync_batchnorm=true needs CUDA devices (torch's SyncBatchNorm); set it false")
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        # training goes through DDP (gradient all-reduce); validation uses the bare module
        self.train_forward = self.forward
        if world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_forward = DistributedDataParallel(self.forward, device_ids=ids)
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.steps_per_epoch = math.ceil(self._n_train_batches() / cfg.accumulate_grad_batches)
        self.scheduler = make_scheduler(optimizer, self.steps_per_epoch * cfg.max_epochs)
        self.metrics = metrics
        self.metrics.device = self.device
        self.metrics.reset()
        self.run_dir = Path(run_dir)
        self.run_info = dict(run_info or {})
        self.config_dict = config_dict or {}
        amp_dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(self.precision)
        self.amp_dtype = amp_dtype
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "16-mixed")
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.best: dict[str, Any] = {}
        self.last_row: dict[str, Any] = {}  # the latest epoch's history row (metrics.json "final")
        self.best_value: float | None = None
        self.stopped_early = False  # the last fit() ended on trainer.early_stopping_patience
        self.epochs_since_best = 0
        self.nan_skips = 0
        self.train_seconds = 0.0
        self.val_data_wait = 0.0  # seconds the last validate() spent blocked on the next batch
        # a preemption signal arrived (set by the job layer, segtrain.job.signals); checked after optimizer steps
        self.should_stop: Callable[[], bool] = lambda: False
        self.preempted_at: dict[str, int] | None = None  # where the last fit() stopped on should_stop
        self.resumed_at: dict[str, int] | None = None  # where the last resume continued (metrics.json says so)
        self._resume_position: dict[str, Any] | None = None  # a mid-epoch checkpoint's position, for train_epoch
        self._epoch_seconds_before = 0.0  # the resumed epoch's seconds before its checkpoint

    # ------------------------------------------------------------------ helpers
    def _n_train_batches(self) -> int:
        n = len(self.train_loader)
        return min(n, self.cfg.limit_train_batches) if self.cfg.limit_train_batches else n

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _to_device(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        non_blocking = self.device.type == "cuda"
        x = batch["image"].to(self.device, non_blocking=non_blocking)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, batch["mask"].to(self.device, non_blocking=non_blocking)

    def _aux(self, batch: dict) -> dict[str, torch.Tensor]:
        """The batch entries the loss takes besides logits and target (``distance`` maps for the boundary
        losses, when the data pipeline made them)."""
        keys = getattr(self.loss_fn, "aux_inputs", ())
        non_blocking = self.device.type == "cuda"
        return {k: batch[k].to(self.device, non_blocking=non_blocking) for k in keys if k in batch}

    def _improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if self.cfg.monitor_mode == "max" else value < self.best_value

    def _loader_generator(self) -> torch.Generator | None:
        """The generator the train loader draws each epoch's shuffle (and its workers' base seed) from."""
        sampler = getattr(self.train_loader, "sampler", None)
        return getattr(sampler, "generator", None) or getattr(self.train_loader, "generator", None)

    def _state(self) -> dict[str, Any]:
        generator = self._loader_generator()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best": self.best,
            "last_row": self.last_row,
            "best_value": self.best_value,
            "epochs_since_best": self.epochs_since_best,
            "train_seconds": self.train_seconds,
            "rng": rng_state(),
            "loader_rng": generator.get_state() if generator is not None else None,
            "config": self.config_dict,
            "run_info": self.run_info,
        }

    def resume_from(self, path: str | Path) -> None:
        """Restore everything a checkpoint holds; the next epoch continues where it left off."""
        state = load_checkpoint(path, map_location=self.device)
        theirs, ours = state.get("run_info", {}), self.run_info
        clash = {k: (theirs.get(k), ours.get(k)) for k in ("loss", "model", "encoder", "dataset") if k in theirs}
        clash = {k: v for k, v in clash.items() if v[0] != v[1]}
        if clash:
            raise ValueError(f"cannot resume from {path}: it was trained with other settings {clash} (theirs, ours)")
        diffs = config_differences(state.get("config") or {}, self.config_dict, ignore=resume_ignored_keys())
        if state.get("config") and self.config_dict and diffs:
            raise ValueError(
                f"cannot resume from {path}: it was trained with another configuration: {describe_differences(diffs)}"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best, self.best_value = dict(state["best"]), state["best_value"]
        self.last_row = dict(state.get("last_row") or {})
        self.epochs_since_best = int(state.get("epochs_since_best", 0))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        set_rng_state(state["rng"])
        generator = self._loader_generator()
        if generator is not None and state.get("loader_rng") is not None:
            generator.set_state(state["loader_rng"].cpu())
        middle = state.get("mid_epoch")
        # a mid-epoch checkpoint: train_epoch skips the batches done, then restores the RNG state saved after them
        self._resume_position = {**middle, "rng": state["rng"]} if middle else None
        batch = int(middle["batch"]) if middle else 0
        self.resumed_at = {"epoch": self.epoch, "step": self.step, "batch": batch}
        log.info(
            "resumed from %s at epoch %d (step %d); continuing at batch %d of epoch %d",
            path,
            self.epoch,
            self.step,
            batch,
            self.epoch + 1,
        )

    # ------------------------------------------------------------------ the loop
    def fit(self, until_epoch: int | None = None, should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Train up to ``max_epochs``, or to ``until_epoch`` when it comes first (resuming from last.pt with
        ``resume``; the LR schedule and loss ramps always span ``max_epochs``, so a later call continues as
        one uninterrupted run would); returns metrics.json's content.

        metrics.json says ``running`` after each epoch and ``trained`` when the loop ends: what comes next
        (evaluation, ``completed``, ``paused``) is the job layer's (segtrain.job), so a job killed before its
        evaluation is on disk is not taken for finished. ``stopped_early`` tells an early stop apart. A run
        resumed with no epoch left returns its summary again (from the checkpoint's last row) without
        training. ``should_stop`` (a preemption signal arrived) is asked after every optimizer step: when it
        says so on any rank, last.pt is written at that position, metrics.json says ``preempted`` and where
        (``preempted_at``), and fit returns; a resume continues from that very batch.
        """
        cfg = self.cfg
        main = self.is_main
        ckpt_dir = self.run_dir / "checkpoints"
        if should_stop is not None:
            self.should_stop = should_stop
        self.preempted_at = None
        if cfg.resume:
            path = ckpt_dir / "last.pt" if cfg.resume == "auto" else Path(cfg.resume)
            if path.exists() or cfg.resume != "auto":
                self.resume_from(path)
        history = HistoryCSV(self.run_dir / "history.csv", resume=self.epoch > 0)
        if main:
            history.truncate_after(self.epoch) if self.epoch > 0 else history.path.unlink(missing_ok=True)
        best_keys = list(dict.fromkeys((cfg.monitor, "val/dice", "val/iou")))
        if main:  # a resumed job continues its runs (TensorBoard drops the events logged after last.pt)
            run_info = {**self.run_info, "precision": self.precision}
            self.trackers.start(self.config_dict, run_info, self.epoch, [f"best/{k}" for k in best_keys])
        log.info(
            "device %s, precision %s, %d train batches/epoch, %d optimizer steps/epoch",
            self.device,
            self.precision,
            self._n_train_batches(),
            self.steps_per_epoch,
        )
        start = time.perf_counter()
        status, result = "running", {}
        end = min(cfg.max_epochs, until_epoch or cfg.max_epochs)
        self.stopped_early = False
        writer = CheckpointWriter()
        try:
            while self.epoch < end:
                epoch_start = time.perf_counter()
                train_loss, data_wait = self.train_epoch(writer if main and cfg.checkpoint else None)
                if self.preempted_at is not None:
                    break
                val = self.validate()
                data_wait += self.val_data_wait  # the epoch's time blocked on the next batch, both loaders
                self.epoch += 1
                seconds = time.perf_counter() - epoch_start + self._epoch_seconds_before
                self.train_seconds += seconds
                row = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"], "train/loss": train_loss}
                row.update({f"val/{k}": v for k, v in val.items() if k != "vis"})
                row.update({"seconds": round(seconds, 3), "data_wait": round(data_wait / seconds, 4)})
                self.last_row = row
                monitored = row.get(cfg.monitor)
                if monitored is None:
                    raise KeyError(f"trainer.monitor={cfg.monitor!r} is not a logged value; known: {sorted(row)}")
                improved = self._improved(monitored)
                if improved:
                    self.best_value, self.epochs_since_best = monitored, 0
                    self.best = {k: v for k, v in row.items() if k.startswith("val/") or k == "epoch"}
                else:
                    self.epochs_since_best += 1
                if main:
                    history.append(row)
                    scalars = {k: v for k, v in row.items() if k != "epoch"}
                    scalars.update({f"best/{k}": self.best.get(k) for k in best_keys})
                    self.trackers.log_scalars(scalars, self.epoch)
                    if "vis" in val:
                        self.trackers.log_image("val/predictions", val["vis"], self.epoch)
                    log.info(
                        "epoch %d/%d  train/loss %.4f  val/loss %.4f  val/dice %.4f  val/iou %.4f%s  (%.1fs)",
                        self.epoch,
                        cfg.max_epochs,
                        train_loss,
                        row["val/loss"],
                        row["val/dice"],
                        row["val/iou"],
                        "  *best*" if improved else "",
                        seconds,
                    )
                    if cfg.checkpoint:  # written while the next epoch runs; best.pt is a link to the same file
                        best = ckpt_dir / "best.pt" if improved else None
                        writer.save(self._state(), ckpt_dir / "last.pt", best)
                    result = self._summary(row, status, time.perf_counter() - start)
                    write_json(self.run_dir / "metrics.json", result)
                if cfg.early_stopping_patience and self.epochs_since_best >= cfg.early_stopping_patience:
                    log.info("early stopping: %s did not improve for %d epochs", cfg.monitor, self.epochs_since_best)
                    self.stopped_early = True
                    break
                if self.epoch < end and any_rank(self.should_stop(), self.device):  # during validation: last.pt is here
                    self.preempted_at = {"epoch": self.epoch, "step": self.step, "batch": 0}
                    break
            status = "trained" if self.preempted_at is None else "preempted"
        finally:
            self.trackers.flush()
            writer.wait()
        if self.preempted_at is not None:
            where = self.preempted_at
            log.warning(
                "stopped on a preemption signal after optimizer step %d (epoch %d, batch %d); last.pt holds that "
                "position, a re-run with trainer.resume=auto continues from it",
                where["step"],
                where["epoch"] + 1,
                where["batch"],
            )
        if main and (self.last_row or self.preempted_at is not None):
            result = self._summary(self.last_row, status, time.perf_counter() - start)
            write_json(self.run_dir / "metrics.json", result)
        return result

    def load_weights(self, path: str | Path) -> int:
        """Load the model weights of checkpoint ``path`` (e.g. best.pt, to evaluate it); returns its epoch."""
        state = load_checkpoint(path, map_location=self.device)
        self.model.load_state_dict(state["model"])
        return int(state["epoch"])

    def train_epoch(self, writer: CheckpointWriter | None = None) -> tuple[float, float]:
        """One pass over the training data (the rest of it, after a mid-epoch resume). Returns (mean loss,
        seconds spent waiting for data). With ``writer`` (rank 0 with trainer.checkpoint), mid-epoch last.pt
        files are written; on a stop request it returns early with ``preempted_at`` set."""
        cfg, model = self.cfg, self.model
        model.train()
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        if hasattr(self.loss_fn, "set_epoch"):
            self.loss_fn.set_epoch(self.epoch, cfg.max_epochs)
        n_batches = self._n_train_batches()
        # the state this epoch's shuffle and worker seeds are drawn from, before iter() draws them: a mid-epoch
        # checkpoint stores it, so that its resume draws the same ones
        generator = self._loader_generator()
        epoch_rng = generator.get_state() if generator is not None else None
        resumed, self._resume_position = self._resume_position, None
        first = int(resumed["batch"]) if resumed else 0
        loss_sum, counted, data_wait = (
            (resumed["loss_sum"], resumed["counted"], resumed["data_wait"]) if resumed else (0.0, 0, 0.0)
        )
        self._epoch_seconds_before = float(resumed["seconds"]) if resumed else 0.0
        epoch_start = time.perf_counter()
        last_save = time.monotonic()
        bar = tqdm(
            total=n_batches,
            initial=first,
            desc=f"epoch {self.epoch + 1}/{cfg.max_epochs}",
            leave=False,
            disable=not (cfg.progress_bar and self.is_main),
            dynamic_ncols=True,
        )
        self.optimizer.zero_grad(set_to_none=True)
        kept = 0  # micro-batches of the current accumulation group whose gradients are accumulated
        it = self._train_iterator(first)
        if resumed:  # after the skip, whose loading drew from the global generators: they continue as saved
            set_rng_state(resumed["rng"])
        for i in range(first, n_batches):
            t0 = time.perf_counter()
            batch = next(it)
            x, y = self._to_device(batch)
            aux = self._aux(batch)
            data_wait += time.perf_counter() - t0
            last_of_group = (i + 1) % cfg.accumulate_grad_batches == 0 or i + 1 == n_batches
            # DDP all-reduces the gradients in backward: only once per accumulation group, on its last micro-batch
            with self._grad_sync(last_of_group):
                # forward + loss under autocast; the loss computes in float32 inside where it matters
                with self._autocast():
                    logits = self.train_forward(x)
                    loss = self.loss_fn(logits, y, **aux)
                # the one host sync per step: a non-finite loss must stop or skip before it reaches the weights;
                # under DDP all ranks decide together (a rank skipping alone would hang the others' backward)
                loss_value, finite, stop = loss_value_and_finite_everywhere(loss, self.should_stop())
                if finite:
                    self.scaler.scale(loss / cfg.accumulate_grad_batches).backward()
                    loss_sum += loss_value
                    counted += 1
                    kept += 1
            if not finite:
                # raises, or skips this micro-batch alone: the group's earlier gradients are kept
                self._non_finite(loss_value, batch, i)
                if last_of_group and kept and self.world_size > 1:
                    sync_accumulated_gradients(model)  # the skipped backward was the group's synchronising one
            if last_of_group and kept:
                if cfg.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                self.nan_skips = 0
            bar.update(1)
            if (i + 1) % cfg.log_every_n_steps == 0 and self.is_main:
                bar.set_postfix(loss=f"{loss_value:.4f}")
            if not last_of_group:
                continue
            kept = 0
            if self.world_size == 1:  # a signal during this step's backward stops now, not after the next step
                stop = stop or self.should_stop()
            # only between accumulation groups: no partial gradients to save. `stop` is every rank's (all-reduced
            # with the loss); the periodic save is rank 0's alone, as epoch-end saves are
            due = i + 1 < n_batches and (
                (cfg.checkpoint_every_n_steps and self.step % cfg.checkpoint_every_n_steps == 0)
                or (cfg.checkpoint_every_minutes and time.monotonic() - last_save >= 60 * cfg.checkpoint_every_minutes)
            )
            if stop or (due and writer is not None):
                position = {"batch": i + 1, "loss_sum": loss_sum, "counted": counted, "data_wait": data_wait}
                position["seconds"] = self._epoch_seconds_before + time.perf_counter() - epoch_start
                if writer is not None:
                    state = {**self._state(), "loader_rng": epoch_rng, "mid_epoch": position}
                    writer.save(state, self.run_dir / "checkpoints" / "last.pt")
                    last_save = time.monotonic()
                if stop:
                    if writer is not None:
                        writer.wait()  # on disk before the job exits
                    self.preempted_at = {"epoch": self.epoch, "step": self.step, "batch": i + 1}
                    break
        bar.close()
        return (loss_sum / counted if counted else math.nan), data_wait

    def _train_iterator(self, skip: int) -> Iterator[dict]:
        """An iterator over the train loader from its ``skip``-th batch on, with this epoch's order and
        augmentations. A sampler that hands out per-sample seeds (segtrain.data.sample_seeds) starts later, so
        the skipped batches are not loaded; otherwise they are loaded and dropped, because the augmentations
        of the rest draw from generators (the workers', torch's) that loading them advances."""
        sampler = getattr(self.train_loader, "sampler", None)
        if skip and hasattr(sampler, "start_next_iteration_at"):
            sampler.start_next_iteration_at(skip * self.train_loader.batch_size)
            return iter(self.train_loader)
        it = iter(self.train_loader)
        for _ in range(skip):
            next(it)
        return it

    def _grad_sync(self, sync: bool) -> contextlib.AbstractContextManager:
        """DDP's ``no_sync`` unless ``sync``: gradients accumulate locally until the group's last backward."""
        if self.world_size > 1 and not sync:
            return self.train_forward.no_sync()
        return contextlib.nullcontext()

    def _non_finite(self, loss: float, batch: dict, index: int) -> None:
        ids = list(batch.get("id", []))[:16]
        where = f"epoch {self.epoch + 1}, batch {index}, optimizer step {self.step}, samples {ids}"
        if math.isfinite(loss):
            where += " (non-finite on another rank)"
        if self.cfg.on_nan == "raise":
            raise NonFiniteLossError(
                f"non-finite loss ({loss}) at {where}; no checkpoint was written for this epoch. "
                "Lower the learning rate, enable trainer.grad_clip, or set trainer.on_nan=skip"
            )
        self.nan_skips += 1
        log.warning("skipped a micro-batch with a non-finite loss at %s (%d in a row)", where, self.nan_skips)
        if self.nan_skips >= self.cfg.max_nan_skips:
            raise NonFiniteLossError(f"{self.nan_skips} non-finite losses in a row (last at {where}); giving up")

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        """Loss and confusion-matrix metrics over the whole validation split (summed across ranks)."""
        self.model.eval()
        self.metrics.reset()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        n = torch.zeros((), device=self.device, dtype=torch.float64)
        vis = None
        limit = self.cfg.limit_val_batches
        self.val_data_wait = 0.0
        t0 = time.perf_counter()
        for i, batch in enumerate(itertools.islice(self.val_loader, limit or None)):
            x, y = self._to_device(batch)
            self.val_data_wait += time.perf_counter() - t0
            with self._autocast():
                logits = self.forward(x)
                loss = self.loss_fn(logits, y, **self._aux(batch))
            loss_sum += loss.double() * x.shape[0]
            n += x.shape[0]
            self.metrics.update(logits, y)
            if i == 0 and self.cfg.num_vis and self.is_main and self.trackers.takes_images:  # TensorBoard shows them
                vis = self._overlays(x, y, logits)
            t0 = time.perf_counter()
        self.metrics.sync()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for t in (loss_sum, n):
                torch.distributed.all_reduce(t)
        out: dict[str, Any] = {"loss": (loss_sum / n.clamp(min=1)).item()}
        out.update(self.metrics.compute())
        if vis is not None:
            out["vis"] = vis
        return out

    def _overlays(self, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        k = min(self.cfg.num_vis, x.shape[0])
        mode = self.metrics.mode
        if mode == MULTICLASS:
            pred, tgt = logits[:k].argmax(1), y[:k].long()
        elif mode == BINARY:
            pred, tgt = (logits[:k, 0] > 0).long(), y[:k].reshape(k, *logits.shape[2:]).long()
        else:  # multilabel: draw the highest-scoring positive channel
            pred, tgt = highest_positive(logits[:k], 1), highest_positive(y[:k].float(), 1)
        return overlay_grid(x[:k], tgt, pred, self.metrics.ignore_index)

    def _summary(self, final_row: dict[str, Any], status: str, total_s: float) -> dict[str, Any]:
        names = self.metrics.class_names
        best = self.best
        return {
            "status": status,
            "error": None,
            **self.run_info,
            "monitor": self.cfg.monitor,
            "monitor_mode": self.cfg.monitor_mode,
            "epochs_completed": self.epoch,
            "max_epochs": self.cfg.max_epochs,
            "best": {k: v for k, v in best.items() if k == "epoch" or k.count("/") == 1},
            "final": {k: v for k, v in final_row.items() if k == "epoch" or k.count("/") == 1},
            "per_class": {
                "dice": {c: best.get(f"val/dice/{c}") for c in names},
                "iou": {c: best.get(f"val/iou/{c}") for c in names},
            },
            "empty_class_policy": EMPTY_CLASS_POLICY,
            "precision": self.precision,
            "device": str(self.device),
            "timing": {
                "train_s": round(self.train_seconds, 2),
                "total_s": round(total_s, 2),
                "s_per_epoch": round(self.train_seconds / max(self.epoch, 1), 3),
            },
            "config": self.config_dict,  # the CLI compares it before skipping a re-run as completed
            # where a preemption signal stopped it, and where this run continued from (epoch, step, batch)
            "preempted_at": self.preempted_at,
            "resumed_at": self.resumed_at,
            **({"tracking": self.trackers.record()} if self.trackers else {}),
        }
