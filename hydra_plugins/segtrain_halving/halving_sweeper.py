"""``hydra/sweeper=halving``: the Hydra side of segtrain.halving.

It expands the grid as the basic sweeper does (``hydra.sweeper.params`` plus the command line's sweeps),
splits it into configurations and their replicates (``replicate_keys``: seeds and folds stay together), finds
each job's directory (the same on every rung, since ``stop_key`` is left out of its name), and hands
segtrain.halving a ``launch(jobs, epochs)`` that is one ``launcher.launch`` call per rung with
``stop_key=epochs`` added to every job's overrides, so every Hydra launcher (basic, joblib, submitit) works.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    from segtrain.halving import Job

# segtrain.halving (and scipy behind it) loads when a halving sweep runs, not when Hydra scans its plugins at
# every start-up: `python train.py --help` would otherwise pay about 1.7 s for scipy.stats.

log = logging.getLogger(__name__)


class HalvingSweeper(Sweeper):
    def __init__(
        self,
        eta: float,
        b0: int,
        min_cases: int,
        min_gap: float,
        alpha: float,
        metric: str,
        max_share: float | None,
        params: dict[str, str] | None,
        replicate_keys: list[str],
        fold_key: str,
        epochs_key: str,
        stop_key: str,
    ) -> None:
        super().__init__()
        self.eta, self.b0, self.min_cases, self.alpha, self.metric = eta, b0, min_cases, alpha, metric
        self.min_gap, self.max_share = min_gap, max_share
        self.params = dict(params or {})
        self.replicate_keys, self.fold_key = list(replicate_keys), fold_key
        self.epochs_key, self.stop_key = epochs_key, stop_key
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ------------------------------------------------------------------ the grid
    def _grid(self, arguments: list[str]) -> dict[str, list[str]]:
        """key -> its override strings, in first-mention order (a later mention of a key replaces its values)."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        grid: dict[str, list[str]] = {}
        for o in parser.parse_overrides([*(f"{k}={v}" for k, v in self.params.items()), *arguments]):
            key = o.get_key_element()
            if o.is_sweep_override():
                if not o.is_discrete_sweep():
                    raise ValueError(f"hydra/sweeper=halving sweeps lists of values; {o.input_line!r} is not one")
                grid[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
            else:
                grid[key] = [f"{key}={o.get_value_element_as_str()}"]
        for key in (self.stop_key, self.epochs_key):
            if key in grid and (key == self.stop_key or len(grid[key]) > 1):
                raise ValueError(
                    f"hydra/sweeper=halving sets {self.stop_key} per rung and trains to one {self.epochs_key}; "
                    f"do not {'set' if key == self.stop_key else 'sweep'} {key}"
                )
        return grid

    def _jobs(self, grid: dict[str, list[str]]) -> list[Job]:
        from segtrain.halving import Job

        replicate = [k for k in grid if k in self.replicate_keys]
        varied = [k for k in grid if k not in replicate and len(grid[k]) > 1]
        jobs = []
        for combo in itertools.product(*grid.values()):
            chosen = dict(zip(grid, combo, strict=True))
            config = ",".join(chosen[k] for k in varied) or "(defaults)"
            seed = ",".join(chosen[k] for k in replicate if k != self.fold_key) or "-"
            fold = chosen[self.fold_key].partition("=")[2] if self.fold_key in chosen else None
            overrides = list(combo)
            jobs.append(Job(config, seed, fold, overrides, self._job_dir(overrides, 1)))
        return jobs

    def _job_config(self, overrides: list[str], epochs: int) -> DictConfig:
        assert self.hydra_context is not None and self.config is not None
        loader = self.hydra_context.config_loader
        return loader.load_sweep_config(self.config, [*overrides, f"{self.stop_key}={epochs}"])

    def _job_dir(self, overrides: list[str], epochs: int) -> Path:
        cfg = self._job_config(overrides, epochs)
        return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)

    # ------------------------------------------------------------------ the sweep
    def sweep(self, arguments: list[str]) -> Any:
        from segtrain.halving import HalvingSettings, configurations, successive_halving

        assert self.config is not None and self.launcher is not None
        grid = self._grid(arguments)
        jobs = self._jobs(grid)
        configurations(jobs)  # a grid of one configuration: the error before any composing
        first = jobs[0].overrides
        if self._job_dir(first, 2) != jobs[0].path:
            raise ValueError(
                f"the job directory changes with {self.stop_key}, so a rung could not resume the last one: add "
                f"{self.stop_key} to hydra.job.config.override_dirname.exclude_keys"
            )
        max_epochs = OmegaConf.select(self._job_config(first, 1), self.epochs_key)
        if not isinstance(max_epochs, int):
            raise ValueError(f"{self.epochs_key} must be an integer (the full budget), got {max_epochs!r}")
        settings = HalvingSettings(
            eta=self.eta, b0=self.b0, max_epochs=max_epochs, min_cases=self.min_cases, min_gap=self.min_gap,
            alpha=self.alpha, metric=self.metric, max_share=self.max_share,
        )  # fmt: skip
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        return successive_halving(jobs, settings, sweep_dir, self._launch)

    def _launch(self, jobs: list[Job], epochs: int) -> dict[Path, str]:
        """One launcher.launch call: ``jobs`` trained to ``epochs``. A failed job is logged and returned, not
        raised: the rung's decision reads what each job left on disk, and a configuration whose jobs all failed
        is stopped."""
        assert self.launcher is not None
        batch = [[*j.overrides, f"{self.stop_key}={epochs}"] for j in jobs]
        results = self.launcher.launch(batch, initial_job_idx=self.job_idx)
        self.job_idx += len(batch)
        errors = {}
        for job, r in zip(jobs, results, strict=True):
            if r.status == JobStatus.FAILED:
                errors[job.path] = f"{type(r._return_value).__name__}: {r._return_value}".splitlines()[0][:300]
                log.warning("job %s failed at %d epochs: %s", job.path.name, epochs, errors[job.path])
        return errors
