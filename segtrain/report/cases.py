"""Reading a job's `per_case.csv` and reducing it to one value per case and metric.

`per_case.csv` holds one row per split x image x class: `split, case, class, dice, iou, hd95, nsd, cldice,
tp, fp, fn, ref_pixels, pred_pixels` (an empty cell = the metric is undefined there, e.g. clDice in
multiclass mode). Both-empty rows (class absent from reference and prediction) carry the empty rules'
values (metrics.json `empty_rules`: Dice 1, HD95 0, ...).

Case rule (CASE_RULE, stated in summary.md): a case's value is the mean over its foreground classes that
are present in the reference or the prediction of that case (multiclass: every class but the background,
the job's ``dataset.background_index`` (0, as in VOC, where the key is absent: runs from before it), or every
class where it is null (CamVid's class 0 is sky, Cityscapes' is road: real objects that count); multilabel:
every channel; binary: the one foreground row). A case where no foreground class is present anywhere (a
correct empty prediction) takes the mean of its foreground rows, i.e. the empty rules' both-empty value;
leaving it undefined would drop it for every configuration, so a configuration that predicts foreground on
an empty image would go unpunished.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .runs import RunRecord

PER_CASE_FILE = "per_case.csv"
CASE_METRICS = ("dice", "iou", "hd95", "nsd", "cldice")
LOWER_IS_BETTER = frozenset({"hd95"})
METRIC_NAMES = {"dice": "Dice", "iou": "IoU", "hd95": "HD95", "nsd": "NSD", "cldice": "clDice"}
REQUIRED_COLUMNS = ("split", "case", "class", *CASE_METRICS, "ref_pixels", "pred_pixels")
BACKGROUND_KEY = "background_index"  # under `dataset` in the job's config
CASE_RULE = (
    "a case's value is the mean over its foreground classes present in the reference or the prediction "
    "(multiclass: all classes but the background, `dataset.background_index`, or all classes where it is null; "
    "multilabel: all channels; binary: the foreground row); a case with no foreground class in either takes "
    "the empty rules' both-empty value (Dice 1, HD95 0)"
)


@dataclass
class CaseRow:
    cls: str
    present: bool  # the class is in the reference or the prediction of this case
    values: dict[str, float]  # metric -> value, NaN where undefined


@dataclass
class JobCases:
    """One job's per_case.csv: `splits[split][case]` = its rows, in file order; `classes` in first-seen order;
    `background`: the class left out of the case mean (multiclass: the class at `dataset.background_index`),
    None where there is none (binary, multilabel, multiclass with `background_index: null`)."""

    path: Path
    mode: str
    background: str | None
    classes: list[str]
    splits: dict[str, dict[str, list[CaseRow]]] = field(default_factory=dict)

    def case_values(self, split: str, metric: str) -> dict[str, float]:
        """case -> the case's `metric` by CASE_RULE (NaN where no foreground row defines it)."""
        out = {}
        for case, rows in self.splits.get(split, {}).items():
            fg = [r for r in rows if r.cls != self.background]
            present = [r.values[metric] for r in fg if r.present and not math.isnan(r.values[metric])]
            if not present and not any(r.present for r in fg):
                present = [r.values[metric] for r in fg if not math.isnan(r.values[metric])]
            out[case] = math.fsum(present) / len(present) if present else math.nan
        return out

    def class_values(self, split: str, metric: str) -> dict[str, list[float]]:
        """class -> the class's `metric` on every case where it is in the reference or the prediction."""
        out: dict[str, list[float]] = {c: [] for c in self.classes}
        for rows in self.splits.get(split, {}).values():
            for r in rows:
                if r.present and not math.isnan(r.values[metric]):
                    out[r.cls].append(r.values[metric])
        return out


