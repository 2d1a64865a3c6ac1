"""What a run leaves behind in its directory: history.csv and metrics.json (the trackers, TensorBoard included,
are segtrain.trackers)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
