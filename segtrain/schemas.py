"""The schemas of the config groups whose keys are fixed: ``trainer`` (the loop) and ``job`` (what the job does
around it). One set of defaults and types, read by three parties:

- Hydra, which checks every value against them when it composes the config: the plugin
  hydra_plugins/segtrain_schemas registers each as ``<group>/schema`` in the ConfigStore, and
  configs/trainer/default.yaml and configs/job/default.yaml extend it (``defaults: [schema, _self_]``), so a
  wrong type (``trainer.max_epochs=abc``) or an unknown key stops with the key named before anything runs;
- the code, which builds ``TrainerConfig`` / ``JobConfig`` from the composed section (``__post_init__`` checks
  the values a type cannot: ``monitor_mode`` is max or min, ...);
- segtrain.run_config, which reads each field's ``kind``: ``operational`` keys change where files go, what is
  logged or how fast it runs, not the trained model; ``evaluation`` keys change only the end-of-job
  evaluation; ``added`` gives the value a key had before it existed, for runs recorded without it.

Plain dataclasses without imports from the rest of segtrain (the Hydra plugin loads this module at every
start-up). The YAML files keep every key with a comment, for users; a test keeps them equal to these defaults.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

OPERATIONAL = "operational"
EVALUATION = "evaluation"


def _field(default: Any = MISSING, *, kind: str | None = None, added: Any = MISSING, factory: Any = MISSING) -> Any:
    metadata: dict[str, Any] = {}
    if kind is not None:
        metadata["kind"] = kind
    if added is not MISSING:
        metadata["added"] = added
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainerConfig:
    """Everything that shapes the loop (segtrain.engine.Trainer); configs/trainer/default.yaml."""

    max_epochs: int = 10
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | 32 | 16-mixed | bf16-mixed (trainer.precision=32 arrives as "32")
    monitor: str = "val/dice"
    monitor_mode: str = "max"  # max | min
    grad_clip: float | None = None  # max L2 norm of all gradients
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = _field(10, kind=OPERATIONAL)
    num_vis: int = _field(4, kind=OPERATIONAL)  # validation images drawn with their overlays each epoch (0: none)
    on_nan: str = "raise"  # raise | skip
    max_nan_skips: int = 10  # consecutive skipped micro-batches before giving up
    early_stopping_patience: int | None = None  # epochs without improvement
    # null | auto (last.pt of the run directory, when there is one) | /path/to/ckpt.pt
    resume: str | None = _field("auto", kind=OPERATIONAL)
    deterministic: bool = False
    channels_last: bool = False
    compile: bool = False
    progress_bar: bool = _field(True, kind=OPERATIONAL)
    limit_train_batches: int | None = None
    limit_val_batches: int | None = None
    checkpoint: bool = _field(True, kind=OPERATIONAL)
    # mid-epoch last.pt (the exact position; resumes bit-identically), written by the background writer: a hard
    # kill loses at most this much training. null: epoch ends only. Measured cost: docs/faults.md
    checkpoint_every_minutes: float | None = _field(30.0, kind=OPERATIONAL)
    checkpoint_every_n_steps: int | None = _field(None, kind=OPERATIONAL)  # the same by optimizer steps
    sync_batchnorm: bool = False  # under torchrun: BatchNorm statistics over all ranks

    def __post_init__(self) -> None:
        self.precision = str(self.precision)
        if self.monitor_mode not in ("max", "min"):
            raise ValueError(f"trainer.monitor_mode must be 'max' or 'min', got {self.monitor_mode!r}")
        if self.precision not in ("auto", "32", "16-mixed", "bf16-mixed"):
            raise ValueError(f"trainer.precision must be auto, 32, 16-mixed or bf16-mixed, got {self.precision!r}")
        if self.on_nan not in ("raise", "skip"):
            raise ValueError(f"trainer.on_nan must be 'raise' or 'skip', got {self.on_nan!r}")
        if self.max_epochs < 1 or self.accumulate_grad_batches < 1:
            raise ValueError("trainer.max_epochs and trainer.accumulate_grad_batches must be >= 1")
        if self.checkpoint_every_minutes is not None and self.checkpoint_every_minutes <= 0:
            raise ValueError(
                f"trainer.checkpoint_every_minutes must be null or > 0, got {self.checkpoint_every_minutes}"
            )
        if self.checkpoint_every_n_steps is not None and self.checkpoint_every_n_steps < 1:
            raise ValueError(
                f"trainer.checkpoint_every_n_steps must be null or >= 1, got {self.checkpoint_every_n_steps}"
            )


@dataclass
class JobConfig:
    """What the job layer (segtrain.job) does around the loop; configs/job/default.yaml."""

    # the checkpoint evaluated case by case at the end: last | best (best.pt, picked by trainer.monitor on val)
    select: str = _field("last", kind=EVALUATION)
    # binary / multilabel: pick each sigmoid channel's Dice-best threshold on val before that evaluation
    tune_threshold: bool = _field(False, kind=EVALUATION, added=False)
    # pause after this epoch (status "paused"; Trainer.fit(until_epoch=...)); the LR schedule and loss ramps
    # still span trainer.max_epochs, so a later run continues as the uninterrupted one would
    stop_at_epoch: int | None = _field(None, kind=OPERATIONAL)
    skip_completed: bool = _field(True, kind=OPERATIONAL)  # re-running a finished job is a no-op
    num_threads: int | None = _field(None, kind=OPERATIONAL)  # torch.set_num_threads; None: OMP/MKL_NUM_THREADS
    # glibc keeps freed blocks for reuse (segtrain.cpu.keep_freed_memory): speed, not results
    keep_freed_memory: bool = _field(True, kind=OPERATIONAL)
    # on these signals the job finishes the optimizer step, writes last.pt at that exact position and
    # metrics.json status "preempted", and exits (segtrain.job.signals; SLURM recipe: docs/faults.md)
    preempt_signals: list[str] = _field(kind=OPERATIONAL, factory=lambda: ["SIGTERM", "SIGUSR1", "SIGUSR2"])

    def __post_init__(self) -> None:
        if self.select not in ("last", "best"):
            raise ValueError(f"job.select must be 'last' or 'best', got {self.select!r}")
        if self.stop_at_epoch is not None and self.stop_at_epoch < 1:
            raise ValueError(f"job.stop_at_epoch must be null or >= 1, got {self.stop_at_epoch}")


# group -> schema, registered by hydra_plugins/segtrain_schemas
SCHEMAS: dict[str, type] = {"trainer": TrainerConfig, "job": JobConfig}
# keys that moved to another group, old -> new: a run recorded before the move is compared under the new name
RENAMED = {f"trainer.{f.name}": f"job.{f.name}" for f in fields(JobConfig)}


def keys_of_kind(kind: str) -> tuple[str, ...]:
    """The dotted keys whose field ``kind`` is ``kind`` (OPERATIONAL, EVALUATION), over every schema."""
    return tuple(f"{g}.{f.name}" for g, cls in SCHEMAS.items() for f in fields(cls) if f.metadata.get("kind") == kind)


def added_keys() -> dict[str, Any]:
    """Dotted key -> the value that does what the code did before the key existed, over every schema."""
    return {
        f"{g}.{f.name}": f.metadata["added"] for g, cls in SCHEMAS.items() for f in fields(cls) if "added" in f.metadata
    }


def build(cls: type, section: dict[str, Any] | None, group: str) -> Any:
    """``cls(**section)``; an unknown key is an error naming ``group.key`` and listing the accepted ones."""
    section = dict(section or {})
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(section) - set(names))
    if unknown:
        moved = [f"{group}.{k} is now {RENAMED[f'{group}.{k}']}" for k in unknown if f"{group}.{k}" in RENAMED]
        raise TypeError(
            f"unknown key(s) {', '.join(f'{group}.{k}' for k in unknown)}"
            + (f" ({'; '.join(moved)})" if moved else "")
            + f"; accepted: {', '.join(names)}"
        )
    return cls(**section)
