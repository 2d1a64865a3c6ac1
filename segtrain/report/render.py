"""summary.csv (one row per job) and summary.md (one row per configuration)."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .aggregate import ConfigSummary
from .runs import RunRecord, common_overrides, sweep_names

DASH = "–"  # shown for NaN / missing values

_CSV_FIXED = [
    "sweep",
    "job",
    "config",
    "seed",
    "status",
    "error",
    "overrides",
    "loss",
    "model",
    "encoder",
    "dataset",
    "monitor",
    "monitor_mode",
    "monitor_value",
    "epochs_completed",
    "max_epochs",
]


def write_csv(runs: list[RunRecord], path: Path, metric: str) -> None:
    """One row per job: identity, overrides (`override:<key>` columns), best, final, per class, timing."""
    rows = [_csv_row(r, metric) for r in runs]
    columns = list(_CSV_FIXED)
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    # Group the dynamic columns: overrides, best, final, per class, timing (each in first-seen order).
    order = ("override:", "best/", "final/", "selected/", "threshold/", "val/", "test/", "per_class/", "timing/")
    dynamic = [c for c in columns if c not in _CSV_FIXED]
    dynamic.sort(key=lambda c: next((i for i, p in enumerate(order) if c.startswith(p)), len(order)))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_CSV_FIXED + dynamic, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _csv_row(r: RunRecord, metric: str) -> dict[str, Any]:
    m = r.metrics
    row: dict[str, Any] = {
        "sweep": r.sweep_name,
        "job": r.job,
        "config": r.config,
        "seed": r.seed,
        "status": r.status,
        "error": r.error or "",
        "overrides": ",".join(r.overrides),
        "loss": m.get("loss"),
        "model": m.get("model"),
        "encoder": m.get("encoder"),
        "dataset": m.get("dataset"),
        "monitor": m.get("monitor"),
        "monitor_mode": m.get("monitor_mode"),
        "monitor_value": r.best_value(metric),
        "epochs_completed": m.get("epochs_completed"),
        "max_epochs": m.get("max_epochs"),
    }
    for item in r.overrides:
        key, _, value = item.partition("=")
        row[f"override:{key.lstrip('+')}"] = value
    for section in ("best", "final", "selected", "threshold", "val", "test"):
        for key, value in (m.get(section) or {}).items():
            if not isinstance(value, dict | list):  # nested per_class aggregates stay in metrics.json
                row[f"{section}/{key}"] = value
    for kind, values in r.per_class.items():
        for cls, value in (values or {}).items():
            row[f"per_class/{kind}/{cls}"] = value
    for key, value in (m.get("timing") or {}).items():
        row[f"timing/{key}"] = value
    return {k: ("" if v is None else v) for k, v in row.items()}


def shown_sweep_paths(roots: Sequence[Path], cwd: Path | None = None) -> list[str]:
    """How summary.md names each sweep: its path relative to `cwd` (default: the current directory) when it
    lies below it, else its name (the trailing parts that tell the sweeps apart), never an absolute path:
    a report committed to docs/ must not carry one machine's directory layout."""
    here = (cwd or Path.cwd()).resolve()
    shown = []
    for root, name in zip(roots, sweep_names(list(roots)), strict=True):
        resolved = Path(root).resolve()
        below = resolved != here and resolved.is_relative_to(here)
        shown.append(resolved.relative_to(here).as_posix() if below else name)
    return shown


def sweep_header(runs: list[RunRecord], rows: list[ConfigSummary], roots: Sequence[Path]) -> list[str]:
    """The sweep paths, the job counts by status and the overrides common to every job."""
    counts = Counter(r.status for r in runs)
    status_text = ", ".join(
        f"{counts[s]} {s}" for s in ("completed", "running", "preempted", "failed", "incomplete") if counts.get(s)
    )
    common = common_overrides(runs)
    lines = [
        f"Sweep{'s' if len(roots) > 1 else ''}: {', '.join(f'`{p}`' for p in shown_sweep_paths(roots))}  ",
        f"Jobs: {len(runs)} ({status_text}); configurations: {len(rows)}  ",
    ]
    if common:
        lines.append(f"Overrides common to every job (left out of the labels): `{' '.join(common)}`  ")
    return lines


