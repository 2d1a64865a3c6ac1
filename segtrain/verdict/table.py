"""Per-case table: turn (config, seed, case, value) records into one paired matrix of case means.

Each configuration's value for a case is the mean of that case's metric over the configuration's seeds
(with k-fold cross-validation every case is scored once per seed, by the model that did not train on it,
so the mean over seeds is also the mean over folds). Only cases present, with a defined value, for every
ranked configuration are kept, so all comparisons are paired. Nothing is dropped silently: every case,
seed and configuration left out is returned with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CaseTable",
    "DroppedCase",
    "FailedConfig",
    "FailedSeed",
    "IncompleteSeed",
    "build_table",
    "records_from_nested",
]

Record = tuple[str, Hashable, Hashable, float]


@dataclass(frozen=True)
class DroppedCase:
    """A case left out of every comparison. ``reason`` is "undefined" (a NaN or infinite value, listed in
    ``configs`` for the configurations that produced one) or "missing" (``configs``: those without it)."""

    case: Hashable
    reason: str
    configs: tuple[str, ...]


@dataclass(frozen=True)
class FailedSeed:
    """A seed with no records for a configuration that has other seeds; the configuration is still ranked,
    on the mean over its remaining seeds."""

    config: str
    seed: Hashable
    reason: str


@dataclass(frozen=True)
class IncompleteSeed:
    """A seed that scored fewer cases than its configuration's other seeds: those cases are averaged over
    the seeds that have them."""

    config: str
    seed: Hashable
    missing_cases: tuple[Hashable, ...]


@dataclass(frozen=True)
class FailedConfig:
    """A configuration with no usable records: listed, not ranked."""

    config: str
    reason: str


@dataclass
class CaseTable:
    """``values[k, i]``: configuration ``configs[k]``'s metric on case ``cases[i]``, averaged over the seeds
    in ``seeds[configs[k]]``; ``seed_values[config][s, i]``: seed ``seeds[config][s]``'s value on case i (a
    case an incomplete seed lacks holds the configuration's mean over the seeds that have it)."""

    configs: tuple[str, ...]
    cases: tuple[Hashable, ...]
    values: np.ndarray
    seeds: dict[str, tuple[Hashable, ...]]
    dropped_cases: list[DroppedCase] = field(default_factory=list)
    failed_seeds: list[FailedSeed] = field(default_factory=list)
    incomplete_seeds: list[IncompleteSeed] = field(default_factory=list)
    failed_configs: list[FailedConfig] = field(default_factory=list)
    seed_values: dict[str, np.ndarray] = field(default_factory=dict)


def records_from_nested(
    data: Mapping[str, Mapping[Hashable, Mapping[Hashable, float] | None]],
) -> tuple[list[Record], dict[str, list[Hashable]]]:
    """Flatten ``{config: {seed: {case: value}}}``. A seed mapped to ``None`` is a failed run; returns the
    records and ``{config: [failed seeds]}``."""
    if not isinstance(data, Mapping):
        raise TypeError(f"expected a mapping config -> seed -> case -> value, got {type(data).__name__}")
    records: list[Record] = []
    failed: dict[str, list[Hashable]] = {}
    for config, per_seed in data.items():
        if not isinstance(per_seed, Mapping):
            raise TypeError(
                f"config {config!r}: expected a mapping seed -> case -> value, got {type(per_seed).__name__}"
            )
        for seed, per_case in per_seed.items():
            if per_case is None:
                failed.setdefault(config, []).append(seed)
                continue
            if not isinstance(per_case, Mapping):
                raise TypeError(
                    f"config {config!r} seed {seed!r}: expected a mapping case -> value (or None for a failed run), "
                    f"got {type(per_case).__name__}"
                )
            records.extend((config, seed, case, value) for case, value in per_case.items())
    return records, failed


def _as_record(row: Any) -> Record:
    if isinstance(row, Mapping):
        try:
            return row["config"], row["seed"], row["case"], row["value"]
        except KeyError as err:
            raise KeyError(
                f"record {dict(row)!r} lacks key {err.args[0]!r} (needs config, seed, case, value)"
            ) from None
    if isinstance(row, tuple | list) and len(row) == 4:
        return row[0], row[1], row[2], row[3]
    raise TypeError(f"record {row!r}: expected (config, seed, case, value) or a mapping with those keys")


