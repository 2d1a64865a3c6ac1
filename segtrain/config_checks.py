"""The config checks, in one place: the start-up type check of the groups whose keys depend on the option
chosen (optimizer, scheduler: against the constructor's signature), the ``metrics`` section, and the consistency
across groups that no single group can check (model against data set, loss mode, threshold tuning, trackers).

The groups whose keys are fixed (``trainer``, ``job``) are typed by their schemas (segtrain/schemas.py), which
Hydra checks as it composes the config. For optimizer and scheduler the expected type of each key is read from
the code that takes it (the optimizer's constructor, the scheduler function), so a wrong value
(``optimizer.lr=abc``) stops before any training with the key named, instead of a TypeError from deep inside
the optimizer. Unknown keys are left to the constructors, which list the accepted ones.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from segtrain.modes import BINARY, MULTICLASS

# model key -> dataset key that must hold the same number
MODEL_DATASET_KEYS = (("classes", "num_classes"), ("in_channels", "in_channels"))


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
        return all(_matches(v, args[0]) for v in value) if args else True
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a hint this check does not model: the constructor decides


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        names = [_describe(a) for a in args if typing.get_origin(a) is not None or a.__module__ == "builtins"]
        return " or ".join(dict.fromkeys(names))
    if hint is type(None):
        return "null"
    if hint is bool:
        return "true or false"
    if origin is not None:
        return f"a list [{', '.join(_describe(a) for a in args if a is not Ellipsis)}]"
    names = {float: "a number", int: "an integer", str: "a string"}
    return names.get(hint) or getattr(hint, "__name__", str(hint))


def _article(name: str) -> str:
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def check_types(group: str, values: Mapping[str, Any], hints: Mapping[str, Any]) -> None:
    """Raise TypeError naming ``group.key``, its value and the expected type for the first mismatch."""
    for key, value in values.items():
        if key in hints and not _matches(value, hints[key]):
            raise TypeError(
                f"{group}.{key}={value!r} is {_article(type(value).__name__)}; it must be {_describe(hints[key])}"
            )


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(fn)
    hints.pop("return", None)
    return hints


# the ``metrics`` section (configs/train.yaml, configs/eval.yaml): the end-of-job per-case evaluation
METRICS_KEYS: dict[str, Any] = {"nsd_tolerance": float}


def check_metrics_config(metrics: Mapping[str, Any] | None) -> float:
    """The ``metrics`` section's NSD tolerance (pixels), after checking its keys, type and range."""
    if metrics is None:
        raise ValueError("the config has no 'metrics' section; expected metrics: {nsd_tolerance: <pixels>}")
    unknown = sorted(set(metrics) - set(METRICS_KEYS))
    if unknown:
        raise ValueError(f"unknown key(s) metrics.{', metrics.'.join(unknown)}; accepted: {', '.join(METRICS_KEYS)}")
    check_types("metrics", metrics, METRICS_KEYS)
    tolerance = metrics.get("nsd_tolerance")
    if tolerance is None or not 0 <= float(tolerance) < float("inf"):
        raise ValueError(f"metrics.nsd_tolerance={tolerance!r} must be a finite number >= 0 (pixels)")
    return float(tolerance)


def check_config_types(
    optimizer: Mapping[str, Any], scheduler: Mapping[str, Any], metrics: Mapping[str, Any] | None = None
) -> None:
    """Type-check the plain (resolved) optimizer and scheduler groups, and ``metrics`` when given."""
    from segtrain.optim import OPTIMIZERS, SCHEDULERS

    for group, registry, values in (("optimizer", OPTIMIZERS, optimizer), ("scheduler", SCHEDULERS, scheduler)):
        name = values.get("name")
        if not isinstance(name, str):
            raise TypeError(f"{group}.name={name!r} must be one of: {', '.join(registry.names())}")
        entry = registry.get(name)
        hints = _hints(entry.__init__ if isinstance(entry, type) else entry)
        check_types(group, {k: v for k, v in values.items() if k != "name"}, hints)
    if metrics is not None:
        check_metrics_config(metrics)


def check_model_fits_dataset(model: Mapping[str, Any], dataset: Mapping[str, Any], fix: str) -> None:
    """``model.classes`` and ``model.in_channels`` equal the data set's ``num_classes`` and ``in_channels``;
    else a ValueError naming both values, ending with ``fix`` (what to do about it)."""
    for key, ds_key in MODEL_DATASET_KEYS:
        if int(model[key]) != int(dataset[ds_key]):
            detail = ""
            if key == "classes":
                binary = dataset.get("mode") == BINARY
                detail = f" ({'binary: one sigmoid output' if binary else list(dataset.get('class_names') or [])})"
            raise ValueError(
                f"model.{key}={model[key]} but dataset '{dataset.get('name')}' has {ds_key}={dataset[ds_key]}"
                f"{detail}; {fix}"
            )


def check_config(cfg: Mapping[str, Any]) -> None:
    """Cross-group consistency of a training config (``model``, ``dataset``, ``loss``, ``job``, ``trainer``)
    that no single group can check, and the ``logger`` section's trackers."""
    ds = cfg["dataset"]
    check_model_fits_dataset(
        cfg["model"], ds, "leave model.classes/in_channels at ${dataset.num_classes}/${dataset.in_channels} "
        "or make them equal"
    )  # fmt: skip
    check_logger_config(cfg.get("logger"))
    loss_mode = (cfg.get("loss") or {}).get("mode")
    if loss_mode not in (None, ds["mode"]):
        raise ValueError(f"loss.mode={loss_mode} but dataset.mode={ds['mode']}; they must agree")
    job = cfg.get("job") or {}
    if job.get("tune_threshold") and ds["mode"] == MULTICLASS:
        raise ValueError(
            "job.tune_threshold=true but dataset.mode=multiclass: a probability threshold applies to "
            "sigmoid outputs (binary, multilabel); multiclass predictions are argmax. Set it to false"
        )
    if job.get("select") == "best" and not (cfg.get("trainer") or {}).get("checkpoint", True):
        raise ValueError("job.select=best loads checkpoints/best.pt, so it needs trainer.checkpoint=true")


def check_logger_config(logger: Mapping[str, Any] | None) -> None:
    """The resolved ``logger`` section: its keys are tracker names (``configs/logger/*.yaml``, several merged by
    ``logger=[tensorboard,mlflow]``); ``tensorboard`` is true or false, ``mlflow`` and ``wandb`` hold their
    settings, whose keys and types are those of ``segtrain.trackers``' settings classes."""
    import dataclasses

    from segtrain.trackers import KNOWN

    for name, value in (logger or {}).items():
        if name not in KNOWN:
            raise ValueError(f"unknown logger '{name}' in the logger section; known: {', '.join(KNOWN)}")
        settings = KNOWN[name]
        if settings is None:
            check_types("logger", {name: value}, {name: bool})
            continue
        if value in (None, False):
            continue
        if not isinstance(value, Mapping):
            raise TypeError(f"logger.{name}={value!r} must hold its settings (configs/logger/{name}.yaml)")
        fields = {f.name for f in dataclasses.fields(settings)}
        unknown = sorted(set(value) - fields)
        if unknown:
            keys = ", ".join(f"logger.{name}.{k}" for k in unknown)
            raise ValueError(f"unknown key(s) {keys}; accepted: {', '.join(sorted(fields))}")
        check_types(f"logger.{name}", value, _hints(settings))
