"""What a run leaves behind: history.csv, metrics.json and TensorBoard events (scalars, overlays, hparams)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from segtrain.atomic import atomic_write


def jsonable(value: Any) -> Any:
    """NaN -> None everywhere (in dicts, lists and tuples), so that the JSON written is valid."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def write_json(path: Path, data: dict) -> None:
    """Atomic JSON write: readers (the sweep report) never see half a file, and a failed write leaves the
    previous one (``segtrain.atomic``)."""
    text = json.dumps(jsonable(data), indent=2) + "\n"
    atomic_write(path, lambda f: f.write(text), text=True)


class HistoryCSV:
    """One row per epoch; the header is fixed by the first row."""

    def __init__(self, path: Path, resume: bool = False) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if resume and path.exists():
            with path.open() as f:
                self.fields = next(csv.reader(f), None)

    def truncate_after(self, epoch: int) -> None:
        """Drop rows past ``epoch`` (written by an interrupted run after its last checkpoint)."""
        if not self.path.exists():
            return
        with self.path.open() as f:
            rows = list(csv.DictReader(f))
        kept = [r for r in rows if int(r["epoch"]) <= epoch]
        if len(kept) != len(rows) and self.fields:
            with self.path.open("w", newline="") as f:
                w = csv.DictWriter(f, self.fields)
                w.writeheader()
                w.writerows(kept)

    def append(self, row: dict[str, Any]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})


class TensorBoard:
    """Thin wrapper over SummaryWriter; a no-op when disabled (non-zero ranks, logger=none)."""

    def __init__(self, log_dir: Path | None, purge_step: int | None = None) -> None:
        self.writer = None
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run logged after its last checkpoint
            self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer:
            for k, v in values.items():
                if v is not None and not (isinstance(v, float) and math.isnan(v)):
                    self.writer.add_scalar(k, v, step)

    def image(self, tag: str, img: torch.Tensor, step: int) -> None:
        if self.writer:
            self.writer.add_image(tag, img, step)

    def hparams(self, hparams: dict[str, Any], metric_tags: list[str]) -> None:
        """Register the run in the HParams view; the metrics are the scalars logged under ``metric_tags``.

        Written into the run's own event file (not a sub-run as ``add_hparams`` does), at the start, so a
        crashed or running job still appears.
        """
        if not self.writer:
            return
        from torch.utils.tensorboard.summary import hparams as hp_summary

        clean = {k: (v if isinstance(v, int | float | str | bool) else str(v)) for k, v in hparams.items()}
        exp, ssi, sei = hp_summary(clean, {t: 0.0 for t in metric_tags})
        fw = self.writer._get_file_writer()
        for s in (exp, ssi, sei):
            fw.add_summary(s)

    def close(self) -> None:
        if self.writer:
            self.writer.close()
