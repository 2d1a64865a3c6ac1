"""summary.md when the jobs wrote per_case.csv: the verdict sentence, the case-level table, the leader
against each configuration, rank stability and the jobs left out; and verdict.json."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segtrain.verdict.result import _json

from .aggregate import ConfigSummary
from .cases import CASE_METRICS, CASE_RULE, METRIC_NAMES
from .casewise import CaseReport
from .render import DASH, _fmt, _fmt_seconds, _fmt_seed, _md, job_sections, sweep_header
from .runs import RunRecord, number


def render_case_markdown(
    runs: list[RunRecord], rows: list[ConfigSummary], report: CaseReport, roots: Sequence[Path]
) -> str:
    v = report.verdict
    name = METRIC_NAMES[report.metric]
    lines = ["# Sweep summary", "", report.sentence, "", *sweep_header(runs, rows, roots)]
    lines += [
        report.selection_note + "  ",
        f"Units: the case and the seed. Case rule: {CASE_RULE}"
        + background_note(report)
        + ". Each configuration's case value is the mean over its seeds"
        + (" and folds (each case is scored once per seed, by the fold that held it out)" if report.n_folds else "")
        + f"; ranked by the mean over the {v.n_cases} cases every configuration scored "
        f"({'higher' if v.higher_is_better else 'lower'} {name} is better). "
        + (
            "**These models, not these losses:** the calls use the cases as the only source of variance "
            "(`--case-only`), so they say whether these trained models differ, not whether the configurations "
            "train better models."
            if v.case_only
            else "The calls count two sources of variance: training noise (how much a seed's mean score varies "
            "from seed to seed) and the sample of cases."
        ),
        "",
        case_table(rows, report),
        "",
        f"Metric columns: mean over the cases every configuration scored on `{report.split}` of the per-case "
        f"values (case rule above; {DASH} = undefined, e.g. clDice in multiclass mode). Per-class Dice: mean over "
        "the cases (and seeds) where the class is in the reference or the prediction. *beats #1* = k/n: on k of "
        f"the n seeds it shares with #1, this configuration's mean {name} over those cases is better than #1's "
        "(paired by seed; the verdict column is the test over seeds and cases)."
        + (THRESHOLD_NOTE if _shows_threshold(rows) else ""),
    ]
    lines += comparison_section(report)
    lines += stability_section(report)
    lines += left_out_section(report)
    lines += job_sections(runs, runs[0].monitor if runs else "val/dice", case_level=True)
    return "\n".join(lines) + "\n"


def background_note(report: CaseReport) -> str:
    """`` (background here: `background`)``, `` (no background class here: ...)``, both where the multiclass
    jobs differ, or nothing (binary and multilabel jobs have none)."""
    notes = []
    if report.backgrounds:
        notes.append(f"background here: {', '.join(f'`{b}`' for b in report.backgrounds)}")
    if report.no_background:
        where = "in some jobs" if report.backgrounds else "here"
        notes.append(f"no background class {where}: `dataset.background_index` is null, so every class is in the mean")
    return f" ({'; '.join(notes)})" if notes else ""


def case_table(rows: list[ConfigSummary], report: CaseReport) -> str:
    v = report.verdict
    stability = {s.config: s for s in v.stability}
    defined = [m for m in CASE_METRICS if any(x is not None for x in report.means.get(m, {}).values())]
    classes = report.classes
    show_threshold = _shows_threshold(rows)
    header = ["#", "configuration", "seeds" + ("/folds" if report.n_folds else ""), "cases"]
    header += [METRIC_NAMES[m] for m in defined] + [f"dice {c}" for c in classes]
    header += (["threshold"] if show_threshold else []) + ["epoch", "train time", "beats #1", "verdict", "status"]
    align = ["---:", "---"] + ["---:"] * (len(header) - 4) + ["---", "---"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    calls = v.calls
    for row in rows:
        s = stability.get(row.label)
        seeds = str(len(v.seeds.get(row.label, ()))) if s else "0"
        if report.n_folds:
            seeds += f"/{row.folds}"
        cells = [str(s.rank) if s else DASH, _md(row.label), seeds, str(v.n_cases) if s else DASH]
        cells += [_fmt(report.means[m].get(row.label), 2 if m == "hd95" else 3) for m in defined]
        cells += [_fmt(report.class_means.get(row.label, {}).get(c)) for c in classes]
        if show_threshold:
            cells.append(_threshold(row))
        cells.append(_epoch(row))
        cells.append(_fmt_seconds(row.field_mean("timing", "train_s")))
        if s is None:
            cells += [DASH, "not ranked"]
        elif row.label == v.leader:
            cells += ["ref", "leader"]
        else:
            k, n = report.wins.get(row.label, (0, 0))
            cells += [f"{k}/{n}" if n else DASH, calls[row.label]]
        cells.append(row.status)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison_section(report: CaseReport) -> list[str]:
    v = report.verdict
    if not v.comparisons:
        return []
    name = METRIC_NAMES[report.metric]
    k = len(v.ranking)
    tied = ", ".join(f"`{c}`" for c in v.tie_set)
    sources = (
        "the paired differences over the cases only (`--case-only`: these models)"
        if v.case_only
        else "seed var (each configuration's variance over seeds of a seed's mean score, over its seeds) + case "
        "var (how differently the two suit different cases, over the number of cases)"
    )
    lines = [
        "",
        f"## Winner or tie: `{v.leader}` against each configuration",
        "",
        f"Calls: **worse** where the difference is shown (two-sided t with Satterthwaite df, Holm over all "
        f"{k * (k - 1) // 2} pairs of configurations, alpha = {v.alpha:g}), **equivalent** where its 95% interval "
        f"lies within +-{v.rope:g} {name} (the region of practical equivalence, `--rope`), else **undecided**. "
        f"Tie set (not worse): {tied}. Differences: `{v.leader}`'s mean minus the other's over seeds and cases, "
        f"positive = worse, in {name}; variance from {sources}. *Seeds to decide*: seeds per configuration that "
        "would likely decide an undecided pair, from the variances measured here.",
        "",
        "| configuration | mean | diff | 95% CI | seed SD of diff | case SD of diff | df | p | p Holm | call "
        "| seeds to decide |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for c in v.comparisons:
        lines.append(
            f"| {_md(c.config)} | {c.mean:.4f} | {c.diff_mean:.4f} | [{_fmt(_num(c.ci_low), 4)}, "
            f"{_fmt(_num(c.ci_high), 4)}] | {_fmt(_sd(c.var_seed), 4)} | {_fmt(_sd(c.var_case), 4)} | "
            f"{_fmt(_num(c.df), 1)} | {_p(c.p_raw)} | {_p(c.p_holm)} | {c.call} | {_needed(c)} |"
        )
    comps = v.components
    if not v.case_only and any(x.n_seeds > 1 for x in comps.values()):
        sd = [math.sqrt(x.seed_var) for x in comps.values() if x.n_seeds > 1]
        lines += [
            "",
            f"Training noise: a seed's mean {name} varies from seed to seed by an SD of {min(sd):.4f}-{max(sd):.4f} "
            "across the configurations (per configuration in verdict.json, `components`).",
        ]
    return lines


def _sd(var: float) -> float | None:
    return math.sqrt(var) if math.isfinite(var) else None


def _needed(c) -> str:
    if c.call != "undecided":
        return DASH
    if c.seeds_needed is not None:
        return f"{c.seeds_needed} (to {c.seeds_needed_for})"
    return _md(c.seeds_needed_for) or DASH


def stability_section(report: CaseReport) -> list[str]:
    v = report.verdict
    what = f"the {v.n_cases} cases" if v.case_only else f"the {v.n_cases} cases and of each configuration's seeds"
    lines = [
        "",
        f"## Rank stability ({v.n_boot} bootstrap resamples of {what})",
        "",
        f"Kendall's tau between the ranking on all cases and each resampled one: median {_fmt(_num(v.tau_median), 2)}, "
        f"mean {_fmt(_num(v.tau_mean), 2)}. Rank interval: 2.5th-97.5th percentile of the rank over the resamples "
        "(ties share the best rank); ranks.png draws every rank's frequency. These describe how stable the ranking "
        "is; the calls above decide.",
        "",
        "| configuration | rank | P(rank 1) | 95% rank interval |",
        "|---|---:|---:|---|",
    ]
    for s in v.stability:
        lines.append(f"| {_md(s.config)} | {s.rank} | {s.p_first:.2f} | {s.rank_low}-{s.rank_high} |")
    return lines


def left_out_section(report: CaseReport) -> list[str]:
    v = report.verdict
    lines: list[str] = []
    if report.left_out:
        lines += [
            "",
            "## Jobs left out of the case-level verdict",
            "",
            "A configuration keeps its other seeds; a seed that lost one fold is averaged over the seeds that "
            "scored those cases.",
            "",
            "| job | configuration | seed | fold | reason |",
            "|---|---|---|---|---|",
        ]
        for x in report.left_out:
            r = x.run
            lines.append(
                f"| {_md(r.job)} | {_md(r.config)} | {_fmt_seed(r.seed)} | {_fmt_seed(r.fold)} | {_md(x.reason)} |"
            )
    dropped = Counter(d.reason for d in v.dropped_cases)
    if dropped or v.incomplete_seeds or v.failed_configs:
        lines += ["", "## Cases left out of the comparison", ""]
        for reason, n in sorted(dropped.items()):
            what = "not scored by every configuration" if reason == "missing" else "undefined for some configuration"
            examples = ", ".join(f"`{d.case}`" for d in v.dropped_cases if d.reason == reason)
            lines.append(f"- {n} case{'s' * (n != 1)} {what}: {_clip(examples)}")
        for i in v.incomplete_seeds:
            lines.append(
                f"- seed {i.seed} of `{i.config}` lacks {len(i.missing_cases)} cases (averaged over the seeds that "
                "have them)"
            )
        for f in v.failed_configs:
            lines.append(f"- `{f.config}` is not ranked: {f.reason}")
    return lines


def verdict_json(report: CaseReport) -> dict[str, Any]:
    """verdict.json: segtrain.verdict's result plus what the report adds (split, rule, columns, left out)."""
    return _json(
        {
            "metric": report.metric,
            "split": report.split,
            "selection": report.selection_note,
            "selected_on_same_split": report.selected_on_same_split,
            "case_rule": CASE_RULE,
            "background_classes": report.backgrounds,
            "no_background_class": report.no_background,
            "sentence": report.sentence,
            "n_seeds": report.n_seeds,
            "n_folds": report.n_folds,
            "means": report.means,
            "class_dice": report.class_means,
            "beats_leader_on_seeds": {c: {"wins": k, "shared": n} for c, (k, n) in report.wins.items()},
            "left_out_jobs": [
                {"job": x.run.job, "config": x.run.config, "seed": x.run.seed, "fold": x.run.fold, "reason": x.reason}
                for x in report.left_out
            ],
            "verdict": report.verdict.to_dict(),
        }
    )


