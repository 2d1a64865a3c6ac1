"""Does successive halving find the full grid's winner, and for how many epochs? One run, both sweeps.

    python benchmarks/bench_halving.py --out outputs/bench_halving --stages 3,9 \\
        --halving hydra.sweeper.b0=3 hydra.sweeper.eta=3 -- \\
        loss=ce,dice,focal,tversky,lovasz,ce_dice seed=0,1,2 trainer.max_epochs=27

runs the grid twice with the app (train.py by default): every job to trainer.max_epochs (Hydra's basic
sweeper, into <out>/full), and with hydra/sweeper=halving (into <out>/halving). Then it reports each sweep
with segtrain.report (the case-level verdict: test when every job scored one, else val) and prints the full
grid's winner and tie set, the halving sweep's winner and tie set, the epochs each trained (the sum of every
job's epochs_completed), the jobs' training time (summed over jobs and resumes) and the wall time. Target:
the halving tie set holds the full grid's winner, for at most 35% of the full grid's epochs. Where the
reports score on test, it also compares on val, the split the halving sweep decides on: the full grid's
winner there against the last rung's tie set, and the test scores of the full grid's pick on val, the
halving's pick and the test winner (what choosing by halving costs against choosing by the full grid).
Re-running into the same --out continues both sweeps (crash recovery).

``--stages`` (the halving rungs but the last, e.g. 3,9 for rungs 3, 9, 27) trains the full grid in stages:
every job pauses at each stage (``job.stop_at_epoch``) and its per_case.csv is kept under
<out>/full_stages/<epochs>/. Resume is bit-identical, so this is the same full grid (the pauses add one
evaluation each to the wall time, no epochs). The halving rules are then replayed on the full grid's records
at every rung (segtrain.halving.replay): the rule the sweeper runs (which must reproduce the real halving
sweep's survivors) beside the first version's survivor-relative budget, the rule with each ``--min-gaps``
and ``--max-shares`` value (and the grid's 1/eta budget when the sweep ran with ``max_share``), significance
cuts from rung 1 only, and the budget alone, each with its winner, tie set and epochs.
It also prints what holding the full grid's winner would cost a rule that cuts by the rungs' rankings: the
top k after each rung down to the winner's rank there (segtrain.halving.replay.cost_to_keep).

The jobs must write per_case.csv (the end-of-job evaluation), at every rung stop as well: the halving sweeper
decides on its val rows. --app tests/halving_app/fake_app.py runs the fake app of the tests (made-up scores,
no training) to check the plumbing in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segtrain.halving import Job, keep_count, rung_records  # noqa: E402
from segtrain.halving.replay import cost_to_keep, replay  # noqa: E402
from segtrain.report import summarize  # noqa: E402
from segtrain.report.cases import LOWER_IS_BETTER, PER_CASE_FILE, read_job_cases  # noqa: E402
from segtrain.report.runs import METRICS_FILE, RunRecord, collect_runs  # noqa: E402
from segtrain.verdict import summarize as verdict_of  # noqa: E402

TARGET = 0.35


def run_sweep(app: Path, sweep: Path, args: list[str]) -> float:
    """``python app -m hydra.sweep.dir=sweep *args``; seconds it took. Raises CalledProcessError on failure."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep}", *args]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - start


def epochs_trained(sweep: Path) -> int:
    return sum(int(r.metrics.get("epochs_completed") or 0) for r in collect_runs(sweep))


def training_minutes(sweep: Path) -> float | None:
    """The jobs' own training time, summed (metrics.json timing.train_s, which adds up across resumes): the
    sweep's CPU cost at one thread per job, whatever ran beside it and however often it was restarted.
    None when a job does not record it."""
    times = [(r.metrics.get("timing") or {}).get("train_s") for r in collect_runs(sweep)]
    if not times or any(not isinstance(t, int | float) for t in times):
        return None
    return round(sum(times) / 60, 1)


def snapshot(sweep: Path, dest: Path) -> None:
    """Keep each job's per_case.csv, metrics.json and .hydra/ of a stage under ``dest/<job>``."""
    for run in collect_runs(sweep):
        to = dest / run.job
        to.mkdir(parents=True, exist_ok=True)
        for name in (PER_CASE_FILE, METRICS_FILE):
            shutil.copy2(run.path / name, to / name)
        shutil.copytree(run.path / ".hydra", to / ".hydra", dirs_exist_ok=True)
    (dest / ".done").touch()


