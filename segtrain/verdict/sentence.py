"""One paragraph that states a verdict in words, for the sweep report."""

from __future__ import annotations

import math
from collections.abc import Mapping

from segtrain.verdict.result import Comparison, Verdict

__all__ = ["sentence"]


def _decimals(c: Comparison) -> int:
    """Decimals that show the interval's width to about one significant digit (0.21 [0.19, 0.23]), at least
    two (a wide interval still shows the difference) and at most three."""
    width = c.ci_high - c.ci_low
    if not math.isfinite(width) or width <= 0:
        return 3
    return min(3, max(2, -math.floor(math.log10(width))))


def _by(c: Comparison, metric: str) -> str:
    d = _decimals(c)
    if not math.isfinite(c.ci_low):
        return f"{c.diff_mean:.3f} {metric}, training noise not measured"
    return f"{c.diff_mean:.{d}f} {metric} [{c.ci_low:.{d}f}, {c.ci_high:.{d}f}]"


def _names(configs: list[str]) -> str:
    quoted = [f"`{c}`" for c in configs]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _units(result: Verdict, units: Mapping[str, int] | None) -> str:
    if units is None:
        counts = sorted({len(s) for s in result.seeds.values()})
        n_seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        units = {"cases": result.n_cases, "seeds": n_seeds}
    return ", ".join(f"{v} {k[:-1] if str(v) == '1' and k.endswith('s') else k}" for k, v in units.items())


def _left_out(result: Verdict, metric: str) -> str:
    parts = []
    undefined = [d for d in result.dropped_cases if d.reason == "undefined"]
    missing = [d for d in result.dropped_cases if d.reason == "missing"]
    if undefined:
        parts.append(f"{len(undefined)} case{'s' * (len(undefined) != 1)} where {metric} is undefined")
    if missing:
        parts.append(f"{len(missing)} case{'s' * (len(missing) != 1)} not scored for every configuration")
    parts += [f"`{f.config}` ({f.reason})" for f in result.failed_configs]
    parts += [f"seed {f.seed} of `{f.config}` ({f.reason}; its other seeds count)" for f in result.failed_seeds]
    parts += [
        f"seed {i.seed} of `{i.config}` lacks {len(i.missing_cases)} case{'s' * (len(i.missing_cases) != 1)}"
        " (averaged over the seeds that have them)"
        for i in result.incomplete_seeds
    ]
    return "Left out: " + "; ".join(parts) + "." if parts else ""


def _undecided(c: Comparison, metric: str) -> str:
    text = f"`{c.config}` ({_by(c, metric)}"
    if c.seeds_needed is not None:
        text += f"; about {c.seeds_needed} seeds per configuration would likely call it {c.seeds_needed_for}"
    elif c.seeds_needed_for.startswith("the case sample"):
        text += "; more seeds alone will not decide it: more cases would"
    return text + ")"


def _listed(items: list[Comparison], max_listed: int, fmt) -> str:
    shown = ", ".join(fmt(c) for c in items[:max_listed])
    rest = items[max_listed:]
    if rest:
        lo, hi = min(c.diff_mean for c in rest), max(c.diff_mean for c in rest)
        shown += f", and {len(rest)} more ({lo:.3g} to {hi:.3g})"
    return shown


def sentence(
    result: Verdict,
    *,
    split: str,
    metric: str,
    units: Mapping[str, int] | None = None,
    selected_on_same_split: bool = False,
    max_listed: int = 5,
) -> str:
    """E.g. "On test (500 cases, 3 seeds) `dice` ranks first (P(rank 1) = 0.81). Worse (seeds and cases, Holm
    over all 6 pairs, alpha = 0.05): `ce` by 0.21 Dice [0.19, 0.23]. Equivalent (within +-0.01 Dice):
    `iou`. Undecided: `focal` (0.02 Dice [-0.01, 0.05]; about 8 seeds per configuration would likely call
    it worse). Tie set: `dice`, `iou`, `focal`." followed by what was left out and any caveats.

    ``units``: the counts to quote, e.g. ``{"cases": 500, "seeds": 3, "folds": 5}`` (default: the cases
    compared and the seeds per configuration). Differences are the leader's mean minus the other's
    (positive = worse) with their 95% interval from both sources of variance; at most ``max_listed``
    configurations are named per call, the rest summarized.
    """
    head = f"On {split} ({_units(result, units)})"
    if result.case_only:
        head = "Case-level only, these models, not these losses: " + head[0].lower() + head[1:]
    k = len(result.ranking)
    if k == 1:
        text = f"{head} only `{result.leader}` has usable results."
    else:
        text = f"{head} `{result.leader}` ranks first (P(rank 1) = {result.stability[0].p_first:.2f})."
        sources = "cases only" if result.case_only else "seeds and cases"
        test = f"{sources}, Holm over all {k * (k - 1) // 2} pairs, alpha = {result.alpha:g}"
        by_call = {
            call: [c for c in result.comparisons if c.call == call] for call in ("worse", "equivalent", "undecided")
        }
        if by_call["worse"]:
            text += (
                f" Worse ({test}): "
                + _listed(by_call["worse"], max_listed, lambda c: f"`{c.config}` by {_by(c, metric)}")
                + "."
            )
        if by_call["equivalent"]:
            text += (
                f" Equivalent (95% interval within +-{result.rope:g} {metric}): "
                + _listed(by_call["equivalent"], max_listed, lambda c: f"`{c.config}`")
                + "."
            )
        if by_call["undecided"]:
            text += " Undecided: " + _listed(by_call["undecided"], max_listed, lambda c: _undecided(c, metric)) + "."
        if len(result.tie_set) > 1:
            text += f" Tie set (not shown worse): {_names(list(result.tie_set))}."
        else:
            text += f" `{result.leader}` wins: every other configuration is worse."
    extra = [_left_out(result, metric), *(n[0].upper() + n[1:] + "." for n in result.notes)]
    if selected_on_same_split:
        extra.append("The checkpoint was selected on this same split: scores are optimistic.")
    return " ".join([text, *(e for e in extra if e)])
