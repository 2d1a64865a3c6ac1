"""One paragraph that states a verdict in words, for the sweep report."""

from __future__ import annotations

import math
from collections.abc import Mapping

from segtrain.verdict.result import Comparison, Verdict

__all__ = ["sentence"]


def _decimals(c: Comparison) -> int:
    """Decimals that show the interval's width to about one significant digit (0.21 [0.19, 0.23]), and the
    difference itself to at most three (an interval far narrower than the difference adds nothing)."""
    width = max(c.ci_high - c.ci_low, 0.01 * abs(c.diff_mean))
    if not math.isfinite(width) or width <= 0:
        return 3
    return max(0, -math.floor(math.log10(width)))


def _by(c: Comparison, metric: str) -> str:
    d = _decimals(c)
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


def sentence(
    result: Verdict,
    *,
    split: str,
    metric: str,
    units: Mapping[str, int] | None = None,
    selected_on_same_split: bool = False,
    max_listed: int = 5,
) -> str:
    """E.g. "On test (500 cases, 3 seeds) `dice` ranks first (P(rank 1) = 0.81); `tversky` and
    `focal_tversky` are not significantly worse (Holm-Wilcoxon, alpha = 0.05): treat them as tied; `ce` is
    worse by 0.21 Dice [0.19, 0.23]." followed by what was left out and any caveats.

    ``units``: the counts to quote, e.g. ``{"cases": 500, "seeds": 3, "folds": 5}`` (default: the cases
    compared and the seeds per configuration). Differences are mean per-case differences with their
    bootstrap 95% interval; at most ``max_listed`` worse configurations are named, the rest summarized.
    """
    head = f"On {split} ({_units(result, units)})"
    test = f"Holm-Wilcoxon, alpha = {result.alpha:g}"
    if len(result.ranking) == 1:
        text = f"{head} only `{result.leader}` has usable results."
    else:
        text = f"{head} `{result.leader}` ranks first (P(rank 1) = {result.stability[0].p_first:.2f})"
        tied = [c.config for c in result.comparisons if not c.worse]
        worse = [c for c in result.comparisons if c.worse]
        if tied:
            verb = "is" if len(tied) == 1 else "are"
            text += f"; {_names(tied)} {verb} not significantly worse ({test}): treat them as tied"
        if worse:
            listed = worse[:max_listed]
            if len(listed) == 1 and len(worse) == 1:
                text += f"; `{listed[0].config}` is worse by {_by(listed[0], metric)}"
            else:
                text += "; " + ("worse" if tied else f"all others are significantly worse ({test})") + ": "
                text += ", ".join(f"`{c.config}` by {_by(c, metric)}" for c in listed)
                rest = worse[max_listed:]
                if rest:
                    lo, hi = min(c.diff_mean for c in rest), max(c.diff_mean for c in rest)
                    text += f", and {len(rest)} more by {lo:.3g} to {hi:.3g} {metric}"
            if not tied and len(worse) == 1:
                text += f" ({test})"
        text += "."
    extra = [_left_out(result, metric), *(n[0].upper() + n[1:] + "." for n in result.notes)]
    if selected_on_same_split:
        extra.append("The checkpoint was selected on this same split: scores are optimistic.")
    return " ".join([text, *(e for e in extra if e)])
