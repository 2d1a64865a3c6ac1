"""Process-wide settings of a training job: seeds, torch's threads and glibc's reuse of freed memory."""

from __future__ import annotations

import logging
import os
import random
from typing import Any

log = logging.getLogger("segtrain")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, numpy and torch; ``deterministic`` also asks torch for deterministic kernels."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def configure_process(jcfg: Any) -> None:
    """Process-wide settings of a training job (``jcfg``: its JobConfig), before anything large is
    allocated and before loader workers fork: torch's thread count and glibc's reuse of freed memory."""
    import torch

    from segtrain.cpu import keep_freed_memory

    if jcfg.num_threads:  # parallel sweep jobs: cores / jobs each (docs/sweeps.md)
        torch.set_num_threads(int(jcfg.num_threads))
    if jcfg.keep_freed_memory:
        log.info("memory: %s (job.keep_freed_memory)", keep_freed_memory())
