"""Preemption signals: the process-level half of a graceful stop (the loop's half is ``Trainer.should_stop``).

    with PreemptionSignals(["SIGTERM", "SIGUSR1"]) as signals:
        trainer.fit(should_stop=signals.received)
    if trainer.preempted_at is not None:
        signals.hand_over()        # the previous handler (submitit's requeue), else exit PREEMPTED_EXIT_CODE

The handlers only set a flag: a Python handler runs between bytecodes of the main thread, so doing the save
there would write a checkpoint in the middle of an optimizer step. The loop asks the flag after each step.

Under submitit (hydra/launcher=slurm, slurm_local) the job's process already has handlers: its preemption
signal (``SUBMITIT_PREEMPT_SIGNAL``, USR2 by default) checkpoints the submission and requeues it, SIGTERM is
logged and ignored. Ours replace them while training runs and remember them; once last.pt is written,
``hand_over`` calls the one of the signal that arrived, so submitit requeues the job through its own
mechanism (the requeued job re-runs in the same run directory and resumes from last.pt).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

log = logging.getLogger("segtrain")

# sysexits.h EX_TEMPFAIL: "a temporary failure; the user is invited to retry" (the job wants to be re-run)
PREEMPTED_EXIT_CODE = 75


def signal_number(name: str) -> signal.Signals:
    """``SIGTERM``, ``TERM`` or ``15`` -> signal.SIGTERM; an unknown name is an error listing the usual ones."""
    text = str(name).strip().upper()
    if text.isdigit():
        return signal.Signals(int(text))
    try:
        return signal.Signals[text if text.startswith("SIG") else f"SIG{text}"]
    except KeyError:
        raise ValueError(
            f"job.preempt_signals: unknown signal {name!r}; expected names such as SIGTERM, SIGUSR1, SIGUSR2"
        ) from None


class PreemptionSignals:
    """Installs flag-setting handlers for ``names`` on enter and puts the previous ones back on exit."""

    def __init__(self, names: list[str] | tuple[str, ...]) -> None:
        self.signals = [signal_number(n) for n in names]
        self.previous: dict[signal.Signals, Any] = {}
        self.signum: signal.Signals | None = None  # the first preemption signal that arrived
        self._announced = False

    def received(self) -> bool:
        """Whether a preemption signal arrived (asked by the loop, which is where it is logged: a handler that
        wrote to a stream the interrupted code was writing to would fail with a reentrant-call error)."""
        if self.signum is not None and not self._announced:
            self._announced = True
            log.warning("received %s: stopping after this optimizer step", self.signum.name)
        return self.signum is not None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signal.Signals(signum)

    def __enter__(self) -> PreemptionSignals:
        if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
            log.warning("not in the main thread: preemption signals are not handled (job.preempt_signals)")
            return self
        for sig in self.signals:
            self.previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def hand_over(self) -> NoReturn:
        """After the trainer wrote last.pt: run the handler the arrived signal had before ours (submitit's
        checkpoint-and-requeue, which exits itself), then exit with ``PREEMPTED_EXIT_CODE``."""
        previous: Callable[..., Any] | Any = self.previous.get(self.signum) if self.signum else None
        if callable(previous):
            log.info("handing %s over to the handler installed before segtrain's (%r)", self.signum.name, previous)
            previous(int(self.signum), None)
        raise SystemExit(PREEMPTED_EXIT_CODE)
