"""A loss's search space: the settings ``experiment=fair_loss_sweep`` tries, declared next to its defaults.

In a loss file of configs/loss/ the space is the ``search`` key, in one of two forms:

    search:                      # a grid: every combination of the listed values
      gamma: [1.0, 2.0, 3.0]
    search:                      # a list of settings, for knobs that go together
      - {alpha: 0.3, beta: 0.7}
      - {alpha: 0.7, beta: 0.3}

Keys are the loss's own keywords (``focal.gamma`` reaches into a compound's part). ``search`` never reaches
the loss: ``loss_kwargs`` drops it, and segtrain.run_config counts it as operational (it does not change a
trained model). Plain Python, no imports from the rest of segtrain; the Hydra sweeper turns each setting
into ``loss.<key>=<value>`` overrides.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

SEARCH_KEY = "search"
Setting = dict[str, Any]


def loss_kwargs(loss_config: Mapping[str, Any]) -> dict[str, Any]:
    """The loss section without its search space: what ``build_loss`` takes."""
    return {k: v for k, v in loss_config.items() if k != SEARCH_KEY}


def expand_space(space: Any, where: str = "loss.search") -> list[Setting]:
    """The settings of ``space`` (a grid mapping or a list of settings, module docstring), in order; ``[]``
    for no space (None). ValueError naming ``where`` for a malformed space or a setting listed twice."""
    if space is None:
        return []
    if isinstance(space, Mapping):
        if not space:
            return []
        for key, values in space.items():
            if not isinstance(values, Sequence) or isinstance(values, str) or not values:
                raise ValueError(f"{where}.{key}: expected a non-empty list of values, got {values!r}")
        keys = list(space)
        settings = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*space.values())]
    elif isinstance(space, Sequence) and not isinstance(space, str):
        settings = []
        for i, item in enumerate(space):
            if not isinstance(item, Mapping) or not item:
                raise ValueError(f"{where}[{i}]: expected a mapping of keyword -> value, got {item!r}")
            settings.append(dict(item))
        if len({tuple(sorted(s)) for s in settings}) > 1:
            raise ValueError(f"{where}: every setting of a list must set the same keys, got {settings}")
    else:
        raise ValueError(f"{where}: expected a mapping (a grid) or a list of settings, got {space!r}")
    seen: set[str] = set()
    for s in settings:
        for key, value in s.items():
            _check_value(value, f"{where}: {key}")
        fingerprint = json.dumps(s, sort_keys=True)
        if fingerprint in seen:
            raise ValueError(f"{where}: the setting {s} is listed twice")
        seen.add(fingerprint)
    return settings


def _check_value(value: Any, where: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not a finite number")
        return
    if isinstance(value, Sequence):
        for v in value:
            _check_value(v, where)
        return
    raise ValueError(f"{where}: expected a number, string, bool, null or list, got {value!r}")


def override_value(value: Any) -> str:
    """``value`` in Hydra's override grammar: 0.001, true, null, [1.0,0.5], 'text'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return "[" + ",".join(override_value(v) for v in value) + "]"


def setting_overrides(prefix: str, setting: Mapping[str, Any]) -> list[str]:
    """``{"gamma": 1.0}`` under ``loss`` -> ``["loss.gamma=1.0"]``."""
    return [f"{prefix}.{key}={override_value(value)}" for key, value in setting.items()]


def lookup(config: Mapping[str, Any], dotted: str) -> Any:
    """``config["a"]["b"]`` for ``"a.b"``; KeyError naming the key when a part is missing."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def same_value(a: Any, b: Any) -> bool:
    """Equal as configuration values (1 == 1.0; lists element-wise)."""
    if isinstance(a, Sequence) and not isinstance(a, str) and isinstance(b, Sequence) and not isinstance(b, str):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b