def _as_value(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{where}: value {value!r} is not a number (use NaN for a metric undefined on a case)")
    return float(value)


def build_table(
    records: Iterable[Any],
    *,
    configs: Iterable[str] | None = None,
    seeds: Iterable[Hashable] | None = None,
    failed_seeds: Mapping[str, Iterable[Hashable]] | None = None,
) -> CaseTable:
    """Average each case over seeds per configuration and pair the cases across configurations.

    ``records``: (config, seed, case, value) tuples or mappings with those keys (other keys, e.g. a fold,
    are ignored: a case's fold is fixed by the split). ``configs``: the configurations expected (default:
    those in the records); one without records is a failed configuration. ``seeds``: the seeds every
    configuration should have (default: every seed seen in any configuration), so a configuration missing
    one is reported with a failed seed. ``failed_seeds``: seeds the caller knows failed, per configuration;
    their records, if any, are not used.
    """
    failed_given = {c: list(s) for c, s in (failed_seeds or {}).items()}
    configs = list(configs) if configs is not None else None
    # (config -> seed -> case -> value); duplicate keys are an error, not an overwrite
    tree: dict[str, dict[Hashable, dict[Hashable, float]]] = {}
    for row in records:
        config, seed, case, value = _as_record(row)
        if not isinstance(config, str):
            raise TypeError(f"record {row!r}: config label must be a str, got {type(config).__name__}")
        value = _as_value(value, f"config {config!r} seed {seed!r} case {case!r}")
        per_case = tree.setdefault(config, {}).setdefault(seed, {})
        if case in per_case:
            raise ValueError(f"config {config!r} seed {seed!r} case {case!r} appears twice")
        per_case[case] = value

    expected_configs = list(dict.fromkeys([*(configs or []), *tree, *failed_given]))
    unknown = sorted(set(tree) | set(failed_given)) if configs is None else sorted(set(expected_configs) - set(configs))
    if configs is not None and unknown:
        raise ValueError(f"records or failed_seeds name configs {unknown} not in configs= {configs}")
    all_seeds = (
        list(dict.fromkeys(seeds))
        if seeds is not None
        else list(dict.fromkeys(s for per_seed in tree.values() for s in per_seed))
    )

    failed_cfg: list[FailedConfig] = []
    failed_seed_list: list[FailedSeed] = []
    incomplete: list[IncompleteSeed] = []
    per_config_cases: dict[str, dict[Hashable, list[float]]] = {}
    per_seed_values: dict[str, dict[Hashable, dict[Hashable, float]]] = {}
    used_seeds: dict[str, tuple[Hashable, ...]] = {}
    for config in expected_configs:
        per_seed = tree.get(config, {})
        marked = set(failed_given.get(config, []))
        usable = {s: v for s, v in per_seed.items() if s not in marked and v}
        if not usable:
            why = f"all seeds failed ({sorted(map(str, marked))})" if marked else "no records"
            failed_cfg.append(FailedConfig(config, why))
            continue
        for s in failed_given.get(config, []):
            failed_seed_list.append(FailedSeed(config, s, "reported failed"))
        for s in all_seeds:
            if not per_seed.get(s) and s not in marked:  # absent, or an empty mapping in nested input
                failed_seed_list.append(FailedSeed(config, s, "no records"))
        union = list(dict.fromkeys(c for v in usable.values() for c in v))
        for s, v in usable.items():
            if len(v) < len(union):
                incomplete.append(IncompleteSeed(config, s, tuple(c for c in union if c not in v)))
        cases: dict[Hashable, list[float]] = {}
        for v in usable.values():
            for case, x in v.items():
                cases.setdefault(case, []).append(x)
        per_config_cases[config] = cases
        used_seeds[config] = tuple(usable)
        per_seed_values[config] = usable

    ranked = list(per_config_cases)
    if not ranked:
        reasons = "; ".join(f"{f.config}: {f.reason}" for f in failed_cfg) or "no records"
        raise ValueError(f"no configuration has usable records ({reasons})")

    all_cases = list(dict.fromkeys(c for cfg in ranked for c in per_config_cases[cfg]))
    dropped: list[DroppedCase] = []
    kept: list[Hashable] = []
    for case in all_cases:
        lacking = tuple(cfg for cfg in ranked if case not in per_config_cases[cfg])
        if lacking:
            dropped.append(DroppedCase(case, "missing", lacking))
            continue
        undefined = tuple(cfg for cfg in ranked if not all(map(math.isfinite, per_config_cases[cfg][case])))
        if undefined:
            dropped.append(DroppedCase(case, "undefined", undefined))
            continue
        kept.append(case)
    if not kept:
        raise ValueError(
            f"no case is scored, with a finite value, for every configuration {ranked}: "
            f"{sum(d.reason == 'missing' for d in dropped)} cases missing for some configuration, "
            f"{sum(d.reason == 'undefined' for d in dropped)} with NaN/inf values"
        )
    values = np.array(
        [[math.fsum(per_config_cases[cfg][c]) / len(per_config_cases[cfg][c]) for c in kept] for cfg in ranked],
        dtype=np.float64,
    )
    seed_values = {}
    for k, cfg in enumerate(ranked):
        grid = np.array([[v.get(c, math.nan) for c in kept] for v in per_seed_values[cfg].values()], dtype=np.float64)
        seed_values[cfg] = np.where(np.isnan(grid), values[k][None, :], grid)
    return CaseTable(
        configs=tuple(ranked),
        cases=tuple(kept),
        values=values,
        seeds=used_seeds,
        dropped_cases=dropped,
        failed_seeds=failed_seed_list,
        incomplete_seeds=incomplete,
        failed_configs=failed_cfg,
        seed_values=seed_values,
    )
