"""Name -> class registries with errors that say what was expected.

A registry is a dict with a decorator (fvcore's shape). ``build`` checks the name against the known
names (suggesting the closest) and the keywords against the constructor's signature, so a typo in a
config fails at start-up with a sentence instead of deep inside a constructor.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from typing import Any


class Registry:
    """Maps names to classes (or factory functions) of one kind (``"loss"``, ``"model"``, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str | None = None, aliases: Iterable[str] = ()) -> Callable:
        """Decorator: ``@LOSSES.register("dice")`` registers the class under that name (and aliases)."""

        def deco(obj: Callable[..., Any]) -> Callable[..., Any]:
            for key in (name or obj.__name__.lower(), *aliases):
                if key in self._entries and self._entries[key] is not obj:
                    raise ValueError(f"{self.kind} '{key}' is already registered to {self._entries[key]!r}")
                self._entries[key] = obj
            return obj

        return deco

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), self._entries, n=3)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise KeyError(f"Unknown {self.kind} '{name}'.{hint} Known {self.kind}s: {', '.join(self.names())}")
        return self._entries[name]

    def accepted_keywords(self, name: str) -> list[str] | None:
        """Keyword names the entry's constructor accepts, or None when it takes ``**kwargs`` of unknown use.

        A class whose ``__init__`` takes ``**kwargs`` passes them to its base class's constructor, so it accepts
        the base's keywords too (those first). A class that states its signature (``__signature__``, which
        ``inspect.signature`` reads too) accepts the keywords named there."""
        obj = self.get(name)
        if not isinstance(obj, type) or "__signature__" in vars(obj):
            return _named_keywords(obj)
        accepted: list[str] = []
        for klass in obj.__mro__:
            if "__init__" not in vars(klass):
                continue
            own = _named_keywords(vars(klass)["__init__"])
            if own is not None:
                return list(dict.fromkeys([key for key in own if key != "self"] + accepted))
            accepted = [key for key in _named_keywords(vars(klass)["__init__"], True) if key != "self"] + accepted
        return None

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Construct entry ``name``; an unknown keyword raises TypeError listing the accepted ones."""
        obj = self.get(name)
        accepted = self.accepted_keywords(name)
        if accepted is not None:
            unknown = sorted(set(kwargs) - set(accepted))
            if unknown:
                raise TypeError(
                    f"{self.kind} '{name}' got unknown keyword(s) {unknown}; accepted: {', '.join(accepted)}"
                )
        return obj(*args, **kwargs)


def _named_keywords(function: Callable[..., Any], passed_on: bool = False) -> list[str] | None:
    """The keyword names of ``function``'s signature; None when it also takes ``**kwargs`` (unless ``passed_on``)."""
    params = inspect.signature(function).parameters.values()
    if not passed_on and any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
