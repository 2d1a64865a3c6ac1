"""``logger=tensorboard``: events in ``<run dir>/tb`` (scalars, per-class scalars, prediction overlays, hparams)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class TensorBoardTracker:
    """A SummaryWriter in ``log_dir``. On resume its ``purge_step`` drops the events a killed run logged after
    its last checkpoint; the HParams entry goes into the run's own event file at the start, so a crashed or
    running job still shows. Artifacts stay in the run directory, beside ``tb/``."""

    name = "tensorboard"
    takes_images = True

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer: Any = None

    def start(self, config: dict[str, Any], run_info: dict[str, Any], step: int, metrics: Sequence[str]) -> None:
        if self.writer is not None:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.log_dir), purge_step=step + 1)
        self._hparams(run_info, list(metrics))

    def _hparams(self, hparams: dict[str, Any], metric_tags: list[str]) -> None:
        """Register the run in the HParams view; its metrics are the scalars logged under ``metric_tags``
        (written into the run's own event file, not into a sub-run as ``add_hparams`` does)."""
        from torch.utils.tensorboard.summary import hparams as hp_summary

        clean = {k: (v if isinstance(v, int | float | str | bool) else str(v)) for k, v in hparams.items()}
        exp, ssi, sei = hp_summary(clean, {t: 0.0 for t in metric_tags})
        fw = self.writer._get_file_writer()
        for s in (exp, ssi, sei):
            fw.add_summary(s)

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def log_image(self, tag: str, image: Any, step: int) -> None:
        self.writer.add_image(tag, image, step)

    def log_artifacts(self, paths: Sequence[Path], checkpoint: Path | None) -> None:
        pass  # TensorBoard reads the run directory itself

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def finish(self, status: str) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def record(self) -> dict[str, Any]:
        return {"dir": self.log_dir.name}  # inside the run directory
