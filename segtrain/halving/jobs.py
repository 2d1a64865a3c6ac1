"""A halving sweep's jobs on disk: whether a job has finished a rung, and its per-case validation records.

A job has finished the rung that trains to E epochs when its metrics.json says ``completed`` (trained to
the end, or stopped early), or ``paused`` with ``epochs_completed == E``, and it has a per_case.csv (the
end-of-job evaluation of the validation split at that epoch). Its records are the per_case.csv ``val`` rows
reduced to one value per case by the report's case rule (segtrain.report.cases).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from segtrain.report.cases import CASE_METRICS, PER_CASE_FILE, read_job_cases
from segtrain.report.runs import METRICS_FILE, read_run

SPLIT = "val"


@dataclass
class Job:
    """One job of the grid: its configuration, replicate (seed) label, fold (None without CV) and directory."""

    config: str
    seed: Hashable
    fold: Hashable | None
    overrides: list[str]
    path: Path


def job_state(path: Path) -> dict:
    """metrics.json of the job ({} when absent or unreadable)."""
    try:
        data = json.loads((path / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def finished_rung(path: Path, epochs: int) -> bool:
    """Whether the job at ``path`` has finished the rung that trains to ``epochs`` (module docstring).

    Raises ValueError for a job paused beyond ``epochs``: the directory holds another sweep's job.
    """
    state = job_state(path)
    status, done = state.get("status"), state.get("epochs_completed")
    if status == "paused" and isinstance(done, int) and done > epochs:
        raise ValueError(
            f"{path}: paused at epoch {done}, past this rung's {epochs} epochs; it belongs to another halving "
            "sweep (other b0/eta): use a new hydra.sweep.dir"
        )
    ok = status == "completed" or (status == "paused" and done == epochs)
    return ok and (path / PER_CASE_FILE).is_file()


def epochs_done(path: Path) -> int:
    done = job_state(path).get("epochs_completed")
    return int(done) if isinstance(done, int) else 0


def rung_records(
    jobs: Sequence[Job],
    sweep_dir: Path,
    epochs: int,
    metric: str = "dice",
    errors: Mapping[Path, str] | None = None,
    split: str = SPLIT,
) -> tuple[list[tuple[str, Hashable, Hashable, float]], dict[str, list[str]]]:
    """(config, seed, case, value) records of the jobs that finished the rung, and per configuration the
    problems of the jobs that did not (failed, unfinished, unreadable per_case.csv), as messages.
    ``errors``: job dir -> the error its launch reported (else metrics.json's error or status is quoted).
    Only the ``split`` rows of per_case.csv are read (``val``: a held-out split stays unseen while selecting).

    With k-fold CV the folds of one seed pool: each case is scored once per seed, by the fold that held it
    out; a case scored by two folds of one seed is an error.
    """
    if metric not in CASE_METRICS:
        raise ValueError(f"hydra.sweeper.metric must be one of {CASE_METRICS}, got {metric!r}")
    records: dict[tuple[str, Hashable, Hashable], tuple[float, Path]] = {}
    problems: dict[str, list[str]] = {}
    for job in jobs:
        state = job_state(job.path)
        if not finished_rung(job.path, epochs):
            done = f"status {state.get('status', 'missing')}, {state.get('epochs_completed')} epochs"
            if state.get("status") in ("paused", "completed") and not (job.path / PER_CASE_FILE).is_file():
                done += f", but no {PER_CASE_FILE}: a job must evaluate its val split whenever it stops"
            why = (errors or {}).get(job.path) or state.get("error") or done
            problems.setdefault(job.config, []).append(f"{job.path.name}: did not finish the rung ({why})")
            continue
        try:
            cases = read_job_cases(read_run(job.path, sweep_dir, sweep_dir.name), splits=(split,))
        except (FileNotFoundError, ValueError) as exc:
            problems.setdefault(job.config, []).append(f"{job.path.name}: {exc}")
            continue
        if split not in cases.splits:
            problems.setdefault(job.config, []).append(f"{job.path.name}: no {split} rows in {PER_CASE_FILE}")
            continue
        for case, value in cases.case_values(split, metric).items():
            key = (job.config, job.seed, case)
            if key in records:
                raise ValueError(
                    f"case {case!r} of {job.config!r}, {job.seed} is scored by two jobs ({records[key][1]} and "
                    f"{job.path}); with k-fold CV each case must be in one fold per seed"
                )
            records[key] = (value, job.path)
    return [(*k, v) for k, (v, _) in records.items()], problems
