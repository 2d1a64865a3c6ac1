"""The case-level verdict of a sweep: per-case records from every job's per_case.csv -> segtrain.verdict.

The unit is the case (image). Each configuration's value for a case is its CASE_RULE value averaged over
the configuration's seeds (and, with k-fold CV, folds: each case is scored once per seed, by the fold that
held it out); configurations are ranked by the mean over seeds and cases, each is called worse, equivalent
(within `rope`) or undecided against the leader with training noise (the spread of the seeds' mean scores; a
seed's fold models together are one draw of it) and the case sample as sources of variance, Holm over all
pairs at `alpha`; rank stability comes from `n_boot` seeded resamples of seeds and cases
(segtrain.verdict.summarize, docs/verdict.md).

Scoring split: `test` when every job scored one, else `val`, and then the report says that selection and
scoring share a split. Jobs that cannot be scored (failed, running, no per_case.csv, unreadable, duplicate)
are returned in `left_out` with the reason.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from segtrain.verdict import Verdict, build_table, sentence, summarize

from .cases import CASE_METRICS, LOWER_IS_BETTER, METRIC_NAMES, PER_CASE_FILE, JobCases, read_job_cases
from .runs import RunRecord


class NoCasesError(ValueError):
    """No job of the sweep has a readable per_case.csv for the report to score."""


@dataclass
class LeftOut:
    """A job whose cases are not in the verdict, and why."""

    run: RunRecord
    reason: str


@dataclass
class CaseReport:
    """What the case-level part of summary.md and verdict.json show.

    `means[metric][config]`: mean over the cases every configuration scored of the per-case seed means
    (None where the metric is undefined); `class_means[config][class]`: mean per-case value of the class
    over the cases (and seeds) where it is in the reference or the prediction; `wins[config]` = (k, n): on k
    of the n seeds it shares with the leader its mean over the verdict's cases is better.
    """

    verdict: Verdict
    metric: str
    split: str
    selection_note: str
    selected_on_same_split: bool
    sentence: str
    means: dict[str, dict[str, float | None]]
    class_means: dict[str, dict[str, float | None]]
    classes: list[str]
    backgrounds: list[str]  # the multiclass jobs' background classes, left out of their case means
    no_background: bool  # some multiclass job has dataset.background_index null: every class is in its mean
    wins: dict[str, tuple[int, int]]
    n_seeds: int
    n_folds: int
    left_out: list[LeftOut] = field(default_factory=list)


def has_per_case(runs: Sequence[RunRecord]) -> bool:
    return any((r.path / PER_CASE_FILE).is_file() for r in runs)


def per_case_metric(metric: str | None) -> str | None:
    """The per-case metric a report metric names (`val/dice`, `test/iou`, `hd95` -> dice, iou, hd95), or None
    when it has no per-case counterpart (a loss, a per-class or per-image metric)."""
    if metric is None:
        return "dice"
    name = metric.rpartition("/")[2] if metric.count("/") == 1 else metric
    return name if name in CASE_METRICS and metric.count("/") <= 1 else None


DEFAULT_ROPES = {"dice": 0.01, "iou": 0.01, "nsd": 0.01, "cldice": 0.01, "hd95": 1.0}
"""Region of practical equivalence per case metric, in its units: one Dice (IoU, NSD, clDice) point, one
pixel of HD95. Pass your own where a smaller or larger difference would change your choice."""


def case_report(
    runs: Sequence[RunRecord],
    metric: str = "dice",
    *,
    alpha: float = 0.05,
    rope: float | None = None,
    case_only: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
) -> CaseReport:
    """The case-level verdict of `runs` on per-case `metric` (one of CASE_METRICS).

    Raises NoCasesError when no job can be scored (the reasons named), ValueError when two folds of one seed of a
    configuration scored the same case.
    """
    if metric not in CASE_METRICS:
        raise ValueError(f"per-case metric must be one of {CASE_METRICS}, got {metric!r}")
    # a paused job was stopped on purpose (job.stop_at_epoch: a successive-halving rung): listed as left
    # out, but its configuration is not ranked, nor counted as failed (summary.md's halving section has it)
    configs = list(dict.fromkeys(r.config for r in runs if r.status != "paused"))
    left_out: list[LeftOut] = []
    scored: list[tuple[RunRecord, JobCases]] = []
    seen: dict[tuple[str, Hashable, Hashable], RunRecord] = {}
    for r in runs:
        if r.status != "completed":
            why = {
                "running": "still running (per_case.csv is written at the end)",
                "preempted": "preempted: a signal stopped it mid-run (re-run the sweep: it continues from last.pt)",
                "paused": "paused by job.stop_at_epoch (a successive-halving rung that stopped it)",
                "trained": "trained but not evaluated (stopped before per_case.csv: re-run it to evaluate)",
                "evaluating": "trained, its evaluation not finished (stopped during it: re-run it to evaluate)",
            }.get(r.status, r.status)
            left_out.append(LeftOut(r, f"{why}: {r.error}" if r.error else why))
            continue
        key = (r.config, _seed(r), r.fold)
        if key in seen:
            left_out.append(LeftOut(r, f"same configuration, seed and fold as {seen[key].job}: the first is used"))
            continue
        try:
            cases = read_job_cases(r)
        except FileNotFoundError:
            left_out.append(LeftOut(r, "no per_case.csv (older segtrain: re-run it, or run scripts/evaluate.py)"))
            continue
        except ValueError as exc:
            left_out.append(LeftOut(r, str(exc)))
            continue
        seen[key] = r
        scored.append((r, cases))
    if not scored:
        reasons = "; ".join(f"{x.run.job}: {x.reason}" for x in left_out)
        raise NoCasesError(f"no job has a readable per_case.csv ({reasons})")

    split = "test" if all("test" in c.splits for _, c in scored) else "val"
    kept = []
    for r, c in scored:
        if split in c.splits:
            kept.append((r, c))
        else:
            left_out.append(LeftOut(r, f"no {split} rows in per_case.csv"))
    used = {(r.config, _seed(r)) for r, _ in kept}
    failed: dict[str, list[Hashable]] = {}
    for x in left_out:
        if x.run.status == "paused":
            continue
        s = _seed(x.run)
        if (x.run.config, s) not in used and s not in failed.get(x.run.config, []):
            failed.setdefault(x.run.config, []).append(s)

    def records(m: str) -> list[tuple[str, Hashable, str, float]]:
        out: dict[tuple[str, Hashable, str], tuple[float, RunRecord]] = {}
        for r, c in kept:
            for case, v in c.case_values(split, m).items():
                key = (r.config, _seed(r), case)
                if key in out:
                    raise ValueError(
                        f"case {case!r} of configuration {r.config!r}, seed {key[1]!r} is scored by two jobs "
                        f"({out[key][1].job} and {r.job}); with k-fold CV each case must be in one fold per seed"
                    )
                out[key] = (v, r)
        return [(*k, v) for k, (v, _) in out.items()]

    def table(m: str):
        return build_table(records(m), configs=configs, failed_seeds=failed)

    dice_records = records(metric)
    verdict = summarize(
        build_table(dice_records, configs=configs, failed_seeds=failed),
        higher_is_better=metric not in LOWER_IS_BETTER,
        alpha=alpha,
        rope=DEFAULT_ROPES[metric] if rope is None else rope,
        case_only=case_only,
        n_boot=n_boot,
        seed=seed,
    )
    means: dict[str, dict[str, float | None]] = {metric: dict(verdict.means)}
    for m in CASE_METRICS:
        if m == metric:
            continue
        try:
            t = table(m)
        except ValueError:  # undefined for every case (clDice in multiclass mode)
            means[m] = {}
            continue
        means[m] = {c: float(v) for c, v in zip(t.configs, t.values.mean(axis=1), strict=True)}

    classes = list(dict.fromkeys(cls for _, c in kept for cls in c.classes))
    per_class: dict[str, dict[str, list[float]]] = {}
    for r, c in kept:
        for cls, vals in c.class_values(split, "dice").items():
            per_class.setdefault(r.config, {}).setdefault(cls, []).extend(vals)
    class_means = {
        cfg: {cls: (math.fsum(v) / len(v) if v else None) for cls, v in by_class.items()}
        for cfg, by_class in per_class.items()
    }

    wins = _seed_wins(dice_records, verdict, metric not in LOWER_IS_BETTER)
    note, same_split = selection_note(split, [r for r, _ in kept])
    n_seeds = len({_seed(r) for r, _ in kept})
    folds = {r.fold for r, _ in kept if r.fold is not None}
    units: dict[str, int] | None = None
    if folds:
        units = {"cases": verdict.n_cases, "seeds": n_seeds, "folds": len(folds)}
    text = sentence(verdict, split=split, metric=METRIC_NAMES[metric], units=units, selected_on_same_split=same_split)
    return CaseReport(
        verdict=verdict,
        metric=metric,
        split=split,
        selection_note=note,
        selected_on_same_split=same_split,
        sentence=text,
        means=means,
        class_means=class_means,
        classes=classes,
        backgrounds=sorted({c.background for _, c in kept if c.background is not None}),
        no_background=any(c.mode == "multiclass" and c.background is None for _, c in kept),
        wins=wins,
        n_seeds=n_seeds,
        n_folds=len(folds),
        left_out=left_out,
    )


def selection_note(split: str, runs: Sequence[RunRecord]) -> tuple[str, bool]:
    """The line that says where checkpoints were selected and configurations scored; and whether any
    checkpoint was selected on the scoring split (for the verdict sentence)."""
    chosen = Counter(str((r.metrics.get("selected") or {}).get("checkpoint", "unrecorded")) for r in runs)
    if split == "test":
        return (
            "Scored on `test`, a split held out from training and from checkpoint selection "
            f"(checkpoints: {_counts(chosen)}).",
            False,
        )
    head = "**Selection and scoring share a split.** Not every job scored a held-out `test` split, so the "
    head += "configurations are scored, compared and ranked on `val`"
    if set(chosen) == {"best"}:
        return (
            head + ", the split on which each job's checkpoint was selected (its best epoch by the monitored "
            "metric): the scores are optimistic, and the ranking may favour configurations that fit val's noise. "
            "Confirm the winner on a held-out split.",
            True,
        )
    if set(chosen) == {"last"}:
        return (
            head + ". Each job's checkpoint is its last epoch, not chosen on val, so each configuration's score "
            "is not inflated by the epoch choice; but picking the winning configuration on val is itself a "
            "selection on val, so the winner's score is optimistic. Confirm it on a held-out split.",
            False,
        )
    return (
        head + f" (checkpoints: {_counts(chosen)}; `best` ones were selected on val, so their scores are "
        "optimistic, and picking the winner on val is a selection on val in any case). Confirm the winner on a "
        "held-out split.",
        "best" in chosen or "unrecorded" in chosen,
    )


def _counts(chosen: Counter) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(chosen.items()))


def _seed(r: RunRecord) -> Hashable:
    """A job's seed label: its seed, else (a single run without one) its job path."""
    return r.seed if r.seed is not None else r.job


def _seed_wins(
    records: list[tuple[str, Hashable, str, float]], verdict: Verdict, higher_is_better: bool
) -> dict[str, tuple[int, int]]:
    """Per configuration, on how many of the seeds it shares with the leader its mean over the verdict's
    cases (those of them the seed scored) beats the leader's: seed-level, next to the case-level test."""
    cases = set(verdict.cases)
    sums: dict[tuple[str, Hashable], list[float]] = {}
    for config, s, case, v in records:
        if case in cases:
            sums.setdefault((config, s), []).append(v)
    per_seed: dict[str, dict[Hashable, float]] = {}
    for (config, s), vals in sums.items():
        if s in verdict.seeds.get(config, ()):
            per_seed.setdefault(config, {})[s] = math.fsum(vals) / len(vals)
    top = per_seed.get(verdict.leader, {})
    wins = {}
    for config in verdict.ranking[1:]:
        mine = per_seed.get(config, {})
        shared = [s for s in mine if s in top]
        better = sum((mine[s] > top[s]) if higher_is_better else (mine[s] < top[s]) for s in shared)
        wins[config] = (better, len(shared))
    return wins
