"""What a run leaves behind: history.csv, metrics.json and TensorBoard events (scalars, overlays, hparams)."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import torch

PALETTE = (
    torch.tensor(
        [
            [0, 0, 0],
            [230, 25, 75],
            [60, 180, 75],
            [255, 225, 25],
            [0, 130, 200],
            [245, 130, 48],
            [145, 30, 180],
            [70, 240, 240],
            [240, 50, 230],
            [210, 245, 60],
            [250, 190, 190],
            [0, 128, 128],
            [230, 190, 255],
            [170, 110, 40],
            [255, 250, 200],
            [128, 0, 0],
            [170, 255, 195],
            [128, 128, 0],
            [255, 215, 180],
            [0, 0, 128],
            [128, 128, 128],
        ],
        dtype=torch.float32,
    )
    / 255.0
)


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    return v


def write_json(path: Path, data: dict) -> None:
    """Atomic JSON write: readers (the sweep report) never see half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_json_value(data), indent=2) + "\n")
    os.replace(tmp, path)


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


def colorize(labels: torch.Tensor) -> torch.Tensor:
    """H x W class indices -> 3 x H x W colours (class 0 black; values past the palette wrap)."""
    return PALETTE[labels.long().cpu() % len(PALETTE)].permute(2, 0, 1)


def overlay_grid(
    images: torch.Tensor,
    targets: torch.Tensor,
    preds: torch.Tensor,
    ignore_index: int | None = None,
    alpha: float = 0.5,
) -> torch.Tensor:
    """Rows of (input, ground truth over input, prediction over input) as one 3 x H' x W' image in [0, 1].

    ``images`` N x C x H x W (any normalisation: rescaled per image), ``targets``/``preds`` N x H x W class
    maps (ignored pixels in the target drawn white).
    """
    from torchvision.utils import make_grid

    tiles = []
    for img, tgt, pred in zip(images.float().cpu(), targets.cpu(), preds.cpu(), strict=True):
        img = img[:3] if img.shape[0] >= 3 else img[:1].expand(3, -1, -1)
        lo, hi = img.amin(), img.amax()
        img = (img - lo) / (hi - lo + 1e-8)
        valid = tgt != ignore_index if ignore_index is not None else torch.ones_like(tgt, dtype=torch.bool)
        gt = torch.where(valid, tgt, torch.zeros_like(tgt))
        for lab in (gt, pred):
            col = colorize(lab)
            fg = (lab > 0).unsqueeze(0)
            tiles.append(torch.where(fg, (1 - alpha) * img + alpha * col, img))
        tiles[-2] = torch.where(valid.unsqueeze(0), tiles[-2], torch.ones_like(img))
        tiles.insert(len(tiles) - 2, img)
    return make_grid(torch.stack(tiles), nrow=3, padding=2, pad_value=1.0)


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
