"""``logger=wandb``: one Weights & Biases run per job (``pip install "segtrain[wandb]"``).

Offline by default: the run is written under ``<run dir>/wandb/offline-run-*`` with no account and no
network, and ``wandb sync`` uploads it later. ``mode: online`` (or ``$WANDB_MODE``, which wins over the
config) logs live. The run's config is the resolved config, the scalars go in with ``step = epoch``, and
metrics.json and per_case.csv (and, with ``log_checkpoint``, the selected checkpoint) are saved with the run.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segtrain.trackers.base import require, shareable_config

RUN_ID_FILE = "wandb_run.json"
MODES = ("offline", "online", "disabled")


@dataclass
class WandbSettings:
    """``configs/logger/wandb.yaml``'s keys (config_checks.py checks their types against these fields)."""

    project: str = "segtrain"
    entity: str | None = None
    mode: str = "offline"  # offline, online or disabled; $WANDB_MODE wins
    group: str | None = None  # null: the sweep's folder under paths.output_dir (W&B groups its jobs)
    tags: list[str] = field(default_factory=list)
    log_checkpoint: bool = False  # also save the selected checkpoint (job.select)

    def resolved_mode(self) -> str:
        mode = os.environ.get("WANDB_MODE") or self.mode
        if mode not in MODES:
            raise ValueError(f"logger.wandb.mode={mode!r} (or $WANDB_MODE); expected one of {', '.join(MODES)}")
        return mode


def _settings() -> Any:
    import wandb

    # console="off": wandb does not capture the job's stdout (train.log already holds it)
    return wandb.Settings(console="off", quiet=True, silent=True)


class WandbTracker:
    """One W&B run for the job in ``run_dir`` (its files under ``<run_dir>/wandb``), named ``run_name``."""

    name = "wandb"
    takes_images = False

    def __init__(self, settings: WandbSettings, run_dir: Path, run_name: str, group: str | None) -> None:
        require("wandb", "wandb")
        settings.resolved_mode()  # a bad mode stops the job before training
        self.settings = settings
        self.run_dir = Path(run_dir)
        self.run_name = run_name
        self.group = settings.group or group
        self.run: Any = None

    def start(self, config: dict[str, Any], run_info: dict[str, Any], step: int, metrics: Sequence[str]) -> None:
        if self.run is not None:
            return
        import wandb

        id_file = self.run_dir / RUN_ID_FILE
        run_id = None
        if id_file.is_file() and step > 0:  # a resumed job continues its run; one that starts over gets a new one
            run_id = json.loads(id_file.read_text()).get("run_id")
        run_id = run_id or secrets.token_hex(4)  # W&B's own ids are 8 characters too
        s = self.settings
        self.run = wandb.init(
            project=s.project, entity=s.entity, group=self.group, name=self.run_name, id=run_id, resume="allow",
            mode=s.resolved_mode(), dir=str(self.run_dir), config=shareable_config(config), tags=list(s.tags) or None,
            job_type="train", settings=_settings(),
        )  # fmt: skip
        id_file.write_text(json.dumps({"project": s.project, "run_id": run_id}) + "\n")
        self.run.summary["segtrain/precision"] = run_info.get("precision")

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def log_image(self, tag: str, image: Any, step: int) -> None:
        pass

    def log_artifacts(self, paths: Sequence[Path], checkpoint: Path | None) -> None:
        files = list(paths)
        if checkpoint is not None and self.settings.log_checkpoint:
            files.append(checkpoint)
        for path in files:
            self.run.save(str(path), base_path=str(Path(path).parent), policy="now")

    def flush(self) -> None:
        pass

    def finish(self, status: str) -> None:
        if self.run is None:
            return
        self.run.summary["segtrain/status"] = status
        self.run.finish(exit_code=1 if status == "failed" else 0)
        self.run = None

    def record(self) -> dict[str, Any]:
        id_file = self.run_dir / RUN_ID_FILE
        run_id = json.loads(id_file.read_text()).get("run_id") if id_file.is_file() else None
        return {"mode": self.settings.resolved_mode(), "project": self.settings.project, "run_id": run_id}


def log_sweep_report(settings: WandbSettings, sweep_dir: Path, files: Sequence[Path], group: str) -> dict[str, Any]:
    """The sweep report's files saved with a run named ``sweep-report`` (job type ``sweep-report``) in the sweep's
    group, its W&B files under ``<sweep dir>/wandb``."""
    wandb = require("wandb", "wandb")
    run = wandb.init(
        project=settings.project, entity=settings.entity, group=settings.group or group, name="sweep-report",
        job_type="sweep-report", mode=settings.resolved_mode(), dir=str(sweep_dir), settings=_settings(),
    )  # fmt: skip
    try:
        for path in files:
            if Path(path).is_file():
                run.save(str(path), base_path=str(Path(path).parent), policy="now")
    finally:
        run.finish()
    return {"ok": True, "mode": settings.resolved_mode(), "project": settings.project, "run_id": run.id}
