"""``hydra/sweeper=fair`` (experiment=fair_loss_sweep): the Hydra side of segtrain.fair.

From the grid (``hydra.sweeper.params`` plus the command line) it takes the losses (``group_key``) and the
replicates (seeds, folds); every other key must have one value. For each loss it composes that loss's config,
reads its search space (``loss.search``, segtrain.losses.search), and makes its configurations: each setting
of the space (as ``loss.<key>=<value>`` overrides) times the ``shared`` knobs (``optimizer.lr``), each with
every replicate. A configuration is an ordinary set of overrides, so its job directory, per_case.csv and a
re-run with ``python train.py <the same overrides>`` are what they would be without this sweeper. Training
goes through the halving sweeper's ``_launch`` (one ``launcher.launch`` per rung), so every Hydra launcher
works.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from .halving_sweeper import HalvingSweeper

if TYPE_CHECKING:
    from segtrain.fair import LossGrid


class FairSweeper(HalvingSweeper):
    def __init__(
        self,
        eta: float,
        b0: int,
        min_cases: int,
        min_gap: float,
        alpha: float,
        metric: str,
        params: dict[str, str] | None,
        replicate_keys: list[str],
        fold_key: str,
        epochs_key: str,
        stop_key: str,
        group_key: str,
        space_key: str,
        shared: dict[str, str] | None,
        budget: float,
        compare_defaults: bool,
    ) -> None:
        super().__init__(
            eta, b0, min_cases, min_gap, alpha, metric, None, params, replicate_keys, fold_key, epochs_key, stop_key
        )
        self.group_key, self.space_key = group_key, space_key
        self.shared = dict(shared or {})
        self.budget, self.compare_defaults = budget, compare_defaults

    def sweep(self, arguments: list[str]) -> Any:
        from segtrain.fair import FairSettings, fair_sweep
        from segtrain.halving import HalvingSettings

        assert self.config is not None
        grid = self._grid(arguments)
        shared = self._shared(grid)
        if self.group_key not in grid or len(grid[self.group_key]) < 2:
            raise ValueError(
                f"hydra/sweeper=fair compares options of {self.group_key}: sweep two or more "
                f"({self.group_key}=dice,focal,...), e.g. through experiment=fair_loss_sweep"
            )
        groups = grid.pop(self.group_key)
        replicate = {k: grid.pop(k) for k in list(grid) if k in self.replicate_keys}
        varied = [k for k, v in grid.items() if len(v) > 1]
        if varied:
            raise ValueError(
                f"hydra/sweeper=fair tunes each {self.group_key}'s own space and the shared knobs "
                f"({', '.join(shared) or 'none'}); it does not sweep {', '.join(varied)}: give it one value, add it "
                "to hydra.sweeper.shared, or run one fair sweep per value"
            )
        fixed = [v[0] for v in grid.values()]
        grids = [self._loss_grid(option, fixed, shared, replicate) for option in groups]
        max_epochs = OmegaConf.select(self._job_config([*fixed, groups[0]], 1), self.epochs_key)
        if not isinstance(max_epochs, int):
            raise ValueError(f"{self.epochs_key} must be an integer (the full budget), got {max_epochs!r}")
        halving = HalvingSettings(
            eta=self.eta, b0=self.b0, max_epochs=max_epochs, min_cases=self.min_cases, min_gap=self.min_gap,
            alpha=self.alpha, metric=self.metric,
        )  # fmt: skip
        settings = FairSettings(halving, budget=self.budget, compare_defaults=self.compare_defaults)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        return fair_sweep(grids, settings, sweep_dir, self._launch)

    def _shared(self, grid: dict[str, list[str]]) -> dict[str, list[str]]:
        """key -> override strings of the shared knobs; a key swept on the command line replaces its values."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        out: dict[str, list[str]] = {}
        for o in parser.parse_overrides([f"{k}={v}" for k, v in self.shared.items()]):
            key = o.get_key_element()
            values = o.sweep_string_iterator() if o.is_sweep_override() else [o.get_value_element_as_str()]
            out[key] = [f"{key}={v}" for v in values]
        for key in list(out):
            if key in grid:
                out[key] = grid.pop(key)
        return out

    def _loss_grid(
        self, option: str, fixed: list[str], shared: dict[str, list[str]], replicate: dict[str, list[str]]
    ) -> LossGrid:
        from segtrain.fair import LossGrid
        from segtrain.halving import Job
        from segtrain.losses.search import expand_space, lookup, same_value, setting_overrides

        name = option.partition("=")[2]
        where = f"configs/{self.group_key}/{name}.yaml {self.space_key}"
        cfg = self._job_config([*fixed, option], 1)
        section = OmegaConf.to_container(OmegaConf.select(cfg, self.group_key), resolve=True)
        assert isinstance(section, dict)
        settings = expand_space(section.get(self.space_key), where)
        for setting in settings:
            for key in setting:
                try:
                    lookup(section, key)
                except KeyError:
                    raise ValueError(
                        f"{where}: {key!r} is not a key of {self.group_key}={name} (its keys: "
                        f"{', '.join(k for k in section if k != self.space_key)})"
                    ) from None
        defaults_setting = next(
            (s for s in settings if all(same_value(lookup(section, k), v) for k, v in s.items())), None
        )
        shared_default = {}
        for key, values in shared.items():
            current = OmegaConf.select(cfg, key)
            match = [v for v in values if same_value(_parse_value(v), current)]
            shared_default[key] = match[0] if match else f"{key}={current}"
        points = [setting_overrides(self.group_key, s) for s in settings] or [[]]
        jobs: list[Job] = []
        space: list[dict[str, Any]] = []
        for point, setting in zip(points, settings or [{}], strict=True):
            for combo in itertools.product(*shared.values()):
                config = [option, *point, *combo]
                jobs += self._replicates(config, fixed, replicate)
                space.append({**setting, **{c.partition("=")[0]: c.partition("=")[2] for c in combo}})
        if settings and defaults_setting is None:
            defaults = [option, *shared_default.values()]  # the defaults are not a point of its space
        else:
            point = setting_overrides(self.group_key, defaults_setting) if settings else []
            defaults = [option, *point, *shared_default.values()]
        label = ",".join(defaults)
        in_grid = [j for j in jobs if j.config == label]
        defaults_jobs = in_grid or self._replicates(defaults, fixed, replicate)
        return LossGrid(name, jobs, label, defaults_jobs, space)

    def _replicates(self, config: list[str], fixed: list[str], replicate: dict[str, list[str]]) -> list:
        from segtrain.halving import Job

        label = ",".join(config)
        out = []
        for combo in itertools.product(*replicate.values()):
            chosen = dict(zip(replicate, combo, strict=True))
            seed = ",".join(v for k, v in chosen.items() if k != self.fold_key) or "-"
            fold = chosen[self.fold_key].partition("=")[2] if self.fold_key in chosen else None
            overrides = [*fixed, *config, *combo]
            out.append(Job(label, seed, fold, overrides, self._job_dir(overrides, 1)))
        return out


def _parse_value(text: str) -> Any:
    """An override's value as YAML would read it ("3e-3" -> 0.003)."""
    value = text.partition("=")[2]
    try:
        return float(value)
    except ValueError:
        return OmegaConf.create({"v": value}).v