def run_full(app: Path, out: Path, grid: list[str], stages: list[int]) -> float:
    """The full grid, paused at each of ``stages`` (snapshots in <out>/full_stages) and then to the end."""
    seconds = 0.0
    for epochs in stages:
        dest = out / "full_stages" / str(epochs)
        if (dest / ".done").is_file():
            print(f"stage {epochs}: kept from an earlier run ({dest})", flush=True)
            continue
        seconds += run_sweep(app, out / "full", [*grid, f"job.stop_at_epoch={epochs}"])
        snapshot(out / "full", dest)
    return seconds + run_sweep(app, out / "full", grid)


def final_records(runs: list[RunRecord], split: str, metric: str) -> list[tuple]:
    """(config, seed, case, value) of every job on ``split`` (folds pooled: each case once per seed)."""
    out = []
    for run in runs:
        for case, value in read_job_cases(run).case_values(split, metric).items():
            out.append((run.config, run.seed, case, value))
    return out


def stage_records(out: Path, runs: list[RunRecord], schedule: list[int], metric: str) -> dict[int, list]:
    """The full grid's per-case validation records at each rung's epochs (its stages, then its end)."""
    records_at = {}
    for epochs in schedule:
        root = out / "full" if epochs == schedule[-1] else out / "full_stages" / str(epochs)
        jobs = [Job(r.config, r.seed, r.fold, r.overrides, root / r.job) for r in runs]
        records, problems = rung_records(jobs, root, epochs, metric)
        if any(problems.values()):
            raise ValueError(f"the full grid's records at {epochs} epochs are incomplete: {problems}")
        records_at[epochs] = records
    return records_at


