"""Sweep report: read the run directories of one or more sweeps and compare configurations.

    summarize(Path("multirun/2024-05-01/12-00-00"))  # -> summary.csv, summary.md, summary.png, curves.png

A *job* is any directory holding `.hydra/overrides.yaml` (at any depth under the paths given), or a
directory with a `metrics.json` and no `.hydra` when it is passed directly. A *configuration* is a job's
overrides minus `seed` and the keys that do not change the experiment (`trainer.resume`, `hydra.*`, ...):
its jobs are the seeds of one experiment, folded into one row of `summary.md` as mean +- std (ddof=1).

When jobs wrote `per_case.csv`, configurations are compared case by case (casewise.py, segtrain.verdict):
scored on `test` when every job has it, else on `val` (and summary.md says that selection and scoring share
a split); each configuration called worse, equivalent (within `rope`) or undecided against the leader, with
seeds and cases as sources of variance (Holm over all pairs at `alpha`), rank stability over `n_boot`
resamples of seeds and cases (ranks.png), and verdict.json. Without per_case.csv (older sweeps), each job
is ranked by its `best` value of the monitored metric (`metrics.json` "monitor" and "monitor_mode", or
`metric=`), mean ± std over seeds. Running jobs are marked; failed jobs and jobs without a `metrics.json`
(killed before their first epoch) are listed with the reason, never dropped silently.

Plain Python, PyYAML and matplotlib (Agg, imported only to draw): no hydra, omegaconf or torch here, so the
report runs in a notebook or on a machine without the training stack.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segtrain.verdict import Verdict, plot_ranks

from .aggregate import ConfigSummary, choose_metric, group_configs
from .casewise import CaseReport, NoCasesError, case_report, has_per_case, per_case_metric
from .fair import fair_report, read_fair
from .halving import halving_section
from .plots import plot_curves, plot_summary
from .render import markdown_table, render_markdown, write_csv
from .render_verdict import render_case_markdown, verdict_json
from .runs import RunRecord, collect_runs

__all__ = [
    "CaseReport",
    "ConfigSummary",
    "RunRecord",
    "SweepSummary",
    "collect_runs",
    "group_configs",
    "markdown_table",
    "summarize",
]


@dataclass
class SweepSummary:
    """What summarize() found and wrote. `rows` are the configurations in rank order."""

    runs: list[RunRecord]
    rows: list[ConfigSummary]
    metric: str
    mode: str
    markdown: str
    csv_path: Path
    md_path: Path
    png_path: Path
    curves_path: Path
    plotted: bool = True  # False: summarize(plots=False) wrote no PNG
    cases: CaseReport | None = None  # the case-level verdict (None: no per_case.csv, seed-level report)
    verdict_path: Path | None = None
    ranks_path: Path | None = None

    @property
    def verdict(self) -> Verdict | None:
        return self.cases.verdict if self.cases is not None else None

    @property
    def files(self) -> list[Path]:
        """The files written."""
        pngs = [self.png_path, self.curves_path] if self.plotted else []
        extra = [p for p in (self.verdict_path, self.ranks_path) if p is not None]
        return [self.csv_path, self.md_path, *pngs, *extra]

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status == "failed"]

    @property
    def incomplete(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status == "incomplete"]


def summarize(
    paths: Sequence[Path | str] | Path | str,
    out_dir: Path | str | None = None,
    *,
    metric: str | None = None,
    mode: str | None = None,
    plots: bool = True,
    alpha: float = 0.05,
    rope: float | None = None,
    case_only: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
) -> SweepSummary:
    """Read every job under `paths` and write summary.csv, summary.md, summary.png and curves.png, and, when
    jobs wrote per_case.csv, verdict.json and ranks.png.

    out_dir defaults to the first path. `metric`: what to rank by; with per_case.csv a per-case metric (dice
    by default; `val/iou`, `iou`, `hd95`, ... name one), else the monitored metric (default: the jobs'
    `monitor`); `mode` ("max"/"min") defaults to the jobs' `monitor_mode`, or "min" for a metric named like a
    loss (seed-level report only). `alpha`: the family-wise level of the "worse" calls; `rope`: the region of
    practical equivalence in the metric's units (default: 0.01 for Dice-like metrics, 1 pixel for HD95);
    `case_only`: leave training noise out (these trained models, not these configurations); `n_boot`, `seed`:
    the rank-stability bootstrap. `plots=False` skips the PNGs (a quick look at a large sweep).
    """
    roots = [Path(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    runs = collect_runs(roots)
    case_metric = per_case_metric(metric)
    report: CaseReport | None = None
    note = None
    fair = read_fair(roots[0]) if len(roots) == 1 else None
    if fair is not None:  # a fair loss sweep: its own verdict (selected on val, scored held out), fair.py
        pass
    elif not has_per_case(runs):
        note = (
            "**No case-level verdict:** no job has a per_case.csv (the case-level verdict needs one per job: "
            "re-run the jobs with current segtrain, or run scripts/evaluate.py on them). This is the seed-level "
            "report."
        )
    elif case_metric is None:
        note = (
            f"**No case-level verdict for `{metric}`:** it has no per-case values (per_case.csv holds "
            "dice, iou, hd95, nsd, cldice). This is the seed-level report."
        )
    else:
        try:
            report = case_report(
                runs, case_metric, alpha=alpha, rope=rope, case_only=case_only, n_boot=n_boot, seed=seed
            )
        except NoCasesError as exc:
            note = f"**No case-level verdict:** {exc}. This is the seed-level report."
    if report is not None and (metric is None or not metric.startswith("val/")):
        metric, mode = None, None  # the seed-level columns (csv, plots) keep the jobs' monitor
    metric, mode = choose_metric(runs, metric, mode)
    rows = group_configs(runs, metric, mode)
    if report is not None:
        rows = _in_verdict_order(rows, report)
    out = Path(out_dir) if out_dir is not None else roots[0]
    out.mkdir(parents=True, exist_ok=True)

    csv_path = out / "summary.csv"
    md_path = out / "summary.md"
    png_path = out / "summary.png"
    curves_path = out / "curves.png"
    write_csv(runs, csv_path, metric)
    ranked = None  # the verdict drawn in ranks.png
    verdict_path = ranks_path = None
    if fair is not None:
        markdown, fair_json, ranked = fair_report(roots[0], fair, alpha=alpha, rope=rope, n_boot=n_boot)
        verdict_path = out / "verdict.json"
        verdict_path.write_text(json.dumps(fair_json, indent=1) + "\n")
    elif report is None:
        markdown = render_markdown(runs, rows, metric, mode, roots, note)
    else:
        markdown = render_case_markdown(runs, rows, report, roots)
    section = [] if fair is not None else halving_section(roots)  # halving sweeps: the configurations stopped
    if section:
        markdown = markdown.rstrip("\n") + "\n" + "\n".join(section) + "\n"
    md_path.write_text(markdown)
    if report is not None:
        ranked = report.verdict
        verdict_path = out / "verdict.json"
        verdict_path.write_text(json.dumps(verdict_json(report), indent=1) + "\n")
    if plots:
        plot_summary(rows, metric, mode, png_path)
        plot_curves(rows, curves_path)
        if ranked is not None:
            ranks_path = plot_ranks(ranked, out / "ranks.png")
    return SweepSummary(
        runs, rows, metric, mode, markdown, csv_path, md_path, png_path, curves_path, plots,
        report, verdict_path, ranks_path,
    )  # fmt: skip


def _in_verdict_order(rows: list[ConfigSummary], report: CaseReport) -> list[ConfigSummary]:
    """Rows in the verdict's ranking (its ranks and seed-level wins), unranked configurations last."""
    v = report.verdict
    by_label = {r.label: r for r in rows}
    ranked = [by_label[c] for c in v.ranking]
    rest = [r for r in rows if r.label not in set(v.ranking)]
    for row, s in zip(ranked, v.stability, strict=True):
        row.rank = s.rank
        row.wins, row.shared_seeds = report.wins.get(row.label, (None, None))
    for i, row in enumerate(rest, start=len(ranked) + 1):
        row.rank, row.wins, row.shared_seeds = i, None, None
    return ranked + rest
