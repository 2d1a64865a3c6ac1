"""Which settings make two runs the same experiment, and how two resolved configs differ.

A job directory is reused when a sweep is re-run (a completed job is skipped, an unfinished one resumes
from last.pt). That is only right when the job's stored config and the new one agree on everything that
changes results; the keys below change only where files go, what is logged, or how fast it runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from segtrain.schemas import EVALUATION, OPERATIONAL, RENAMED, added_keys, keys_of_kind

# dotted keys (and everything under them) that do not change the trained model or its metrics: the groups
# without a schema listed here, the schema'd ones (trainer, job) marked ``operational`` in segtrain/schemas.py
OPERATIONAL_KEYS = (
    "paths",
    "logger",
    "hydra",
    "dataset.root",
    "loss.search",  # the settings experiment=fair_loss_sweep tries; the loss never sees it
    "dataset.loader.num_workers",
    "dataset.loader.pin_memory",
    "dataset.loader.persistent_workers",
    "dataset.loader.prefetch_factor",
    *keys_of_kind(OPERATIONAL),
)
# keys that leave the trained model alone but change the end-of-job evaluation (per_case.csv, metrics.json
# val/test): a completed job re-run with another value is refused like any other difference (its records
# would be stale), while an unfinished job may resume with them changed (resume_ignored_keys)
EVALUATION_KEYS = (*keys_of_kind(EVALUATION), "metrics", "dataset.test_split")
ABSENT = "<absent>"
# keys added after records were first written, with the value that does what the code did before them: a
# stored config that lacks one is read with that value, so that re-running an older sweep is not refused
ADDED_KEYS: dict[str, Any] = {**added_keys(), "dataset.background_index": 0}


def resume_ignored_keys() -> tuple[str, ...]:
    """Keys on which a checkpoint's config may differ from the current one when training resumes from it:
    the evaluation keys (used after training) and ``trainer.max_epochs`` (a longer run continues)."""
    return ("trainer.max_epochs", *EVALUATION_KEYS)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _ignored(key: str, ignore: Iterable[str]) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in ignore)


def config_differences(
    stored: Mapping[str, Any], current: Mapping[str, Any], ignore: Iterable[str] = ()
) -> list[tuple[str, Any, Any]]:
    """(key, stored value, current value) for every result-changing key on which the two configs differ."""
    skip = (*OPERATIONAL_KEYS, *ignore)
    stored = {RENAMED.get(k, k): v for k, v in flatten(stored).items()}  # recorded before a key moved group
    old = {k: v for k, v in stored.items() if not _ignored(k, skip)}
    new = {k: v for k, v in flatten(current).items() if not _ignored(k, skip)}
    old.update({k: v for k, v in ADDED_KEYS.items() if k in new and k not in old})
    keys = sorted(set(old) | set(new))
    return [(k, old.get(k, ABSENT), new.get(k, ABSENT)) for k in keys if old.get(k, ABSENT) != new.get(k, ABSENT)]


def describe_differences(diffs: list[tuple[str, Any, Any]], limit: int = 8) -> str:
    """``optimizer.lr: 0.003 (stored) != 0.01 (now); ...``"""
    parts = [f"{k}: {old!r} (stored) != {new!r} (now)" for k, old, new in diffs[:limit]]
    more = f"; and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return "; ".join(parts) + more
