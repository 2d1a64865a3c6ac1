"""The training engine: the loop (trainer.py), checkpoints and run-directory records."""

from segtrain.engine.checkpoint import load_checkpoint, save_checkpoint
from segtrain.engine.trainer import Trainer, TrainerConfig

__all__ = ["Trainer", "TrainerConfig", "load_checkpoint", "save_checkpoint"]
