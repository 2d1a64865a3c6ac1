"""segtrain.report: fake run directories in tmp_path -> summary.csv / .md / .png / curves.png."""

from __future__ import annotations

import csv
import importlib.util
import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from segtrain.report import collect_runs, summarize

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASSES = ("ellipse", "rectangle", "triangle")
REPO = Path(__file__).resolve().parents[1]

# Best val/dice per (loss, seed). focal is #1 by mean; dice beats focal on seed 2 only; ce never does.
BEST_DICE = {
    "focal": {1: 0.82, 2: 0.78, 3: 0.85},
    "dice": {1: 0.80, 2: 0.81, 3: 0.79},
    "ce": {1: 0.70, 2: 0.72, 3: 0.74},
}


def make_job(
    job_dir: Path,
    overrides: list[str],
    *,
    best_dice: float | None = None,
    status: str = "completed",
    error: str | None = None,
    epochs: int = 3,
    max_epochs: int = 3,
    triangle: float | None = None,
    monitor: str = "val/dice",
    monitor_mode: str = "max",
    write_metrics: bool = True,
) -> dict[str, Any] | None:
    """Write a run directory as the trainer leaves it; returns the metrics.json content."""
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job_dir / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (job_dir / "train.log").write_text("")
    if not write_metrics:
        return None
    seed = next((int(o.split("=")[1]) for o in overrides if o.startswith("seed=")), 0)
    loss = next((o.split("=")[1] for o in overrides if o.startswith("loss=")), "dice")
    d = best_dice if best_dice is not None else 0.5
    best = {"epoch": min(2, epochs), "val/dice": d, "val/iou": d - 0.1, "val/loss": 1 - d,
            "val/dice_per_image": d - 0.02}  # fmt: skip
    final = {**best, "epoch": epochs, "val/dice": d - 0.01}
    metrics = {
        "status": status,
        "error": error,
        "loss": loss,
        "model": "unet",
        "encoder": "resnet18",
        "dataset": "shapes",
        "seed": seed,
        "monitor": monitor,
        "monitor_mode": monitor_mode,
        "epochs_completed": epochs,
        "max_epochs": max_epochs,
        "best": best,
        "final": final,
        "per_class": {
            "dice": {"ellipse": d + 0.05, "rectangle": d - 0.05, "triangle": triangle},
            "iou": {"ellipse": d - 0.05, "rectangle": d - 0.15, "triangle": triangle},
        },
        "empty_class_policy": "a class absent from target and prediction is NaN and left out of the mean",
        "timing": {"train_s": 40.0 + seed, "total_s": 45.0 + seed, "s_per_epoch": 14.0},
    }
    (job_dir / "metrics.json").write_text(json.dumps(metrics))
    header = ["epoch", "lr", "train/loss", "val/loss", "val/dice", "val/iou", "val/dice_per_image"]
    header += [f"val/dice/{c}" for c in CLASSES] + [f"val/iou/{c}" for c in CLASSES] + ["seconds"]
    with (job_dir / "history.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for e in range(1, epochs + 1):
            v = d - 0.1 * (epochs - e) / epochs
            writer.writerow([e, 1e-3, 1 - v, 1 - v, v, v - 0.1, v, v, v, "", v, v, "", 14.0])
    return metrics


def make_sweep(root: Path) -> dict[str, dict[str, Any]]:
    """A finished 3-loss x 3-seed sweep: job name -> metrics.json written."""
    (root).mkdir(parents=True)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    written = {}
    for loss, by_seed in BEST_DICE.items():
        for seed, d in by_seed.items():
            name = f"loss={loss},seed={seed}"
            written[name] = make_job(
                root / name, [f"loss={loss}", f"seed={seed}", "trainer.max_epochs=3"], best_dice=d
            )
    return written


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def table_rows(markdown: str) -> list[list[str]]:
    """Cells of the ranking table (the first table in summary.md), header and separator left out."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| #"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def header_of(markdown: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if line.startswith("| #"))
    return [c.strip() for c in line.strip("|").split(" | ")]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sweeps") / "12-00-00"
    written = make_sweep(root)
    return root, written, summarize(root)


def test_summarize_writes_all_four_files_into_the_sweep_dir(finished) -> None:
    root, _, result = finished
    for name in ("summary.csv", "summary.md", "summary.png", "curves.png"):
        assert (root / name).is_file(), name
    assert result.files == [root / n for n in ("summary.csv", "summary.md", "summary.png", "curves.png")]


def test_pngs_are_valid_and_not_blank(finished) -> None:
    root, _, _ = finished
    for name in ("summary.png", "curves.png"):
        data = (root / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE
        assert len(data) > 10_000, f"{name} is suspiciously small ({len(data)} bytes)"


def test_summary_csv_has_one_row_per_job_matching_metrics_json(finished) -> None:
    root, written, _ = finished
    rows = read_csv(root / "summary.csv")
    assert sorted(r["job"] for r in rows) == sorted(written)
    for row in rows:
        m = written[row["job"]]
        assert row["status"] == "completed"
        assert int(row["seed"]) == m["seed"]
        assert row["override:loss"] == m["loss"]
        for key in ("val/dice", "val/iou", "val/loss", "val/dice_per_image"):
            assert float(row[f"best/{key}"]) == m["best"][key]
            assert float(row[f"final/{key}"]) == m["final"][key]
        assert float(row["monitor_value"]) == m["best"]["val/dice"]
        for cls in ("ellipse", "rectangle"):
            assert float(row[f"per_class/dice/{cls}"]) == m["per_class"]["dice"][cls]
        assert row["per_class/dice/triangle"] == ""  # null stays empty, not 0
        assert float(row["timing/train_s"]) == m["timing"]["train_s"]


def test_summary_md_has_one_row_per_config_with_mean_and_ddof1_std(finished) -> None:
    _, _, result = finished
    header = header_of(result.markdown)
    rows = table_rows(result.markdown)
    assert [r[header.index("configuration")] for r in rows] == ["loss=focal", "loss=dice", "loss=ce"]
    for row in rows:
        loss = row[header.index("configuration")].removeprefix("loss=")
        dice = list(BEST_DICE[loss].values())
        iou = [d - 0.1 for d in dice]
        assert row[header.index("val/dice")] == f"{statistics.mean(dice):.3f} ± {statistics.stdev(dice):.3f}"
        assert row[header.index("val/iou")] == f"{statistics.mean(iou):.3f} ± {statistics.stdev(iou):.3f}"
        assert row[header.index("seeds")] == "3"
        assert row[header.index("dice ellipse")] == f"{statistics.mean(d + 0.05 for d in dice):.3f}"
        assert row[header.index("dice triangle")] == "–"  # all-NaN class
        assert row[header.index("status")] == "done"
    # the dataclass rows agree with the table
    assert [r.label for r in result.rows] == ["loss=focal", "loss=dice", "loss=ce"]
    assert result.rows[0].std("val/dice") == pytest.approx(statistics.stdev(BEST_DICE["focal"].values()))


def test_paired_by_seed_wins_against_the_top_config_are_k_of_n(finished) -> None:
    _, _, result = finished
    header = header_of(result.markdown)
    wins = {
        r[header.index("configuration")]: r[header.index("beats #1")] for r in table_rows(result.markdown)
    }
    expected = {
        loss: sum(BEST_DICE[loss][s] > BEST_DICE["focal"][s] for s in (1, 2, 3)) for loss in ("dice", "ce")
    }
    assert wins == {
        "loss=focal": "ref",
        "loss=dice": f"{expected['dice']}/3",
        "loss=ce": f"{expected['ce']}/3",
    }
    assert expected == {"dice": 1, "ce": 0}


def test_min_mode_monitor_ranks_lowest_first_and_counts_lower_as_a_win(tmp_path: Path) -> None:
    for loss, by_seed in BEST_DICE.items():
        for seed, d in by_seed.items():
            make_job(tmp_path / f"loss={loss},seed={seed}", [f"loss={loss}", f"seed={seed}"],
                     best_dice=d, monitor="val/loss", monitor_mode="min")  # fmt: skip
    result = summarize(tmp_path, plots=False)
    assert (result.metric, result.mode) == ("val/loss", "min")
    assert [r.label for r in result.rows] == ["loss=focal", "loss=dice", "loss=ce"]  # val/loss = 1 - dice
    assert [(r.wins, r.shared_seeds) for r in result.rows[1:]] == [(1, 3), (0, 3)]
    assert "val/loss" in header_of(result.markdown)


def test_metric_override_reranks_by_that_metric(tmp_path: Path) -> None:
    make_job(tmp_path / "a", ["loss=a", "seed=1"], best_dice=0.9)
    make_job(tmp_path / "b", ["loss=b", "seed=1"], best_dice=0.6)
    result = summarize(
        tmp_path, metric="val/loss", plots=False
    )  # a loss: lower is better, so b (0.4) loses to a (0.1)
    assert result.mode == "min"
    assert [r.label for r in result.rows] == ["loss=a", "loss=b"]


def test_per_class_metric_can_rank_and_an_unknown_metric_is_refused(tmp_path: Path) -> None:
    make_job(tmp_path / "a", ["loss=a", "seed=1"], best_dice=0.6, triangle=0.9)
    make_job(tmp_path / "b", ["loss=b", "seed=1"], best_dice=0.8, triangle=0.3)
    result = summarize(tmp_path, metric="val/dice/triangle", plots=False)
    assert [r.label for r in result.rows] == ["loss=a", "loss=b"]
    with pytest.raises(ValueError, match="val/dice_typo"):
        summarize(tmp_path, metric="val/dice_typo", plots=False)


def test_a_preempted_job_counts_like_a_running_one_and_is_listed_as_preempted(tmp_path: Path) -> None:
    """status "preempted" (a signal stopped the job mid-run, segtrain.job.signals): unfinished, not failed."""
    make_job(tmp_path / "loss=dice,seed=1", ["loss=dice", "seed=1"], best_dice=0.8)
    make_job(tmp_path / "loss=dice,seed=2", ["loss=dice", "seed=2"], best_dice=0.7, status="preempted",
             epochs=2, max_epochs=3)  # fmt: skip
    md = summarize(tmp_path, plots=False).markdown
    assert "1 completed, 1 preempted" in md
    preempted = md.split("## Preempted jobs")[1]
    assert "loss=dice,seed=2" in preempted and "## Failed jobs" not in md
    header = header_of(md)
    (row,) = table_rows(md)
    assert row[header.index("seeds")] == "2"  # counted with its current best, as a running job is


def test_failed_running_and_missing_jobs_are_listed_not_dropped(tmp_path: Path) -> None:
    make_job(tmp_path / "loss=dice,seed=1", ["loss=dice", "seed=1"], best_dice=0.8)
    make_job(tmp_path / "loss=dice,seed=2", ["loss=dice", "seed=2"], best_dice=0.7, status="running",
             epochs=2, max_epochs=3)  # fmt: skip
    make_job(tmp_path / "loss=dice,seed=3", ["loss=dice", "seed=3"], best_dice=0.6, status="failed",
             error="ValueError: target has values outside [0, 3)\nTraceback...", epochs=1)  # fmt: skip
    make_job(tmp_path / "loss=ce,seed=1", ["loss=ce", "seed=1"], write_metrics=False)
    result = summarize(tmp_path, plots=False)
    md = result.markdown

    rows = read_csv(tmp_path / "summary.csv")
    status = {r["job"]: r["status"] for r in rows}
    assert status == {"loss=dice,seed=1": "completed", "loss=dice,seed=2": "running",
                      "loss=dice,seed=3": "failed", "loss=ce,seed=1": "incomplete"}  # fmt: skip
    errors = {r["job"]: r["error"] for r in rows}
    assert errors["loss=dice,seed=3"] == "ValueError: target has values outside [0, 3)"

    failed = md.split("## Failed jobs")[1]
    assert "loss=dice,seed=3" in failed and "ValueError: target has values outside [0, 3)" in failed
    incomplete = md.split("## Missing/incomplete jobs")[1]
    assert "loss=ce,seed=1" in incomplete and "no metrics.json" in incomplete
    assert "## Running jobs" in md

    header = header_of(md)
    by_config = {r[header.index("configuration")]: r for r in table_rows(md)}
    dice_row = by_config["loss=dice"]
    # the running job counts with its current best, the failed one does not
    assert dice_row[header.index("seeds")] == "2"
    assert (
        dice_row[header.index("val/dice")]
        == f"{statistics.mean([0.8, 0.7]):.3f} ± {statistics.stdev([0.8, 0.7]):.3f}"
    )
    assert dice_row[header.index("status")] == "1 of 3 done (1 running, 1 failed)"
    assert by_config["loss=ce"][header.index("val/dice")] == "–"
    assert by_config["loss=ce"][header.index("status")] == "0 of 1 done (1 incomplete)"


def test_seed_and_non_experiment_overrides_do_not_split_a_configuration(tmp_path: Path) -> None:
    make_job(tmp_path / "0", ["loss=dice", "seed=1", "hydra.job.chdir=true"], best_dice=0.8)
    make_job(tmp_path / "1", ["seed=2", "loss=dice", "trainer.resume=true"], best_dice=0.7)
    make_job(tmp_path / "2", ["loss=dice", "seed=3", "trainer.max_epochs=5"], best_dice=0.7)
    runs = collect_runs(tmp_path)
    assert [r.config for r in runs] == ["loss=dice", "loss=dice", "loss=dice,trainer.max_epochs=5"]
    assert [r.seed for r in runs] == [1, 2, 3]


def test_single_seed_shows_n_equals_1_instead_of_a_std(tmp_path: Path) -> None:
    make_job(tmp_path / "a", ["loss=a", "seed=1"], best_dice=0.9)
    result = summarize(tmp_path, plots=False)
    assert result.files == [tmp_path / "summary.csv", tmp_path / "summary.md"]
    assert not (tmp_path / "summary.png").exists()
    row = table_rows(result.markdown)[0]
    assert row[header_of(result.markdown).index("val/dice")] == "0.900 (n=1)"


def test_a_single_run_dir_is_summarized_in_place(tmp_path: Path) -> None:
    run = tmp_path / "outputs" / "2024-05-01" / "12-00-00"
    metrics = make_job(run, ["loss=focal_dice"], best_dice=0.77)
    result = summarize(run)
    assert all(p.parent == run and p.is_file() for p in result.files)
    rows = read_csv(run / "summary.csv")
    assert len(rows) == 1 and rows[0]["job"] == "."
    assert float(rows[0]["best/val/dice"]) == metrics["best"]["val/dice"]
    assert [r.label for r in result.rows] == ["loss=focal_dice"]
    assert table_rows(result.markdown)[0][2] == "1"


def test_jobs_are_found_at_any_depth(tmp_path: Path) -> None:
    make_job(tmp_path / "group_a" / "0", ["loss=a", "seed=1"], best_dice=0.9)
    make_job(tmp_path / "group_b" / "nested" / "0", ["loss=b", "seed=1"], best_dice=0.8)
    assert sorted(r.job for r in collect_runs(tmp_path)) == ["group_a/0", "group_b/nested/0"]


def test_two_sweeps_at_once_write_to_out_and_prefix_only_shared_configs(tmp_path: Path) -> None:
    sweep_a, sweep_b = tmp_path / "day1" / "12-00-00", tmp_path / "day2" / "12-00-00"
    make_job(sweep_a / "loss=dice,seed=1", ["loss=dice", "seed=1"], best_dice=0.8)
    make_job(sweep_a / "loss=ce,seed=1", ["loss=ce", "seed=1"], best_dice=0.7)
    make_job(sweep_b / "loss=dice,seed=1", ["loss=dice", "seed=1"], best_dice=0.75)
    make_job(sweep_b / "loss=lovasz,seed=1", ["loss=lovasz", "seed=1"], best_dice=0.85)
    out = tmp_path / "report"
    result = summarize([sweep_a, sweep_b], out_dir=out)
    assert all(p.parent == out and p.is_file() for p in result.files)
    assert not (sweep_a / "summary.md").exists()
    assert [r.label for r in result.rows] == [
        "loss=lovasz", "day1/12-00-00/loss=dice", "day2/12-00-00/loss=dice", "loss=ce",
    ]  # fmt: skip
    assert len(read_csv(out / "summary.csv")) == 4


def test_two_sweeps_default_to_the_first_dir(tmp_path: Path) -> None:
    make_job(tmp_path / "a" / "loss=x,seed=1", ["loss=x", "seed=1"], best_dice=0.8)
    make_job(tmp_path / "b" / "loss=y,seed=1", ["loss=y", "seed=1"], best_dice=0.7)
    result = summarize([tmp_path / "a", tmp_path / "b"], plots=False)
    assert result.md_path == tmp_path / "a" / "summary.md"
    assert [r.label for r in result.rows] == ["loss=x", "loss=y"]  # distinct: no prefix needed


def test_sweep_line_shows_a_path_below_the_current_dir_relative_else_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """summary.md is committed to docs/: it must not carry an absolute path of the machine it ran on."""
    sweep_a, sweep_b = tmp_path / "work" / "multirun" / "sweep_a", tmp_path / "elsewhere" / "sweep_b"
    make_job(sweep_a / "0", ["loss=a", "seed=1"], best_dice=0.8)
    make_job(sweep_b / "0", ["loss=b", "seed=1"], best_dice=0.7)
    monkeypatch.chdir(tmp_path / "work")
    markdown = summarize([sweep_a, sweep_b], out_dir=tmp_path / "out", plots=False).markdown
    assert "Sweeps: `multirun/sweep_a`, `sweep_b`  \n" in markdown
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert "Sweep: `sweep_a`  \n" in summarize(sweep_a, plots=False).markdown
    monkeypatch.chdir(sweep_a)  # the sweep dir itself is not below it: its name
    assert "Sweep: `sweep_a`  \n" in summarize(Path("."), plots=False).markdown
    assert str(tmp_path) not in markdown


def test_a_dir_without_jobs_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no job found"):
        collect_runs(tmp_path)


def test_cli_prints_the_table_and_honours_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_job(tmp_path / "sweep" / "loss=dice,seed=1", ["loss=dice", "seed=1"], best_dice=0.8)
    spec = importlib.util.spec_from_file_location("summarize_cli", REPO / "scripts" / "summarize.py")
    assert spec is not None and spec.loader is not None
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main([str(tmp_path / "sweep"), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    assert "| 1 | loss=dice | 1 | 0.800 (n=1)" in capsys.readouterr().out
    assert (tmp_path / "out" / "summary.md").is_file()
    assert not (tmp_path / "out" / "summary.png").exists()
    assert cli.main([str(tmp_path / "nowhere")]) == 2
