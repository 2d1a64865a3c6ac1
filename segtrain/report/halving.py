"""The "Eliminated by successive halving" section of summary.md, from a sweep's halving.json.

A `hydra/sweeper=halving` sweep stops configurations at rungs; their jobs stay `paused` and are not in the
verdict above the section. The section lists each stopped configuration with the rung, its mean per-case
validation score there, and the Holm-adjusted p-value of the leader-vs-it test that stopped it (or the
budget rule: after rung r at most floor(N / eta^(r+1)) of the grid's N configurations go on, or what a
``max_share`` of the grid's epochs allows), the budget cuts the test did not separate from the leader, and
what the halving cost against the full grid.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HALVING_FILE = "halving.json"
REASONS = {
    "worse": "significantly worse than the rung's leader",
    "budget": "outside the rung's budget",
    "failed": "failed",
}


def read_halving(root: Path) -> dict[str, Any] | None:
    """halving.json of the sweep at `root`, or None when it is not a halving sweep. ValueError if unreadable."""
    return read_sweeper_state(Path(root) / HALVING_FILE, "rungs", list, "hydra/sweeper=halving")


def read_sweeper_state(path: Path, key: str, kind: type, sweeper: str) -> dict[str, Any] | None:
    """The JSON state a sweeper keeps in the sweep directory (None when absent): an object whose ``key`` holds
    a ``kind``; ValueError naming the file and what was expected otherwise."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get(key), kind):
        raise ValueError(f"{path}: expected an object with a {key!r} {kind.__name__} (written by {sweeper})")
    return data


def halving_section(roots: Sequence[Path]) -> list[str]:
    """Markdown lines of the section for every root with a halving.json ([] when none has one)."""
    lines: list[str] = []
    for root in roots:
        data = read_halving(root)
        if data is not None:
            lines += render_halving(data, root if len(roots) > 1 else None)
    return lines


def render_halving(data: dict[str, Any], root: Path | None = None) -> list[str]:
    s = data.get("settings", {})
    metric = s.get("metric", "dice")
    schedule = ", ".join(str(e) for e in data.get("schedule", []))
    lines = ["", "## Eliminated by successive halving" + (f" ({root})" if root else ""), ""]
    lines.append(
        f"Rungs at {schedule} epochs (eta {s.get('eta')}, b0 {s.get('b0')}). After each rung but the last, a "
        f"configuration was stopped when significantly worse than the rung's leader on validation {metric} "
        f"({_test(data)}, alpha {s.get('alpha')})"
        + (f" and more than {s['min_gap']:g} behind it" if s.get("min_gap") else "")
        + (
            f", and the rest went on as far as a budget of {s['max_share']:g} of the full grid's epochs allowed "
            "(room kept for one configuration to the end)"
            if s.get("max_share") is not None
            else ", and at most the top floor(N / eta^(r+1)) of the grid's N configurations went on after rung r"
        )
        + f"; never on a single seed or on fewer than {s.get('min_cases')} cases. Stopped jobs stay `paused` at "
        "their rung and are not in the verdict above."
    )
    trained, full = data.get("epochs_trained"), data.get("full_grid_epochs")
    if trained is not None and full:
        lines += ["", f"Training spent: {trained} epochs, {100 * trained / full:.0f}% of the full grid's {full}."]
    elif data.get("status") != "completed":
        lines += ["", f"The halving sweep is still running ({len(data['rungs'])} rungs decided)."]
    if data.get("winner"):
        lines += ["", f"Last rung: leader `{data['winner']}`; tie set: {', '.join(f'`{c}`' for c in data['tie_set'])}."]
    rows = [e for r in data["rungs"] for e in r.get("eliminated", [])]
    lines += ["", f"| configuration | rung | epochs | {metric} there | p (Holm) | why |"]
    lines.append("|---|---:|---:|---:|---:|---|")
    for e in rows:
        why = REASONS.get(e.get("reason"), str(e.get("reason")))
        if e.get("detail") and e.get("reason") != "worse":
            why += f": {e['detail']}"
        lines.append(
            f"| {_md(e['config'])} | {e['rung']} | {e['epochs']} | {_num(e.get('score'))} | {_num(e.get('p_holm'))} "
            f"| {_md(why)} |"
        )
    if not rows:
        lines.append("| (none) | | | | | |")
    lines += unseparated_lines(data, metric)
    last = len(data.get("schedule", [])) - 1
    notes = [f"rung {r['rung']}: {r['note']}" for r in data["rungs"] if r.get("note") and r["rung"] != last]
    if notes:
        lines += ["", "Rungs that cut nothing: " + "; ".join(notes) + "."]
    return lines


TESTS = {
    "seeds+cases": "called worse by the verdict: seeds and cases as sources of variance, Holm over the rung's pairs",
    "cases": "one-sided paired Wilcoxon over the seed-averaged cases, Holm over the comparisons with the leader",
}


def _test(data: dict[str, Any]) -> str:
    """The test the rungs cut with; halving.json written before the rungs recorded it used the case-level one."""
    used = list(dict.fromkeys(r.get("test", "cases") for r in data.get("rungs", [])))
    return (
        "; ".join(f"{TESTS.get(t, t)}" + (f" (rungs {_rungs(data, t)})" if len(used) > 1 else "") for t in used)
        or TESTS["seeds+cases"]
    )


def _rungs(data: dict[str, Any], test: str) -> str:
    return ", ".join(str(r["rung"]) for r in data["rungs"] if r.get("test", "cases") == test)


def unseparated_lines(data: dict[str, Any], metric: str) -> list[str]:
    """A warning for each rung whose budget stopped configurations the test did not tell from the leader."""
    gap = data.get("settings", {}).get("min_gap")
    lines = []
    for r in data["rungs"]:
        names = r.get("unseparated") or []
        if not names:
            continue
        means = r.get("means", {})
        listed = ", ".join(f"`{c}` ({_num(means.get(c))})" for c in names)
        lines += [
            "",
            f"**Cuts the data did not decide (rung {r['rung']}, {r['epochs']} epochs).** The budget stopped {listed}, "
            f"none significantly worse than the leader `{r['leader']}` ({_num(means.get(r['leader']))} {metric})"
            + (f" by more than {gap:g}" if gap else "")
            + ". The rung's ranking alone chose among them, and close rankings can still change by the last epoch. "
            "Raise `hydra.sweeper.b0` until the first rung separates the configurations (`curves.png` of a short "
            "full sweep shows when the validation curves stop crossing), give `hydra.sweeper.max_share` more room, "
            "or train the stopped ones to the end.",
        ]
    return lines


def _num(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.3g}" if abs(x) < 1e-3 else f"{x:.4f}"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
