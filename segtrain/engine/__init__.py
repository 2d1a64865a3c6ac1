"""The training engine: the loop (trainer.py), its config, DDP helpers and run-directory records."""

from segtrain.checkpoint import load_checkpoint, save_checkpoint
from segtrain.engine.trainer import Trainer, TrainerConfig

__all__ = ["Trainer", "TrainerConfig", "load_checkpoint", "save_checkpoint"]
