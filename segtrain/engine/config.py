"""What shapes the loop (``TrainerConfig``) and where it runs (device, precision).

Kept apart from trainer.py so that the loop module holds the loop; the config is also what the CLI
type-checks at start-up (segtrain/config_checks.py reads the field types below).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class TrainerConfig:
    """Everything that shapes the loop; mirrors ``configs/trainer/default.yaml``."""

    max_epochs: int = 10
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str | int = "auto"  # auto | 32 | 16-mixed | bf16-mixed (trainer.precision=32 arrives as an int)
    monitor: str = "val/dice"
    monitor_mode: str = "max"  # max | min
    select: str = "last"  # read by the job layer: the checkpoint evaluated case by case at the end, last | best
    # read by the job layer: pick each sigmoid channel's Dice-best threshold on val before that evaluation
    tune_threshold: bool = False
    grad_clip: float | None = None  # max L2 norm of all gradients
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 10
    num_vis: int = 4  # validation images drawn with their overlays each epoch (0: none)
    on_nan: str = "raise"  # raise | skip
    max_nan_skips: int = 10  # consecutive skipped micro-batches before giving up
    early_stopping_patience: int | None = None  # epochs without improvement
    # read by the job layer: pause after this epoch (status "paused"; Trainer.fit(until_epoch=...)); the LR
    # schedule and loss ramps still span max_epochs, so a later run continues as the uninterrupted one would
    stop_at_epoch: int | None = None
    resume: str | None = "auto"  # null | auto (last.pt of the run directory, when there is one) | /path/to/ckpt.pt
    deterministic: bool = False
    channels_last: bool = False
    compile: bool = False
    progress_bar: bool = True
    limit_train_batches: int | None = None
    limit_val_batches: int | None = None
    checkpoint: bool = True
    # mid-epoch last.pt (the exact position; resumes bit-identically), written by the background writer: a hard
    # kill loses at most this much training. null: epoch ends only. Measured cost: docs/faults.md
    checkpoint_every_minutes: float | None = 30.0
    checkpoint_every_n_steps: int | None = None  # the same by optimizer steps (both may be set)
    # read by the job layer: on these signals the job finishes the optimizer step, writes last.pt at that exact
    # position and metrics.json status "preempted", and exits (segtrain.job.signals; SLURM recipe: docs/faults.md)
    preempt_signals: list[str] = field(default_factory=lambda: ["SIGTERM", "SIGUSR1", "SIGUSR2"])
    sync_batchnorm: bool = False  # under torchrun: BatchNorm statistics over all ranks
    skip_completed: bool = True  # read by the job layer: re-running a finished job is a no-op
    num_threads: int | None = None  # read by the job layer: torch.set_num_threads; None: OMP/MKL_NUM_THREADS decide
    # read by the job layer: glibc keeps freed blocks for reuse (segtrain.cpu.keep_freed_memory); speed, not results
    keep_freed_memory: bool = True

    def __post_init__(self) -> None:
        self.precision = str(self.precision)
        if self.monitor_mode not in ("max", "min"):
            raise ValueError(f"trainer.monitor_mode must be 'max' or 'min', got {self.monitor_mode!r}")
        if self.select not in ("last", "best"):
            raise ValueError(f"trainer.select must be 'last' or 'best', got {self.select!r}")
        if self.select == "best" and not self.checkpoint:
            raise ValueError("trainer.select=best loads checkpoints/best.pt, so it needs trainer.checkpoint=true")
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
        if self.stop_at_epoch is not None and self.stop_at_epoch < 1:
            raise ValueError(f"trainer.stop_at_epoch must be null or >= 1, got {self.stop_at_epoch}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"trainer.device={name} but CUDA is not available here; use trainer.device=auto or cpu")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """auto: bf16-mixed on GPUs that support it, fp16-mixed on older GPUs, fp32 on CPU."""
    if name != "auto":
        if name != "32" and device.type == "cpu" and name == "16-mixed":
            raise ValueError("trainer.precision=16-mixed needs a GPU; on CPU use 32 or bf16-mixed")
        return name
    if device.type == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32"