def replay_rules(
    records_at: dict[int, list],
    runs: list[RunRecord],
    halving: dict,
    split: str,
    alpha: float,
    min_gaps: list[float],
    max_shares: list[float] = (),
) -> dict[str, dict]:
    """The halving rules replayed on the full grid's records at every rung (``stage_records``): winner and tie
    set (the last rung's survivors tested on ``split``, as the reports do), survivors per rung and epochs."""
    s, schedule = halving["settings"], halving["schedule"]
    metric, eta = s["metric"], s["eta"]
    jobs_per_config = dict(Counter(r.config for r in runs))
    gap, share = s.get("min_gap", 0.0), s.get("max_share")
    run_rule = f"min_gap {gap:g}" + (f", max_share {share:g}" if share is not None else "")
    rules = {
        f"segtrain (the sweeper's rule: {run_rule})": {"min_gap": gap, "max_share": share},
        **{f"max_share {m:g} (min_gap {gap:g})": {"min_gap": gap, "max_share": m} for m in max_shares if m != share},
        **({f"the grid's top 1/eta^(r+1) (min_gap {gap:g}, max_share null)": {"min_gap": gap}} if share else {}),
        **{f"min_gap {g:g}" + (" (significance alone)" if g == 0 else ""): {"min_gap": g} for g in min_gaps},
        "first version (min_gap 0, budget of the survivors)": {"keep": lambda r, n: keep_count(n, eta)},
        "significance cuts from rung 1 (min_gap 0)": {"test_from_rung": 1},
        "budget alone (plain successive halving)": {"test_from_rung": len(schedule)},
    }
    higher = metric not in LOWER_IS_BETTER
    scored = final_records(runs, split, metric)
    results = {}
    for name, rule in rules.items():
        r = replay(records_at, schedule, jobs_per_config, eta=eta, alpha=s["alpha"], min_cases=s["min_cases"],
                   higher_is_better=higher, **rule)  # fmt: skip
        last = r["rungs"][-1]["survivors"]
        tie = list(last) if len(last) < 2 else list(
            verdict_of([x for x in scored if x[0] in last], higher_is_better=higher, alpha=alpha, configs=last).tie_set
        )  # fmt: skip
        results[name] = {
            "survivors_per_rung": r["survivors_per_rung"],
            "rung_survivors": [d["survivors"] for d in r["rungs"]],
            "winner_on_val": r["winner"],
            "tie_set_on_val": r["tie_set"],
            "tie_set": tie,
            "epochs": r["epochs_trained"],
            "epochs_ratio": round(r["epochs_trained"] / r["full_grid_epochs"], 3),
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="holds full/ and halving/ (re-use to continue)")
    parser.add_argument("--app", type=Path, default=ROOT / "train.py", help="the Hydra app [train.py]")
    parser.add_argument("--halving", nargs="*", default=[], help="extra overrides of the halving sweep only")
    parser.add_argument("--alpha", type=float, default=0.05, help="level of the reports' Holm-Wilcoxon tests")
    parser.add_argument(
        "--stages", default="", help="comma-separated epochs: train the full grid in stages there, replay the rules"
    )
    parser.add_argument(
        "--min-gaps", default="0,0.05", help="replay the sweeper's rule with these min_gap values too [0,0.05]"
    )
    parser.add_argument(
        "--max-shares", default="", help="replay the sweeper's rule with these hydra.sweeper.max_share values too"
    )
    parser.add_argument("grid", nargs="+", help="the grid and fixed overrides, as for train.py -m")
    args = parser.parse_args(argv)
    try:
        stages = sorted({int(e) for e in args.stages.split(",") if e.strip()})
        min_gaps = [float(g) for g in args.min_gaps.split(",") if g.strip()]
        max_shares = [float(m) for m in args.max_shares.split(",") if m.strip()]
    except ValueError:
        parser.error(f"--stages, --min-gaps and --max-shares take comma-separated numbers; got {args.stages!r}, "
                     f"{args.min_gaps!r}, {args.max_shares!r}")  # fmt: skip

    full_dir, halving_dir = args.out / "full", args.out / "halving"
    full_s = run_full(args.app, args.out, args.grid, stages)
    halving_s = run_sweep(args.app, halving_dir, ["hydra/sweeper=halving", *args.grid, *args.halving])

    full = summarize(full_dir, plots=False, alpha=args.alpha)
    halving = summarize(halving_dir, plots=False, alpha=args.alpha)
    if full.verdict is None or halving.verdict is None:
        print("error: a sweep has no case-level verdict (its jobs wrote no per_case.csv)", file=sys.stderr)
        return 2
    h = json.loads((halving_dir / "halving.json").read_text())
    e_full, e_halving = epochs_trained(full_dir), epochs_trained(halving_dir)
    ratio = e_halving / e_full
    found = full.verdict.leader in halving.verdict.tie_set
    result = {
        "full": {"winner": full.verdict.leader, "tie_set": list(full.verdict.tie_set), "split": full.cases.split,
                 "epochs": e_full, "seconds": round(full_s, 1), "stages": stages,
                 "training_minutes": training_minutes(full_dir)},
        "halving": {"winner": halving.verdict.leader, "tie_set": list(halving.verdict.tie_set),
                    "split": halving.cases.split, "epochs": e_halving, "seconds": round(halving_s, 1),
                    "training_minutes": training_minutes(halving_dir),
                    "schedule": h["schedule"], "survivors_per_rung": [len(r["survivors"]) for r in h["rungs"]]},
        "epochs_ratio": round(ratio, 3),
        "halving_tie_set_holds_full_winner": found,
        "target_met": found and ratio <= TARGET,
    }  # fmt: skip
    print(f"full grid : winner {result['full']['winner']}, tie set {result['full']['tie_set']} "
          f"(on {full.cases.split}); {e_full} epochs, {full_s:.0f} s")  # fmt: skip
    print(f"halving   : winner {result['halving']['winner']}, tie set {result['halving']['tie_set']} "
          f"(on {halving.cases.split}); {e_halving} epochs, {halving_s:.0f} s; rungs {h['schedule']}, "
          f"configurations alive after each {result['halving']['survivors_per_rung']}")  # fmt: skip
    t_full, t_halving = result["full"]["training_minutes"], result["halving"]["training_minutes"]
    if t_full and t_halving is not None:
        print(f"training time (the jobs' own, summed): full grid {t_full} min, halving {t_halving} min "
              f"({100 * t_halving / t_full:.0f}%)")  # fmt: skip
    print(f"halving spent {100 * ratio:.0f}% of the full grid's epochs; its tie set "
          f"{'holds' if found else 'does NOT hold'} the full grid's winner; target (holds it, <= {TARGET:.0%}): "
          f"{'met' if result['target_met'] else 'not met'}")  # fmt: skip
    full_runs = collect_runs(full_dir)
    if full.cases.split != "val":  # the halving decides on val: compare with the full grid's choice there too
        metric = h["settings"]["metric"]
        higher = metric not in LOWER_IS_BETTER
        on_val = verdict_of(final_records(full_runs, "val", metric), higher_is_better=higher, alpha=args.alpha,
                            configs=sorted({r.config for r in full_runs}))  # fmt: skip
        found_val = on_val.leader in h["tie_set"]
        result["on_val"] = {"full_winner": on_val.leader, "full_tie_set": list(on_val.tie_set),
                            "halving_tie_set": h["tie_set"], "holds": found_val,
                            "target_met": found_val and ratio <= TARGET}  # fmt: skip
        print(f"on val, the split the halving decides on: full grid winner {on_val.leader}, tie set "
              f"{list(on_val.tie_set)}; halving's last rung tie set {h['tie_set']}: "
              f"{'holds' if found_val else 'does NOT hold'} it; target on val: "
              f"{'met' if result['on_val']['target_met'] else 'not met'}")  # fmt: skip
        # what each choice scores on the held-out split: the full grid's user picks on val as well
        test_mean = full.verdict.means
        picks = {"full_val_pick": on_val.leader, "halving_pick": halving.verdict.leader, "best": full.verdict.leader}
        scores = {k: {"config": c, "mean": round(test_mean[c], 4)} for k, c in picks.items()}
        result["held_out_scores"] = {"split": full.cases.split, "metric": metric, **scores}
        print(f"on {full.cases.split}: the full grid's pick on val ({on_val.leader}) scores "
              f"{test_mean[on_val.leader]:.4f}, the halving's pick ({halving.verdict.leader}) "
              f"{test_mean[halving.verdict.leader]:.4f}, the best in hindsight ({full.verdict.leader}) "
              f"{test_mean[full.verdict.leader]:.4f} ({metric}, case mean over seeds)")  # fmt: skip
    if set(h["schedule"][:-1]) <= set(stages):
        records_at = stage_records(args.out, full_runs, h["schedule"], h["settings"]["metric"])
        rules = replay_rules(records_at, full_runs, h, full.cases.split, args.alpha, min_gaps, max_shares)
        rules_run = next(iter(rules.values()))
        result["replay"] = rules
        result["replay_matches_halving"] = rules_run["rung_survivors"] == [r["survivors"] for r in h["rungs"]]
        print(f"\nthe rules replayed on the full grid's records at rungs {h['schedule']} (tie sets on "
              f"{full.cases.split}); the sweeper's rule reproduces the real halving sweep's survivors: "
              f"{'yes' if result['replay_matches_halving'] else 'NO'}")  # fmt: skip
        val_winner = result.get("on_val", {}).get("full_winner", full.verdict.leader)
        two = full.cases.split != "val"  # the reports score on test: a column for each split
        split = full.cases.split
        print("| rule | survivors after each rung | tie set on val | " + (f"tie set on {split} | " if two else "")
              + f"epochs | holds the full grid's winner on {split} |" + (" on val |" if two else ""))  # fmt: skip
        print("|---" * (7 if two else 5) + "|")
        for name, r in rules.items():
            holds = full.verdict.leader in r["tie_set"]
            holds_val = val_winner in r["tie_set_on_val"]
            r.update(target_met=holds and r["epochs_ratio"] <= TARGET, holds_on_val=holds_val)
            ties = ", ".join(r["tie_set_on_val"]) + (f" | {', '.join(r['tie_set'])}" if two else "")
            cost = f"{r['epochs']} ({100 * r['epochs_ratio']:.0f}%)"
            print(f"| {name} | {r['survivors_per_rung']} | {ties} | {cost} | {'yes' if holds else 'no'} |"
                  + (f" {'yes' if holds_val else 'no'} |" if two else ""))  # fmt: skip
        # how far back the full grid's winners ranked early: what holding them by rank alone costs
        jobs_per_config = dict(Counter(r.config for r in full_runs))
        higher = h["settings"]["metric"] not in LOWER_IS_BETTER
        winners = {f"on {full.cases.split}": full.verdict.leader, "on val": val_winner}
        result["cost_to_keep"] = {}
        for where, config in winners.items():  # one entry when the reports score on val
            c = cost_to_keep(records_at, h["schedule"], jobs_per_config, config, higher_is_better=higher)
            share = c["epochs_trained"] / c["full_grid_epochs"]
            result["cost_to_keep"][where] = {**c, "epochs_ratio": round(share, 3)}
            print(
                f"holding the full grid's winner {where} ({config}) by the rungs' rankings alone takes the top "
                f"{c['survivors_per_rung'][:-1]} after each rung: {c['epochs_trained']} epochs ({100 * share:.0f}%)"
            )
    elif stages:
        print(f"no replay: the halving rungs {h['schedule'][:-1]} are not all among --stages {stages}")
    (args.out / "bench_halving.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
