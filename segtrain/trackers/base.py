"""The common side of the trackers: the interface each backend implements, and ``Trackers``, the fan-out the
trainer and the job layer talk to, which keeps a failing backend from taking the job with it."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger("segtrain")

# a job's final status -> what a tracker is told at the end (``Tracker.finish``)
STATUSES = ("completed", "paused", "preempted", "failed")  # preempted: a re-run resumes the same run


class Tracker(Protocol):
    """One experiment tracker behind ``logger=<name>``; plain Python values in, no Hydra.

    ``start`` opens (or, on resume, reopens) the job's run: ``config`` is the resolved config, ``run_info``
    what metrics.json says about the job (loss, model, dataset, seed, what a sweep varies, precision), ``step``
    the epochs already done (0 for a fresh job), ``metrics`` the summary scalars (``best/...``). ``start`` may
    be called again by a later ``fit`` of the same trainer: a started tracker ignores it.
    """

    name: str
    takes_images: bool  # the trainer draws prediction overlays only when some tracker shows them

    def start(self, config: dict[str, Any], run_info: dict[str, Any], step: int, metrics: Sequence[str]) -> None: ...

    def log_scalars(self, values: dict[str, float], step: int) -> None: ...

    def log_image(self, tag: str, image: Any, step: int) -> None: ...

    def log_artifacts(self, paths: Sequence[Path], checkpoint: Path | None) -> None: ...

    def flush(self) -> None: ...

    def finish(self, status: str) -> None: ...

    def record(self) -> dict[str, Any]: ...


def safe_uri(uri: str) -> str:
    """``uri`` without a user name or password (``postgresql://me:secret@db/x`` -> ``postgresql://***@db/x``), for
    metrics.json and the run-id files."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def shareable_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the tracking URIs it holds stripped of user names and passwords (``safe_uri``), for a
    tracker's params or config, which other people read."""
    out = dict(config)
    logger = config.get("logger")
    if isinstance(logger, dict):
        out["logger"] = {
            name: ({**section, "tracking_uri": safe_uri(section["tracking_uri"])} if _has_uri(section) else section)
            for name, section in logger.items()
        }
    return out


def _has_uri(section: Any) -> bool:
    return isinstance(section, dict) and isinstance(section.get("tracking_uri"), str)


def finite_scalars(values: dict[str, Any]) -> dict[str, float]:
    """The values a tracker can plot: numbers, not None or NaN (a class absent from the split)."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            continue
        out[key] = float(value)
    return out


class Trackers:
    """Every tracker of a job behind one object. A backend that raises is warned about once (the tracker's name
    and the error), left out for the rest of the job, and ``record()`` says what it missed::

        {"mlflow": {"ok": false, "error": "MlflowException: ...", "not_logged": ["scalars from epoch 3 on",
                    "artifacts (metrics.json, per_case.csv)", "end of run (completed)"]}}

    A working backend's entry is ``{"ok": true, ...}`` with where its run is (``Tracker.record``). The job's own
    files never depend on a tracker."""

    def __init__(self, backends: Sequence[Tracker] = ()) -> None:
        self.backends = list(backends)
        self.failed: dict[str, dict[str, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self.backends)

    @property
    def takes_images(self) -> bool:
        return any(b.takes_images for b in self.backends if b.name not in self.failed)

    def _each(self, what: str, kind: str, method: str, *args: Any, only: str | None = None) -> None:
        for backend in self.backends:
            if only is not None and backend.name != only:
                continue
            failure = self.failed.get(backend.name)
            if failure is not None:
                # "scalars from epoch 3 on" once, not once per epoch; a flush has nothing of its own to miss
                if kind not in failure["kinds"] and kind != "flush":
                    failure["kinds"].add(kind)
                    failure["not_logged"].append(what)
                continue
            try:
                getattr(backend, method)(*args)
            except Exception as err:  # a tracker never fails the job: its files are written regardless
                error = f"{type(err).__name__}: {err}".strip().splitlines()[0][:500]
                self.failed[backend.name] = {"error": error, "not_logged": [what], "kinds": {kind}}
                log.warning(
                    "logger %s failed while logging the %s and is off for the rest of this job (the run "
                    "directory's own files are complete; metrics.json 'tracking' lists what it missed): %s",
                    backend.name, what, error,
                )  # fmt: skip

    def start(
        self, config: dict[str, Any], run_info: dict[str, Any], step: int = 0, metrics: Sequence[str] = ()
    ) -> None:
        self._each("run start (config, tags)", "start", "start", config, run_info, step, list(metrics))

    def log_scalars(self, values: dict[str, Any], step: int) -> None:
        scalars = finite_scalars(values)
        if scalars:
            self._each(f"scalars from epoch {step} on", "scalars", "log_scalars", scalars, step)

    def log_image(self, tag: str, image: Any, step: int) -> None:
        for backend in self.backends:
            if backend.takes_images:
                self._each(f"images from epoch {step} on", "images", "log_image", tag, image, step, only=backend.name)

    def log_artifacts(self, paths: Sequence[Path], checkpoint: Path | None = None) -> None:
        present = [Path(p) for p in paths if Path(p).is_file()]
        names = ", ".join(p.name for p in present)
        ckpt = Path(checkpoint) if checkpoint is not None and Path(checkpoint).is_file() else None
        self._each(f"artifacts ({names})", "artifacts", "log_artifacts", present, ckpt)

    def flush(self) -> None:
        self._each("buffered events", "flush", "flush")

    def finish(self, status: str) -> dict[str, Any]:
        """End every run with the job's ``status`` (completed, paused, preempted, failed); returns ``record()``."""
        if status not in STATUSES:
            raise ValueError(f"status={status!r}; expected one of {', '.join(STATUSES)}")
        self._each(f"end of run ({status})", "finish", "finish", status)
        return self.record()

    def record(self) -> dict[str, Any]:
        """metrics.json ``tracking``: per tracker, ``ok`` and where its run is, or what it did not log and why."""
        out: dict[str, Any] = {}
        for backend in self.backends:
            failure = self.failed.get(backend.name)
            if failure is None:
                try:
                    out[backend.name] = {"ok": True, **backend.record()}
                except Exception as err:  # the record is a courtesy: it must not fail the job either
                    out[backend.name] = {"ok": True, "record_error": f"{type(err).__name__}: {err}"[:200]}
            else:
                out[backend.name] = {"ok": False, "error": failure["error"], "not_logged": list(failure["not_logged"])}
        return out


def require(package: str, logger: str) -> Any:
    """Import ``package`` for ``logger=<logger>``, or stop with one line naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        raise ImportError(f'logger={logger} needs the {package} package: pip install "segtrain[{logger}]"') from None
