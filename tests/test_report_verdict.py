"""segtrain.report with per_case.csv: the case-level verdict in summary.md, verdict.json and ranks.png."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from segtrain.report import summarize
from segtrain.report.cases import CASE_RULE
from segtrain.report.render import DASH

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["split", "case", "class", "dice", "iou", "hd95", "nsd", "cldice", "tp", "fp", "fn", "ref_pixels",
           "pred_pixels"]  # fmt: skip


def row(split: str, case: str, cls: str, dice: float | None, present: bool = True, cldice: bool = True) -> dict:
    """One per_case.csv row with Dice `dice`; the other metrics follow from it (IoU = D / (2 - D))."""
    if dice is None:  # both empty: the empty rules' values
        empty = {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0, "cldice": 1.0 if cldice else ""}
        return {"split": split, "case": case, "class": cls, **empty, "tp": 0, "fp": 0, "fn": 0, "ref_pixels": 0,
                "pred_pixels": 0}  # fmt: skip
    return {"split": split, "case": case, "class": cls, "dice": dice, "iou": dice / (2 - dice),
            "hd95": 10 * (1 - dice), "nsd": dice, "cldice": dice if cldice else "", "tp": 50, "fp": 5, "fn": 5,
            "ref_pixels": 55 if present else 0, "pred_pixels": 55}  # fmt: skip


def make_job(
    job_dir: Path,
    overrides: list[str],
    cases: dict[str, float] | None,
    *,
    splits: tuple[str, ...] = ("val",),
    status: str = "completed",
    checkpoint: str = "best",
    threshold: float | None = None,
    rows: list[dict] | None = None,
    metrics_extra: dict[str, Any] | None = None,
    mode: str = "binary",
    dataset: dict[str, Any] | None = None,
) -> None:
    """A run directory as a current trainer leaves it: overrides, config.yaml, metrics.json, per_case.csv
    (binary: one foreground row per case with Dice `cases[case]`; `rows` replaces them). `dataset`: more
    keys of config.yaml's dataset section (e.g. background_index)."""
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    config = {"seed": 0, "dataset": {"mode": mode, **(dataset or {})}}
    (job_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    seed = next((int(o.split("=")[1]) for o in overrides if o.startswith("seed=")), 0)
    mean = statistics.mean(cases.values()) if cases else 0.5
    metrics: dict[str, Any] = {
        "status": status, "error": "RuntimeError: CUDA out of memory" if status == "failed" else None,
        "seed": seed, "monitor": "val/dice", "monitor_mode": "max", "epochs_completed": 3, "max_epochs": 3,
        "best": {"epoch": 2, "val/dice": mean, "val/iou": mean - 0.1}, "final": {"epoch": 3, "val/dice": mean},
        "per_class": {"dice": {"fg": mean}, "iou": {"fg": mean - 0.1}},
        "selected": {"checkpoint": checkpoint, "epoch": 2 if checkpoint == "best" else 3},
        "empty_rules": {"both_empty": {"dice": 1.0}},
        "timing": {"train_s": 40.0},
    }  # fmt: skip
    if "test" in splits:
        metrics["test"] = {"dice": mean, "iou": None, "hd95": None, "nsd": None, "cldice": None, "per_class": {}}
    if threshold is not None:
        metrics["threshold"] = {"value": threshold, "tuned_on": "val"}
    metrics.update(metrics_extra or {})
    (job_dir / "metrics.json").write_text(json.dumps(metrics))
    if status != "completed":
        return
    if rows is None:
        rows = [row(s, c, "fg", v) for s in splits for c, v in (cases or {}).items()]
    with (job_dir / "per_case.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def make_sweep(root: Path, values: dict[str, dict[int, dict[str, float]]], **kw: Any) -> None:
    """values[loss][seed][case] = Dice: one job per (loss, seed)."""
    for loss, by_seed in values.items():
        for seed, cases in by_seed.items():
            make_job(root / f"loss={loss},seed={seed}", [f"loss={loss}", f"seed={seed}"], cases, **kw)


def base_cases(n: int = 40, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {f"img_{i:03d}": float(x) for i, x in enumerate(rng.uniform(0.5, 0.8, n))}


def shifted(cases: dict[str, float], by: float, noise: float = 0.0, seed: int = 1) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {c: float(np.clip(v + by + rng.normal(0, noise), 0, 1)) for c, v in cases.items()}


def tables(markdown: str) -> list[list[list[str]]]:
    """Every table of summary.md, each a list of rows (header first, separator left out) of cells."""
    out, current = [], None
    for line in markdown.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                out.append(current)
            if not set(line) <= set("|-: "):
                current.append([c.strip() for c in line.strip("|").split(" | ")])
        else:
            current = None
    return out


def by_config(table: list[list[str]], key: str = "configuration") -> dict[str, dict[str, str]]:
    header = table[0]
    return {r[header.index(key)]: dict(zip(header, r, strict=True)) for r in table[1:]}


@pytest.fixture(scope="module")
def clear(tmp_path_factory: pytest.TempPathFactory):
    """a clearly best, b tied with a (identical values), c clearly worse; three seeds, 40 cases."""
    root = tmp_path_factory.mktemp("clear")
    base = base_cases()
    values = {
        "a": {s: shifted(base, 0.1, 0.01, seed=s) for s in (1, 2, 3)},
        "c": {s: shifted(base, -0.2, 0.01, seed=10 + s) for s in (1, 2, 3)},
    }
    values["b"] = values["a"]
    make_sweep(root, values)
    return root, values, summarize(root, alpha=0.05, n_boot=200)


def test_summary_opens_with_the_verdict_sentence_and_names_the_tie_set(clear) -> None:
    _, _, result = clear
    first = result.markdown.splitlines()[2]
    assert first.startswith("On val (40 cases, 3 seeds) `loss=")
    leader = result.verdict.leader
    other = "loss=b" if leader == "loss=a" else "loss=a"
    assert set(result.verdict.tie_set) == {"loss=a", "loss=b"}
    assert f"Equivalent (95% interval within +-0.01 Dice): `{other}`." in first
    assert "Worse (seeds and cases, Holm over all 3 pairs, alpha = 0.05): `loss=c` by 0.299 Dice [" in first
    assert "selected on this same split" in first
    comparison = by_config(tables(result.markdown)[1])
    assert comparison[other]["call"] == "equivalent" and comparison[other]["p"] == "1.000"
    assert comparison["loss=c"]["call"] == "worse" and comparison[other]["seeds to decide"] == DASH
    assert float(comparison["loss=c"]["diff"]) == pytest.approx(0.3, abs=0.01)
    main = by_config(tables(result.markdown)[0])
    assert [main[c]["verdict"] for c in ("loss=a", "loss=b", "loss=c")].count("equivalent") == 1
    assert main["loss=c"]["verdict"] == "worse" and main[leader]["verdict"] == "leader"


def test_val_scoring_says_selection_and_scoring_share_a_split(clear) -> None:
    _, _, result = clear
    assert "**Selection and scoring share a split.**" in result.markdown
    assert "each job's checkpoint was selected" in result.markdown
    assert CASE_RULE in result.markdown


def test_columns_are_case_level_means_and_verdict_json_agrees_with_per_case_files(clear) -> None:
    root, values, result = clear
    # by hand: per case the mean over seeds, then the mean over cases
    cases = sorted(values["c"][1])
    hand = statistics.mean(statistics.mean(values["c"][s][c] for s in (1, 2, 3)) for c in cases)
    hand_iou = statistics.mean(statistics.mean(values["c"][s][c] / (2 - values["c"][s][c]) for s in (1, 2, 3))
                               for c in cases)  # fmt: skip
    saved = json.loads((root / "verdict.json").read_text())
    stability = {s["config"]: s for s in saved["verdict"]["stability"]}
    assert stability["loss=c"]["mean"] == pytest.approx(hand, abs=1e-12)
    assert saved["means"]["iou"]["loss=c"] == pytest.approx(hand_iou, abs=1e-12)
    assert saved["split"] == "val" and saved["verdict"]["n_cases"] == 40
    assert saved["verdict"]["n_boot"] == 200 and saved["verdict"]["alpha"] == 0.05
    assert set(saved["verdict"]["tie_set"]) == {"loss=a", "loss=b"}
    row = by_config(tables(result.markdown)[0])["loss=c"]
    assert row["Dice"] == f"{hand:.3f}" and row["IoU"] == f"{hand_iou:.3f}"
    assert row["dice fg"] == f"{hand:.3f}"
    assert row["seeds"] == "3" and row["cases"] == "40" and row["epoch"] == "2 (best)"
    assert (root / "ranks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert root / "verdict.json" in result.files and root / "ranks.png" in result.files
    stab = by_config(tables(result.markdown)[2])
    assert stab["loss=c"]["rank"] == "3" and stab["loss=c"]["P(rank 1)"] == "0.00"


def test_seeds_that_disagree_show_in_beats_1_and_a_failed_seed_is_listed(tmp_path: Path) -> None:
    base = base_cases(30)
    values = {
        "a": {1: shifted(base, 0.00), 2: shifted(base, 0.10), 3: shifted(base, 0.10)},
        "b": {1: shifted(base, 0.05), 2: shifted(base, 0.00), 3: shifted(base, 0.00)},
        "c": {1: shifted(base, -0.1), 2: shifted(base, -0.1)},
    }
    make_sweep(tmp_path, values)
    make_job(tmp_path / "loss=c,seed=3", ["loss=c", "seed=3"], None, status="failed")
    result = summarize(tmp_path, plots=False)
    assert result.verdict.ranking == ("loss=a", "loss=b", "loss=c")
    main = by_config(tables(result.markdown)[0])
    assert main["loss=b"]["beats #1"] == "1/3"  # seed 1: b is better; seeds 2 and 3: a is
    assert main["loss=c"]["beats #1"] == "0/2" and main["loss=c"]["seeds"] == "2"
    assert "seed 3 of `loss=c` (reported failed; its other seeds count)" in result.markdown.splitlines()[2]
    left_out = result.markdown.split("## Jobs left out of the case-level verdict")[1]
    assert "| loss=c,seed=3 | loss=c | 3 | – | failed: RuntimeError: CUDA out of memory |" in left_out
    assert "## Failed jobs" in result.markdown
    assert not (tmp_path / "ranks.png").exists() and (tmp_path / "verdict.json").is_file()


def test_test_split_is_scored_when_every_job_has_one(tmp_path: Path) -> None:
    base = base_cases(20)
    make_sweep(tmp_path, {"a": {1: shifted(base, 0.1)}, "b": {1: base}}, splits=("val", "test"), threshold=0.4)
    result = summarize(tmp_path, plots=False)
    assert result.markdown.splitlines()[2].startswith("On test (20 cases, 1 seed) `loss=a` ranks first")
    assert "Scored on `test`, a split held out" in result.markdown
    assert "share a split" not in result.markdown
    assert by_config(tables(result.markdown)[0])["loss=a"]["threshold"] == "0.40*"
    # one job without test rows: everything is scored on val, and the report says so
    make_job(tmp_path / "loss=c,seed=1", ["loss=c", "seed=1"], shifted(base, -0.1), checkpoint="last")
    result = summarize(tmp_path, plots=False)
    assert result.cases.split == "val"
    assert "**Selection and scoring share a split.**" in result.markdown
    assert "checkpoints: 2 best, 1 last" in result.markdown


def test_last_checkpoint_on_val_says_the_epoch_was_not_chosen_on_val(tmp_path: Path) -> None:
    base = base_cases(20)
    make_sweep(tmp_path, {"a": {1: shifted(base, 0.1)}, "b": {1: base}}, checkpoint="last")
    result = summarize(tmp_path, plots=False)
    assert "checkpoint is its last epoch, not chosen on val" in result.markdown
    assert "picking the winning configuration on val is itself a selection on val" in result.markdown
    assert "selected on this same split" not in result.markdown.splitlines()[2]
    assert by_config(tables(result.markdown)[0])["loss=a"]["epoch"] == "3 (last)"


def test_folds_are_pooled_into_one_configuration(tmp_path: Path) -> None:
    base = base_cases(40)
    folds = {0: list(base)[:20], 1: list(base)[20:]}
    for loss, by in (("a", 0.1), ("b", 0.0)):
        for seed in (1, 2):
            cases = shifted(base, by, 0.01, seed=seed)
            for fold, names in folds.items():
                overrides = [f"loss={loss}", f"seed={seed}", f"dataset.fold={fold}"]
                make_job(tmp_path / f"loss={loss},seed={seed},fold={fold}", overrides, {c: cases[c] for c in names})
    result = summarize(tmp_path, plots=False)
    assert [r.label for r in result.rows] == ["loss=a", "loss=b"]
    assert result.verdict.n_cases == 40 and result.cases.n_folds == 2
    assert result.markdown.splitlines()[2].startswith("On val (40 cases, 2 seeds, 2 folds) `loss=a` ranks first")
    assert by_config(tables(result.markdown)[0])["loss=a"]["seeds/folds"] == "2/2"
    # a case in two folds of one seed is an error that names both jobs
    make_job(tmp_path / "loss=b,seed=1,fold=9", ["loss=b", "seed=1", "dataset.fold=9"], {"img_000": 0.5})
    with pytest.raises(ValueError, match="img_000.*loss=b,seed=1,fold=0 and loss=b,seed=1,fold=9"):
        summarize(tmp_path, plots=False)


MULTICLASS_ROWS = [
    row("val", "x", "background", 0.99, cldice=False),
    row("val", "x", "cat", 0.6, cldice=False),
    row("val", "x", "dog", None, cldice=False),  # absent from reference and prediction
    row("val", "y", "background", 0.95, cldice=False),
    row("val", "y", "cat", 0.2, cldice=False),
    row("val", "y", "dog", 0.4, cldice=False),
    row("val", "z", "background", 0.97, cldice=False),
    row("val", "z", "cat", None, cldice=False),
    row("val", "z", "dog", None, cldice=False),
]  # fmt: skip  (z: no foreground: both-empty value 1)
MULTICLASS_PER_CLASS = {"dice": {"background": 0.9, "cat": 0.5, "dog": None}}


def make_multiclass_sweep(root: Path, dataset: dict[str, Any] | None = None, **kw: Any) -> None:
    """Two multiclass jobs (b: half of a's Dice everywhere) over MULTICLASS_ROWS; `dataset`: config keys."""
    rows_b = [{**r, "dice": 0.5 * float(r["dice"])} for r in MULTICLASS_ROWS]
    for loss, rows in (("a", MULTICLASS_ROWS), ("b", rows_b)):
        make_job(root / loss, [f"loss={loss}", "seed=1"], None, rows=rows, mode="multiclass", dataset=dataset,
                 metrics_extra={"per_class": MULTICLASS_PER_CLASS, **kw})  # fmt: skip


@pytest.mark.parametrize("dataset", [None, {"background_index": 0}], ids=["key absent (old run)", "0"])
def test_multiclass_case_mean_leaves_out_background_and_absent_classes(tmp_path: Path, dataset) -> None:
    make_multiclass_sweep(tmp_path, dataset)
    result = summarize(tmp_path, plots=False)
    saved = json.loads((tmp_path / "verdict.json").read_text())
    assert saved["background_classes"] == ["background"]
    assert saved["means"]["dice"]["loss=a"] == pytest.approx(statistics.mean([0.6, (0.2 + 0.4) / 2, 1.0]))
    assert saved["class_dice"]["loss=a"]["dog"] == pytest.approx(0.4)
    assert saved["means"]["cldice"] == {}  # undefined in multiclass mode: no column
    header = tables(result.markdown)[0][0]
    assert "clDice" not in header and {"dice background", "dice cat", "dice dog"} <= set(header)
    assert "(background here: `background`)" in result.markdown


def test_multiclass_without_a_background_class_counts_class_0(tmp_path: Path) -> None:
    # dataset.background_index: null (CamVid's class 0 is sky): class 0 is an object class in every case mean
    make_multiclass_sweep(tmp_path, {"background_index": None})
    result = summarize(tmp_path, plots=False)
    saved = json.loads((tmp_path / "verdict.json").read_text())
    assert saved["background_classes"] == [] and saved["no_background_class"] is True
    expected = statistics.mean([(0.99 + 0.6) / 2, (0.95 + 0.2 + 0.4) / 3, 0.97])  # z: class 0 is present
    assert saved["means"]["dice"]["loss=a"] == pytest.approx(expected)
    assert "background here" not in result.markdown
    note = "(no background class here: `dataset.background_index` is null, so every class is in the mean)"
    assert note in result.markdown


def test_background_index_picks_the_class_left_out(tmp_path: Path) -> None:
    # index 1 (cat) is the background: background and dog are averaged; metrics.json's stored config wins
    make_multiclass_sweep(tmp_path, {"background_index": None}, config={"dataset": {"background_index": 1}})
    result = summarize(tmp_path, plots=False)
    saved = json.loads((tmp_path / "verdict.json").read_text())
    assert saved["background_classes"] == ["cat"] and saved["no_background_class"] is False
    expected = statistics.mean([0.99, (0.95 + 0.4) / 2, 0.97])
    assert saved["means"]["dice"]["loss=a"] == pytest.approx(expected)
    assert "(background here: `cat`)" in result.markdown


BAD_BACKGROUNDS = [
    (3, r"background_index=3 but metrics.json lists 3 classes"),
    ("sky", r"background_index='sky' in its config; expected a class index"),
]


@pytest.mark.parametrize("bad,message", BAD_BACKGROUNDS)
def test_a_job_with_a_bad_background_index_is_left_out_with_the_key_named(tmp_path: Path, bad, message) -> None:
    make_multiclass_sweep(tmp_path)
    make_job(tmp_path / "c", ["loss=c", "seed=1"], None, rows=MULTICLASS_ROWS, mode="multiclass",
             dataset={"background_index": bad}, metrics_extra={"per_class": MULTICLASS_PER_CLASS})  # fmt: skip
    summarize(tmp_path, plots=False)
    saved = json.loads((tmp_path / "verdict.json").read_text())
    [left_out] = saved["left_out_jobs"]
    assert left_out["config"] == "loss=c"
    assert re.search(message, left_out["reason"])


def test_halving_rungs_use_the_same_background(tmp_path: Path) -> None:
    from segtrain.halving.jobs import Job, rung_records

    make_multiclass_sweep(tmp_path, {"background_index": None})
    jobs = [Job(f"loss={x}", 1, None, [f"loss={x}"], tmp_path / x) for x in "ab"]
    records, problems = rung_records(jobs, tmp_path, epochs=3)
    assert problems == {}
    values = {(config, case): v for config, _, case, v in records}
    assert values[("loss=a", "z")] == pytest.approx(0.97)  # class 0 alone is present in z: it is the case value
    assert values[("loss=a", "x")] == pytest.approx((0.99 + 0.6) / 2)


def test_old_sweep_without_per_case_csv_falls_back_to_the_seed_level_report(tmp_path: Path) -> None:
    make_sweep(tmp_path, {"a": {1: base_cases(5)}, "b": {1: shifted(base_cases(5), -0.1)}})
    for p in tmp_path.rglob("per_case.csv"):
        p.unlink()
    result = summarize(tmp_path, plots=False)
    assert result.cases is None and not (tmp_path / "verdict.json").exists()
    assert "**No case-level verdict:** no job has a per_case.csv" in result.markdown
    assert "scripts/evaluate.py" in result.markdown
    assert "mean ± std over seeds" in result.markdown


def test_a_job_without_per_case_csv_in_a_current_sweep_is_listed(tmp_path: Path) -> None:
    base = base_cases(10)
    make_sweep(tmp_path, {"a": {1: base, 2: base}, "b": {1: shifted(base, -0.1), 2: shifted(base, -0.1)}})
    (tmp_path / "loss=b,seed=2" / "per_case.csv").unlink()
    result = summarize(tmp_path, plots=False)
    left_out = result.markdown.split("## Jobs left out of the case-level verdict")[1]
    assert "| loss=b,seed=2 | loss=b | 2 | – | no per_case.csv" in left_out
    assert by_config(tables(result.markdown)[0])["loss=b"]["seeds"] == "1"


def test_cli_alpha_option_reaches_the_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = base_cases(12)
    make_sweep(tmp_path / "sweep", {"a": {1: shifted(base, 0.1)}, "b": {1: base}})
    spec = importlib.util.spec_from_file_location("summarize_cli", REPO / "scripts" / "summarize.py")
    assert spec is not None and spec.loader is not None
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main([str(tmp_path / "sweep"), "--alpha", "0.01", "--boot", "50", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "alpha = 0.01" in out
    saved = json.loads((tmp_path / "sweep" / "verdict.json").read_text())
    assert saved["verdict"]["alpha"] == 0.01 and saved["verdict"]["n_boot"] == 50
    assert math.isclose(saved["verdict"]["comparisons"][0]["diff_mean"], 0.1, abs_tol=1e-9)


def test_a_sweep_with_broken_jobs_is_summarised_from_the_rest(tmp_path):
    """Files a killed or crashed job leaves behind never stop the report: each left-out job is listed with its
    reason, and the verdict says which configurations lost seeds."""
    base = base_cases()
    values = {loss: {s: shifted(base, by, 0.01, seed=10 * i + s) for s in (1, 2, 3)}
              for i, (loss, by) in enumerate((("a", 0.1), ("b", 0.0)))}  # fmt: skip
    make_sweep(tmp_path, values)
    a2, a3, b2, b3 = (tmp_path / f"loss={x},seed={s}" for x, s in (("a", 2), ("a", 3), ("b", 2), ("b", 3)))
    text = (a2 / "per_case.csv").read_text()
    (a2 / "per_case.csv").write_text(text[: len(text) // 2].rsplit(",", 3)[0])  # cut mid-row: a full disk
    (a3 / "metrics.json").write_text('{"status": "completed", "best": ')  # malformed
    (b2 / "metrics.json").write_text("")  # empty
    metrics = json.loads((b3 / "metrics.json").read_text())
    (b3 / "metrics.json").write_text(json.dumps({**metrics, "status": "running"}))  # still running

    result = summarize(tmp_path, n_boot=50)

    (left_out,) = [t for t in tables(result.markdown) if t[0] == ["job", "configuration", "seed", "fold", "reason"]]
    left = {r[0]: r[-1] for r in left_out[1:]}
    assert set(left) >= {"loss=a,seed=2", "loss=a,seed=3", "loss=b,seed=2", "loss=b,seed=3"}, left
    assert "per_case.csv line" in left["loss=a,seed=2"] and "a truncated file" in left["loss=a,seed=2"]
    assert "still running" in left["loss=b,seed=3"]
    sentence = json.loads((tmp_path / "verdict.json").read_text())["sentence"]
    assert "seed 2 of `loss=a`" in sentence and "seed 3 of `loss=b`" in sentence
    assert "unreadable metrics.json" in left["loss=a,seed=3"] and "unreadable metrics.json" in left["loss=b,seed=2"]
