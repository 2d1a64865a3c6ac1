"""A run directory's status: whether a job of the same experiment already completed there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def completed_result(run_dir: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """metrics.json of a finished job of the same experiment in ``run_dir`` (re-running a sweep into its
    own directory skips the jobs that completed; unfinished ones resume from last.pt), else None.
    ``config``: the job's resolved config as plain values.

    The whole resolved config is compared with the one the job stored, except keys that do not change
    results (segtrain/run_config.py); a difference is an error naming the keys, never stale metrics.
    A larger ``trainer.max_epochs`` is not a difference: the job continues from its last.pt.
    """
    from segtrain.run_config import config_differences, describe_differences

    path = run_dir / "metrics.json"
    if not (config.get("job") or {}).get("skip_completed", True) or not path.exists():
        return None
    try:
        previous = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if previous.get("status") != "completed":
        return None
    stored = previous.get("config")
    if not isinstance(stored, dict):
        raise ValueError(
            f"{path} records a completed job but not its config, so it cannot tell whether this is the same "
            "experiment; train into another directory (hydra.run.dir=... / hydra.sweep.dir=...) or remove it"
        )
    diffs = config_differences(stored, config, ignore=["trainer.max_epochs"])
    if diffs:
        raise ValueError(
            f"{run_dir} holds a completed job of another configuration: {describe_differences(diffs)}. "
            "Train into another directory (hydra.run.dir=... / hydra.sweep.dir=...) or remove that one"
        )
    if previous.get("max_epochs") != config["trainer"]["max_epochs"]:
        return None
    return previous
