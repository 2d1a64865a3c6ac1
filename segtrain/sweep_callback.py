"""Hydra glue: write the sweep report (summary.md, verdict.json, plots) when a multirun ends.

Configured in ``configs/hydra/default.yaml`` as ``hydra.callbacks.sweep_report``; Hydra calls
``on_multirun_end`` in the launching process after the sweeper returns, for the basic sweeper, the halving
sweeper and Optuna alike. A sweep whose jobs raised ends without it (Hydra re-raises the job's error
first): re-run the command into the same ``hydra.sweep.dir`` and the completed jobs are skipped, the rest
finish, and the report is written then. ``hydra.callbacks.sweep_report.enabled=false`` turns it off.
With ``logger=mlflow`` or ``logger=wandb`` the report's files are also logged to the tracker
(``segtrain.trackers.log_sweep_report``: an MLflow run named ``sweep-report`` in the sweep's experiment).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("segtrain")


class SweepReport(Callback):
    """``on_multirun_end``: ``segtrain.report.summarize(<sweep dir>)``, the path of summary.md printed, and the
    report's files logged to the sweep's trackers."""

    def __init__(self, enabled: bool = True, plots: bool = True) -> None:
        self.enabled = enabled
        self.plots = plots

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        from segtrain.report import summarize

        try:
            result = summarize(sweep_dir, plots=self.plots)
        except (FileNotFoundError, ValueError) as exc:  # e.g. no job left a metrics.json: say so, do not crash
            log.warning("no sweep report for %s: %s", sweep_dir, exc)
            return
        first = next((line for line in result.markdown.splitlines()[1:] if line.strip()), "")
        log.info("%s", first)
        print(f"sweep report: {result.md_path}", flush=True)
        if "logger" in config:
            from segtrain.trackers import log_sweep_report

            logger = OmegaConf.to_container(config.logger, resolve=True)
            log_sweep_report(logger, sweep_dir, result.files, OmegaConf.select(config, "paths.output_dir"))
