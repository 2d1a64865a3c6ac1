"""torchrun support: process-group set-up from the environment, samplers that shard the data, and the
collective decisions of the training step (skip a non-finite step on all ranks or on none)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def init_distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank); starts the process group when launched by torchrun with >1 process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 1, 0
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return rank, world_size, local_rank


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (e.g. the run directory, which only rank 0 names)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...`` without padding, so every sample is scored exactly once and
    metrics summed across ranks equal a single-process evaluation (DistributedSampler pads with repeats)."""

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def loss_value_and_finite_everywhere(loss: torch.Tensor, stop: bool = False) -> tuple[float, bool, bool]:
    """This rank's loss as a float, whether the loss is finite on every rank, and whether any rank asked to
    ``stop`` (a preemption signal arrived there).

    Under DDP a non-finite loss must be skipped by all ranks together: a rank that skipped its backward
    alone would leave the others waiting in the gradient all-reduce for ever; likewise all ranks must stop at
    the same optimizer step. One all-reduce of both flags, then one host sync for the three numbers.
    """
    if not _initialized():
        value = loss.item()
        return value, math.isfinite(value), stop
    bad = (~torch.isfinite(loss.detach())).to(torch.float32).reshape(1)
    flags = torch.cat([bad, torch.full((1,), float(stop), device=bad.device)])
    dist.all_reduce(flags)
    value, n_bad, n_stop = torch.cat([loss.detach().to(torch.float32).reshape(1), flags]).tolist()
    return value, n_bad == 0, n_stop > 0


def any_rank(flag: bool, device: torch.device | str = "cpu") -> bool:
    """Whether ``flag`` is true on any rank (one all-reduce; the flag itself outside DDP)."""
    if not _initialized():
        return flag
    box = torch.tensor([float(flag)], device=device)
    dist.all_reduce(box)
    return bool(box.item() > 0)


def sync_accumulated_gradients(model: torch.nn.Module) -> None:
    """Let DDP all-reduce the gradients accumulated so far, with a zero-valued backward through every parameter.

    Used when the micro-batch whose backward was to synchronise an accumulation group was skipped: its
    forward (outside ``no_sync``) left DDP expecting a backward, so DDP itself must run one, else the next
    backward (even under ``no_sync``) would all-reduce instead. Adds exactly zero to every gradient.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    (torch.stack([p.sum() for p in params]).sum() * 0.0).backward()