THRESHOLD_NOTE = (
    " *threshold*: the sigmoid cut each job's hard predictions used (one per channel in multilabel mode, "
    "mean and range over the seeds; * = tuned on val by job.tune_threshold, else the fixed 0.5)."
)


def _shows_threshold(rows: Sequence[ConfigSummary]) -> bool:
    return any(isinstance(r.metrics.get("threshold"), dict) for row in rows for r in row.runs)


def _threshold(row: ConfigSummary) -> str:
    """metrics.json `threshold.value` over the seeds (a float for binary jobs, one per channel for
    multilabel ones, joined by "/"): one value, or the mean and min-max when the seeds differ; a "*" marks
    a threshold tuned on val (``tuned_on``), none the fixed 0.5."""
    per_channel: list[list[float]] = []
    tuned = False
    for r in row.counted:
        t = r.metrics.get("threshold")
        if not isinstance(t, dict):
            continue
        raw = t.get("value", t.get("threshold"))
        values = [number(v) for v in (raw if isinstance(raw, list) else [raw])]
        if values and all(v is not None for v in values):
            per_channel.append(values)  # type: ignore[arg-type]
            tuned = tuned or bool(t.get("tuned_on") or t.get("selected_on"))
    if not per_channel or len({len(v) for v in per_channel}) != 1:
        return DASH
    cells = []
    for vals in zip(*per_channel, strict=True):
        lo, hi = min(vals), max(vals)
        cells.append(f"{lo:.2f}" if math.isclose(lo, hi) else f"{statistics.mean(vals):.2f} ({lo:.2f}-{hi:.2f})")
    return " / ".join(cells) + ("*" if tuned else "")


def _epoch(row: ConfigSummary) -> str:
    """Mean selected epoch (metrics.json `selected.epoch`, else the best epoch) and the checkpoint kind."""
    epochs, kinds = [], set()
    for r in row.counted:
        sel = r.metrics.get("selected") or {}
        e = number(sel.get("epoch")) if sel else number((r.metrics.get("best") or {}).get("epoch"))
        if e is not None:
            epochs.append(e)
        kinds.add(str(sel.get("checkpoint", "best")))
    if not epochs:
        return DASH
    text = f"{statistics.mean(epochs):.1f}".removesuffix(".0")
    return f"{text} ({'/'.join(sorted(kinds))})"


def _p(p: float) -> str:
    return DASH if not math.isfinite(p) else (f"{p:.2g}" if p < 0.001 else f"{p:.3f}")


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
