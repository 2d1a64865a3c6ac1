"""Sweep report: read the run directories of one or more sweeps and compare configurations.

    summarize(Path("multirun/2024-05-01/12-00-00"))  # -> summary.csv, summary.md, summary.png, curves.png

A *job* is any directory holding `.hydra/overrides.yaml` (at any depth under the paths given), or a
directory with a `metrics.json` and no `.hydra` when it is passed directly. A *configuration* is a job's
overrides minus `seed` and the keys that do not change the experiment (`trainer.resume`, `hydra.*`, ...):
its jobs are the seeds of one experiment, folded into one row of `summary.md` as mean +- std (ddof=1).

Each job is ranked by its `best` value of the monitored metric (`metrics.json` "monitor" and "monitor_mode",
or `metric=`). Running jobs count with their current best and are marked; failed jobs and jobs without a
`metrics.json` (killed before their first epoch) are listed with the reason, never dropped silently.

Plain Python, PyYAML and matplotlib (Agg, imported only to draw): no hydra, omegaconf or torch here, so the
report runs in a notebook or on a machine without the training stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .aggregate import ConfigSummary, choose_metric, group_configs
from .plots import plot_curves, plot_summary
from .render import markdown_table, render_markdown, write_csv
from .runs import RunRecord, collect_runs

__all__ = [
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

    @property
    def files(self) -> list[Path]:
        """The files written."""
        pngs = [self.png_path, self.curves_path] if self.plotted else []
        return [self.csv_path, self.md_path, *pngs]

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
) -> SweepSummary:
    """Read every job under `paths` and write summary.csv, summary.md, summary.png and curves.png.

    out_dir defaults to the first path. `metric` overrides the monitored metric (default: the jobs'
    `monitor`); `mode` ("max"/"min") defaults to the jobs' `monitor_mode`, or "min" for a metric named
    like a loss. `plots=False` skips the two PNGs (a quick look at a large sweep).
    """
    roots = [Path(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    runs = collect_runs(roots)
    metric, mode = choose_metric(runs, metric, mode)
    rows = group_configs(runs, metric, mode)
    out = Path(out_dir) if out_dir is not None else roots[0]
    out.mkdir(parents=True, exist_ok=True)

    csv_path = out / "summary.csv"
    md_path = out / "summary.md"
    png_path = out / "summary.png"
    curves_path = out / "curves.png"
    write_csv(runs, csv_path, metric)
    markdown = render_markdown(runs, rows, metric, mode, roots)
    md_path.write_text(markdown)
    if plots:
        plot_summary(rows, metric, mode, png_path)
        plot_curves(rows, curves_path)
    return SweepSummary(runs, rows, metric, mode, markdown, csv_path, md_path, png_path, curves_path, plots)