def read_job_cases(run: RunRecord, splits: Collection[str] | None = None) -> JobCases:
    """Read `run`'s per_case.csv; with `splits`, only the rows of those splits (the halving and the fair sweep
    select on `val` without reading a held-out record). Raises FileNotFoundError without one and ValueError
    (naming the file and what was expected) for a malformed one, a job whose dataset mode cannot be told, or a
    multiclass job whose background class cannot be told."""
    path = run.path / PER_CASE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {PER_CASE_FILE}")
    found: dict[str, dict[str, list[CaseRow]]] = {}
    classes: dict[str, None] = {}
    rows_read = 0
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: lacks columns {missing}; expected {', '.join(REQUIRED_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            if None in row.values():  # DictReader fills the fields a short row lacks with None
                given = sum(v is not None for v in row.values())
                raise ValueError(
                    f"{path} line {line}: {given} of {len(reader.fieldnames)} fields, a truncated file (the job "
                    "was killed, or its disk was full, while writing it): re-run the job to rewrite it"
                )
            rows_read += 1
            classes.setdefault(row["class"])
            if splits is not None and row["split"] not in splits:
                continue
            try:
                values = {m: _cell(row[m]) for m in CASE_METRICS}
                present = int(row["ref_pixels"]) > 0 or int(row["pred_pixels"]) > 0
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path} line {line}: {exc}; expected numbers (empty = undefined)") from None
            found.setdefault(row["split"], {}).setdefault(row["case"], []).append(
                CaseRow(row["class"], present, values)
            )
    if not rows_read:
        raise ValueError(f"{path}: no rows")
    names = list(classes)
    if len(names) == 1:
        return JobCases(path, "binary", None, names, found)
    mode = _dataset_mode(run)
    if mode == "multilabel":
        return JobCases(path, mode, None, names, found)
    if mode != "multiclass":
        raise ValueError(
            f"{path}: {len(names)} classes but the dataset mode is {mode!r}; expected multiclass or multilabel "
            f"(metrics.json 'mode' or dataset.mode in .hydra/config.yaml)"
        )
    index = _background_index(run)
    if index is None:
        return JobCases(path, mode, None, names, found)
    order = _class_order(run)
    if not order:
        raise ValueError(
            f"{run.path / 'metrics.json'}: no per_class class list, so the background class (index {index}) of "
            "this multiclass job is unknown"
        )
    if index >= len(order):
        raise ValueError(
            f"{run.path}: dataset.{BACKGROUND_KEY}={index} but metrics.json lists {len(order)} classes {order}; "
            "expected an index into them or null"
        )
    return JobCases(path, mode, order[index], names, found)


def _cell(text: str | None) -> float:
    if text is None or text.strip() == "":
        return math.nan
    return float(text)


def _dataset_sections(run: RunRecord) -> list[dict]:
    """The job's `dataset` config sections: metrics.json's stored config, then .hydra/config.yaml (where
    readable)."""
    sections = []
    stored = run.metrics.get("config")
    if isinstance(stored, dict) and isinstance(stored.get("dataset"), dict):
        sections.append(stored["dataset"])
    config = run.path / ".hydra" / "config.yaml"
    if config.is_file():
        try:
            data = yaml.safe_load(config.read_text()) or {}
        except yaml.YAMLError:
            data = {}
        dataset = data.get("dataset") if isinstance(data, dict) else None
        if isinstance(dataset, dict):
            sections.append(dataset)
    return sections


def _dataset_mode(run: RunRecord) -> str | None:
    mode = run.metrics.get("mode")
    if mode:
        return str(mode)
    return next((str(d["mode"]) for d in _dataset_sections(run) if d.get("mode")), None)


def _background_index(run: RunRecord) -> int | None:
    """The job's `dataset.background_index` (None: no background class); 0 where its config lacks the key (a
    run from before it, when class 0 was always the background)."""
    for dataset in _dataset_sections(run):
        if BACKGROUND_KEY in dataset:
            value = dataset[BACKGROUND_KEY]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(
                    f"{run.path}: dataset.{BACKGROUND_KEY}={value!r} in its config; expected a class index or null"
                )
            return value
    return 0


def _class_order(run: RunRecord) -> list[str]:
    """The job's class names in index order, from metrics.json: `per_class.dice` (class -> value), or the
    `val`/`test` aggregates' per_class, whether keyed metric -> class -> value or class -> metric -> value."""
    for section in (run.metrics, run.metrics.get("val") or {}, run.metrics.get("test") or {}):
        per_class = section.get("per_class") if isinstance(section, dict) else None
        if not isinstance(per_class, dict) or not per_class:
            continue
        if isinstance(per_class.get("dice"), dict) and per_class["dice"]:
            return [str(k) for k in per_class["dice"]]
        if all(isinstance(v, dict) for v in per_class.values()) and not set(per_class) & set(CASE_METRICS):
            return [str(k) for k in per_class]
    return []