def render_markdown(
    runs: list[RunRecord],
    rows: list[ConfigSummary],
    metric: str,
    mode: str,
    roots: Sequence[Path],
    note: str | None = None,
) -> str:
    """The seed-level report (no per_case.csv): best-epoch `metric` mean ± std over seeds. `note`, when
    given, is printed above the table (why there is no case-level verdict)."""
    lines = ["# Sweep summary", ""]
    if note:
        lines += [note, ""]
    lines += sweep_header(runs, rows, roots)
    lines += [
        f"Ranked by `{metric}` ({'higher' if mode == 'max' else 'lower'} is better), each job's value at "
        "its best epoch; mean ± std over seeds (std with ddof=1; `(n=1)` where one seed).",
        "",
        markdown_table(rows, metric),
        "",
        f"*beats #1* = k/n: on k of the n seeds it shares with #1, this configuration's best `{metric}` is "
        "better than #1's (paired by seed). 0/n: #1 wins on every seed; k near n/2: the gap is within "
        f"seed-to-seed noise. Per-class Dice: mean over seeds at each job's best epoch; {DASH} = the class "
        "is absent from target and prediction in every seed (NaN, left out of the mean).",
    ]
    monitors = sorted({r.monitor for r in runs if r.metrics})
    if len(monitors) > 1:
        lines += [
            "",
            f"Note: the jobs monitor different metrics ({', '.join(monitors)}); all ranked by `{metric}`.",
        ]
    lines += job_sections(runs, metric)
    return "\n".join(lines) + "\n"


def job_sections(runs: list[RunRecord], metric: str, *, case_level: bool = False) -> list[str]:
    """The empty-class policy, then the running, failed and missing/incomplete jobs, each with its reason.
    `case_level`: running jobs are not in the (case-level) ranking; their current best `metric` is shown."""
    lines: list[str] = []
    policies = {str(r.metrics["empty_class_policy"]) for r in runs if r.metrics.get("empty_class_policy")}
    if len(policies) == 1:
        lines += ["", f"Empty-class policy: {policies.pop()}"]
    counted = "not in the case-level verdict yet" if case_level else "counted with their current best"
    unfinished = {
        "running": f"Running jobs ({counted})",
        "preempted": f"Preempted jobs (a signal stopped them; re-running the sweep continues them; {counted})",
    }
    for status, title in unfinished.items():
        lines += _jobs_section(
            title, runs, status, ["epochs", "current best"], lambda r: [_epochs(r), _fmt(r.best_value(metric))]
        )
    lines += _jobs_section(
        "Failed jobs", runs, "failed", ["epochs", "error"], lambda r: [_epochs(r), _md(r.error or "no error recorded")]
    )
    lines += _jobs_section("Missing/incomplete jobs", runs, "incomplete", ["reason"], lambda r: [_md(r.error or "")])
    return lines


def _jobs_section(
    title: str, runs: list[RunRecord], status: str, columns: list[str], cells: Callable[[RunRecord], list[str]]
) -> list[str]:
    """A "## title" table of the jobs with ``status`` (none: no section): job, configuration, seed, then
    ``columns`` filled by ``cells``."""
    chosen = [r for r in runs if r.status == status]
    if not chosen:
        return []
    header = ["job", "configuration", "seed", *columns]
    lines = ["", f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in chosen:
        lines.append("| " + " | ".join([_md(r.job), _md(r.config), _fmt_seed(r.seed), *cells(r)]) + " |")
    return lines


def _epochs(r: RunRecord) -> str:
    return f"{r.metrics.get('epochs_completed', '?')} of {r.metrics.get('max_epochs', '?')}"


def markdown_table(rows: list[ConfigSummary], metric: str) -> str:
    """The ranking table alone (what the CLI prints)."""
    classes = rows[0].classes if rows else []
    metrics = ["val/dice", "val/iou"] + ([metric] if metric not in ("val/dice", "val/iou") else [])
    header = (
        ["#", "configuration", "seeds"]
        + metrics
        + [f"dice {c}" for c in classes]
        + ["epochs to best", "train time", "beats #1", "status"]
    )
    align = ["---:", "---"] + ["---:"] * (len(header) - 3) + ["---"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for row in rows:
        cells = [str(row.rank), _md(row.label), str(row.seeds)]
        cells += [_mean_std(row, m) for m in metrics]
        cells += [_fmt(row.class_mean("dice", c)) for c in classes]
        epochs = row.field_mean("best", "epoch")
        cells.append(DASH if epochs is None else f"{epochs:.1f}".removesuffix(".0"))
        cells.append(_fmt_seconds(row.field_mean("timing", "train_s")))
        if row.rank == 1:
            cells.append("ref")
        elif row.shared_seeds:
            cells.append(f"{row.wins}/{row.shared_seeds}")
        else:
            cells.append(DASH)
        cells.append(row.status)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_std(row: ConfigSummary, metric: str) -> str:
    mean = row.mean(metric)
    if mean is None:
        return DASH
    std = row.std(metric)
    return f"{mean:.3f} (n=1)" if std is None else f"{mean:.3f} ± {std:.3f}"


def _fmt(value: float | None, digits: int = 3) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _fmt_seed(seed: int | str | None) -> str:
    return DASH if seed is None else str(seed)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
