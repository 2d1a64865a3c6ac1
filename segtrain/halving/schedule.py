"""The rungs of successive halving: how many epochs every surviving job has trained after each rung."""

from __future__ import annotations


def rung_epochs(b0: int, eta: float, max_epochs: int) -> list[int]:
    """[b0, b0*eta, b0*eta^2, ... (each < max_epochs, rounded), max_epochs].

    Every job trains to b0 epochs; after each rung the survivors train on to eta times the epochs; the last
    rung is the full budget (pick max_epochs = b0 * eta^k for equal steps). Raises ValueError for eta <= 1 or
    a b0 outside 1..max_epochs-1 (a first rung as long as the full budget would cut nothing before the end).
    """
    if isinstance(eta, bool) or not isinstance(eta, int | float) or not eta > 1:
        raise ValueError(f"hydra.sweeper.eta must be a number > 1 (each rung trains eta times longer), got {eta!r}")
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 2:
        raise ValueError(f"successive halving needs trainer.max_epochs >= 2, got {max_epochs!r}")
    if isinstance(b0, bool) or not isinstance(b0, int) or not 1 <= b0 < max_epochs:
        raise ValueError(
            f"hydra.sweeper.b0={b0!r}: the first rung's epochs must be an integer in 1..{max_epochs - 1} "
            f"(trainer.max_epochs={max_epochs}); a longer first rung would train every job to the end"
        )
    out = [b0]
    while True:
        nxt = max(out[-1] + 1, round(out[-1] * eta))
        if nxt >= max_epochs:
            break
        out.append(nxt)
    return [*out, max_epochs]
