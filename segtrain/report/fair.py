"""The report of a fair loss sweep (``experiment=fair_loss_sweep``, segtrain.fair): summary.md and
verdict.json from ``<sweep dir>/fair.json``.

Each loss is represented by the setting its tuning selected on validation; the verdict compares those
settings on the held-out split (``test`` rows of per_case.csv), which no selection has read. Beside it: what
tuning did per loss (the validation score across its space at the first rung, where every setting had
trained equally long; the selected setting; the budget and what it spent), the verdict at each loss's
defaults from the same sweep's runs, and the cost against a defaults-only sweep of the same losses and seeds.
Where the jobs have no held-out split, the verdict falls back on validation and a bold line says that the
cases it scores on chose the settings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from segtrain.verdict import Verdict, sentence, summarize
from segtrain.verdict.result import _json

from .cases import LOWER_IS_BETTER, METRIC_NAMES, read_job_cases
from .casewise import DEFAULT_ROPES
from .halving import read_sweeper_state
from .runs import read_run

FAIR_FILE = "fair.json"
HELD_OUT = "test"


def read_fair(root: Path) -> dict[str, Any] | None:
    """fair.json of the sweep at ``root``, or None when it is not a fair sweep; ValueError if unreadable."""
    return read_sweeper_state(Path(root) / FAIR_FILE, "tuning", dict, "hydra/sweeper=fair")


def job_records(
    root: Path, loss: str, jobs: list[Mapping[str, Any]], split: str, metric: str
) -> tuple[list[tuple[str, Hashable, Hashable, float]], list[str]]:
    """(loss, seed, case, value) records of ``jobs`` (fair.json entries) on ``split``, and why any job gave
    none. Folds of one seed pool: each case is scored once per seed, by the fold that held it out."""
    records: dict[tuple[Hashable, Hashable], float] = {}
    problems = []
    for job in jobs:
        path = root / job["dir"]
        try:
            run = read_run(path, root, root.name)
            if run.status != "completed":
                raise ValueError(f"status {run.status}" + (f" ({run.error})" if run.error else ""))
            cases = read_job_cases(run, splits=(split,))
        except (FileNotFoundError, ValueError) as exc:
            problems.append(f"{job['dir']}: {exc}")
            continue
        if split not in cases.splits:
            problems.append(f"{job['dir']}: no {split} rows in per_case.csv")
            continue
        for case, value in cases.case_values(split, metric).items():
            records[(job["seed"], case)] = value
    return [(loss, s, c, v) for (s, c), v in records.items()], problems


def fair_report(
    root: Path, data: dict[str, Any], *, alpha: float = 0.05, rope: float | None = None, n_boot: int = 1000
) -> tuple[str, dict[str, Any], Verdict | None]:
    """summary.md's text, verdict.json's content and the tuned verdict (None when nothing could be scored)."""
    s = data.get("settings", {})
    metric = s.get("metric", "dice")
    name = METRIC_NAMES.get(metric, metric)
    higher = metric not in LOWER_IS_BETTER
    rope = DEFAULT_ROPES.get(metric, 0.01) if rope is None else rope
    tuning = data["tuning"]
    losses = [loss for loss in data.get("losses", list(tuning)) if loss in tuning]
    status = data.get("status")
    split = HELD_OUT
    if status in ("selected", "completed"):
        probe = [job_records(root, loss, tuning[loss]["selected_jobs"], HELD_OUT, metric)[0] for loss in losses]
        if not all(probe):
            split = "val"
    tuned_records: list = []
    default_records: list = []
    problems: list[str] = []
    if status in ("selected", "completed"):  # no held-out record is read before every selection is made
        for loss in losses:
            recs, why = job_records(root, loss, tuning[loss]["selected_jobs"], split, metric)
            tuned_records += recs
            problems += [f"`{loss}` (selected): {w}" for w in why]
            if s.get("compare_defaults", True) and status == "completed":
                recs, why = job_records(root, loss, tuning[loss]["defaults_jobs"], split, metric)
                default_records += recs
                problems += [f"`{loss}` (defaults): {w}" for w in why]
    tuned = _verdict(tuned_records, losses, higher, alpha, rope, n_boot)
    defaults = _verdict(default_records, losses, higher, alpha, rope, n_boot)
    halving = {loss: _read_halving(root, tuning[loss].get("halving")) for loss in losses}

    lines = ["# Fair loss comparison", ""]
    lines.append(
        f"Every loss was tuned inside its own search space (configs/loss/<loss>.yaml `search`, times the shared "
        f"knobs) with the same budget, {s.get('budget', 2):g} x its defaults-only epochs (seeds x "
        f"{s.get('max_epochs')} epochs), by successive halving on **validation** {name}; the setting each loss "
        f"selected on validation is compared on the **{split}** split"
        + (", which no selection read." if split == HELD_OUT else ".")
    )
    if split != HELD_OUT:
        lines += [
            "",
            "**No held-out split: the verdict below scores on the validation cases that selected each loss's "
            "setting, so it flatters the losses with larger spaces. Give the data set a test split "
            "(dataset.test_split) for a fair verdict.**",
        ]
    if status not in ("selected", "completed"):
        lines += ["", f"**The sweep has not finished tuning (fair.json status {status!r}): no verdict yet.**"]
    lines += ["", "## Verdict after tuning", ""]
    lines.append(_sentence(tuned, split, metric) if tuned else "No verdict: no selected setting has scores.")
    if tuned:
        lines += ["", _means_line(tuned, tuning, name)]
    lines += ["", "## What tuning did", ""]
    lines += _tuning_table(losses, tuning, halving, tuned, defaults, name, split)
    if defaults is not None:
        lines += ["", "## Verdict at the defaults (the same sweep's runs)", ""]
        lines.append(_sentence(defaults, split, metric))
        lines += ["", _change(tuned, defaults)]
    lines += ["", "## Cost", ""]
    lines += _cost(root, data, tuning, losses)
    if problems:
        lines += ["", "## Left out", ""] + [f"- {p}" for p in problems]
    markdown = "\n".join(lines) + "\n"
    verdict_json = _json(
        {
            "kind": "fair_loss_sweep",
            "metric": metric,
            "split": split,
            "selected_on": "val",
            "selected": {loss: tuning[loss].get("selected") for loss in losses},
            "tuned": tuned.to_dict() if tuned else None,
            "defaults": defaults.to_dict() if defaults else None,
            "left_out": problems,
        }
    )
    return markdown, verdict_json, tuned


def _verdict(records, losses, higher, alpha, rope, n_boot) -> Verdict | None:
    present = [loss for loss in losses if any(r[0] == loss for r in records)]
    if len(present) < 2:
        return None
    return summarize(records, higher_is_better=higher, alpha=alpha, rope=rope, n_boot=n_boot, configs=present)


def _sentence(v: Verdict, split: str, metric: str) -> str:
    seeds = max(len(x) for x in v.seeds.values())
    return sentence(v, split=split, metric=metric, units={"cases": v.n_cases, "seeds": seeds})


def _means_line(v: Verdict, tuning: Mapping[str, Any], name: str) -> str:
    parts = [f"`{loss}` {v.means[loss]:.3f} ({_setting(tuning[loss])})" for loss in v.ranking]
    return f"Mean {name} per case and seed, in rank order, with each loss's selected setting: " + "; ".join(parts)


def _setting(entry: Mapping[str, Any]) -> str:
    """The selected configuration without its loss name: ``gamma=3.0, lr=0.01``; "defaults" when it is them."""
    label = str(entry.get("selected"))
    parts = [p for p in label.split(",") if not p.startswith("loss=")]
    text = ", ".join(p.removeprefix("loss.") for p in parts) or "its only setting"
    return text + (" = defaults" if label == entry.get("defaults") else "")


def _read_halving(root: Path, rel: str | None) -> dict[str, Any] | None:
    if not rel:
        return None
    try:
        return json.loads((root / rel).read_text())
    except (OSError, ValueError):
        return None


def _tuning_table(losses, tuning, halving, tuned, defaults, name, split) -> list[str]:
    lines = [
        f"| loss | settings | budget / spent (epochs) | val {name} across its space at rung 0 | chosen among, at "
        f"| selected setting | {split} tuned | {split} defaults | gain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for loss in losses:
        e = tuning[loss]
        h = halving.get(loss)
        spread = chosen = "–"
        if h and h.get("rungs"):
            r0 = h["rungs"][0]
            means = [v for v in r0.get("means", {}).values() if isinstance(v, int | float) and math.isfinite(v)]
            if means:
                spread = f"{min(means):.3f}-{max(means):.3f} ({max(means) - min(means):.3f}, {r0['epochs']} ep)"
            compared = [r for r in h["rungs"] if len(r.get("means") or {}) >= 2]
            if compared:  # the last rung that ranked two or more: where the setting was in effect chosen
                r = compared[-1]
                chosen = f"{len(r['means'])}, {r['epochs']} ep"
        t = tuned.means.get(loss) if tuned else None
        d = defaults.means.get(loss) if defaults else None
        gain = f"{t - d:+.3f}" if t is not None and d is not None else "–"
        lines.append(
            f"| `{loss}` | {len(e['configs'])} | {e['budget_epochs']} / {e['spent_epochs']} | {spread} | {chosen} | "
            f"{_setting(e)} | {_fmt(t)} | {_fmt(d)} | {gain} |"
        )
    lines += [
        "",
        "*settings*: configurations tried (the loss's space x the shared knobs), each with every seed. *across its "
        "space*: the lowest and highest mean validation score of its settings after the first rung, where all had "
        "trained equally long (– when nothing was halved). *chosen among, at*: the last rung that ranked two or "
        "more of its settings on val, how many and after how many epochs: the budget decides how late that is "
        f"(a larger `budget` keeps more settings to later rungs). *gain*: {split} tuned minus defaults (mean per "
        "case and seed).",
    ]
    return lines


def _change(tuned: Verdict | None, defaults: Verdict) -> str:
    if tuned is None:
        return "No tuned verdict to compare with."
    same_leader = tuned.leader == defaults.leader
    same_ties = set(tuned.tie_set) == set(defaults.tie_set)
    if same_leader and same_ties:
        return f"Tuning changed neither the leader (`{tuned.leader}`) nor the tie set."
    what = []
    if not same_leader:
        within = tuned.leader in defaults.tie_set and defaults.leader in tuned.tie_set
        what.append(
            f"the leader from `{defaults.leader}` to `{tuned.leader}`"
            + (" (each in the other's tie set: a change of rank among losses not shown apart)" if within else "")
        )
    if not same_ties:
        what.append(
            "the tie set from " + ", ".join(f"`{c}`" for c in defaults.tie_set)
            + " to " + ", ".join(f"`{c}`" for c in tuned.tie_set)
        )  # fmt: skip
    return "Tuning changed " + " and ".join(what) + "."


def _cost(root: Path, data, tuning, losses) -> list[str]:
    tuning_epochs = sum(tuning[loss]["spent_epochs"] for loss in losses)
    only = sum(tuning[loss]["seeds"] * data["settings"]["max_epochs"] for loss in losses)
    extra = data.get("defaults_epochs", 0)
    seconds = _train_seconds(root, [j for loss in losses for j in _all_dirs(root, tuning[loss])])
    default_seconds = _train_seconds(root, [j["dir"] for loss in losses for j in tuning[loss]["defaults_jobs"]])
    lines = [
        "| | epochs | x defaults-only | training time (s) |",
        "|---|---|---|---|",
        f"| defaults-only sweep (same losses and seeds) | {only} | 1.00 | {_fmt(default_seconds, 0)} |",
        f"| tuning (the comparison) | {tuning_epochs} | {tuning_epochs / only:.2f} | {_fmt(seconds, 0)} |",
    ]
    if data.get("settings", {}).get("compare_defaults", True):
        lines.append(f"| defaults trained on for the comparison at the defaults | {extra} | {extra / only:.2f} | |")
    lines += [
        "",
        "Training time: the sum over jobs of metrics.json `timing.train_s` (all jobs of the sweep; defaults-only: "
        "the jobs of each loss's defaults, trained to the end), on whatever devices ran them.",
    ]
    return lines


def _all_dirs(root: Path, entry: Mapping[str, Any]) -> list[str]:
    h = _read_halving(root, entry.get("halving"))
    if h:
        return [j["dir"] for j in h.get("jobs", [])]
    return [j["dir"] for j in entry.get("selected_jobs", [])]


def _train_seconds(root: Path, dirs: list[str]) -> float | None:
    total, found = 0.0, False
    for d in dict.fromkeys(dirs):
        try:
            metrics = json.loads((root / d / "metrics.json").read_text())
            total += float(metrics["timing"]["train_s"])
            found = True
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return total if found else None


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"
