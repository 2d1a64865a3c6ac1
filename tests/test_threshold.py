"""Tuned sigmoid thresholds: the grid sweep, the choice, the end-of-job tuning, evaluate.py / predict.py."""

import json

import numpy as np
import pytest
import torch
from conftest import ROOT, TINY, run_train
from PIL import Image
from test_report_verdict import base_cases, by_config, make_job, shifted, tables

from segtrain.build import build_eval_loader, build_split
from segtrain.checkpoint import annotate_checkpoint, load_checkpoint
from segtrain.config_checks import check_config
from segtrain.inference import evaluate_cases, model_from_checkpoint, resolve_threshold
from segtrain.inference.evaluation import LogitCache, threshold_sweep
from segtrain.metrics.threshold import (
    GRID_SPEC,
    ThresholdSweep,
    check_thresholds,
    choose_thresholds,
    shift_logits,
    threshold_grid,
)
from segtrain.report import summarize
from segtrain.run_config import config_differences

GRID = threshold_grid()


def logit(p):
    p = np.asarray(p, dtype=np.float64)
    return np.log(p / (1 - p))


def brute_force(probs: np.ndarray, target: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """TP/FP/FN per channel (axis 1 of N x C x P) and grid threshold, pixel by pixel in float64."""
    c = probs.shape[1]
    out = {k: np.zeros((c, len(GRID)), dtype=np.int64) for k in ("tp", "fp", "fn")}
    for ch in range(c):
        p, g, v = probs[:, ch].ravel(), target[:, ch].ravel() == 1, valid[:, ch].ravel()
        for k, t in enumerate(GRID):
            pred = p > t
            out["tp"][ch, k] = np.sum(pred & g & v)
            out["fp"][ch, k] = np.sum(pred & ~g & v)
            out["fn"][ch, k] = np.sum(~pred & g & v)
    return out


def test_grid_is_005_to_095():
    assert GRID_SPEC == (0.05, 0.95, 0.05)
    assert GRID == [round(0.05 * i, 2) for i in range(1, 20)] and 0.5 in GRID


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_sweep_counts_match_a_brute_force_count_over_several_batches(mode):
    rng = np.random.default_rng(0)
    c = 1 if mode == "binary" else 3
    # probabilities away from the grid values, so float32 logit rounding cannot move a pixel across a cut
    probs = rng.uniform(0.001, 0.999, (6, c, 9, 11))
    probs = np.where(np.abs(probs * 20 - np.round(probs * 20)) < 1e-3, probs + 2e-3, probs)
    target = (rng.uniform(size=probs.shape) < 0.3).astype(np.int64)
    valid = np.ones_like(target, dtype=bool)
    sweep = ThresholdSweep(mode, c, ignore_index=255 if mode == "binary" else None)
    masks = target.copy()
    if mode == "binary":
        valid = rng.uniform(size=target.shape) > 0.2
        masks = np.where(valid, target, 255)[:, 0]  # N x H x W with void pixels, as the data sets give
    logits = torch.from_numpy(logit(probs)).float()
    for lo, hi in ((0, 2), (2, 5), (5, 6)):
        sweep.update(logits[lo:hi], torch.from_numpy(masks[lo:hi]))
    expected = brute_force(probs, target, valid)
    got = sweep.counts()
    for key in ("tp", "fp", "fn"):
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    tp, fp, fn = (expected[k] for k in ("tp", "fp", "fn"))
    np.testing.assert_allclose(sweep.dice(), 2 * tp / (2 * tp + fp + fn))
    assert sweep.positives().tolist() == [int(np.sum(target[:, ch] * valid[:, ch])) for ch in range(c)]


def test_sweep_agrees_with_the_hard_predictions_at_every_threshold():
    """Counts in logit space and predictions by shifted logits make the same pixels positive, exactly."""
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 16, 16) * 3
    target = (torch.rand(2, 16, 16) < 0.4).long()
    sweep = ThresholdSweep("binary", 1)
    sweep.update(logits, target)
    for k, t in enumerate(GRID):
        pred = shift_logits(logits, [t]) > 0
        assert int((pred[:, 0] & (target == 1)).sum()) == sweep.counts()["tp"][0, k]
        assert int((pred[:, 0] & (target == 0)).sum()) == sweep.counts()["fp"][0, k]


def constructed(pos_p: float, neg_p: float, n_pos: int = 50, n_neg: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """One channel's logits and target: every positive at probability pos_p, every negative at neg_p."""
    probs = np.r_[np.full(n_pos, pos_p), np.full(n_neg, neg_p)]
    target = np.r_[np.ones(n_pos, np.int64), np.zeros(n_neg, np.int64)]
    return logit(probs), target


def test_the_chosen_threshold_is_the_known_best_and_ties_go_to_the_one_closest_to_half():
    for pos_p, neg_p, best in ((0.32, 0.27, 0.30), (0.62, 0.27, 0.5), (0.93, 0.61, 0.65), (0.44, 0.12, 0.4)):
        x, g = constructed(pos_p, neg_p)
        sweep = ThresholdSweep("binary", 1)
        sweep.update(torch.tensor(x, dtype=torch.float32).view(1, 1, 1, -1), torch.tensor(g).view(1, 1, -1))
        assert choose_thresholds(sweep.dice(), GRID, sweep.positives()) == [best], (pos_p, neg_p)
        assert sweep.dice_at([best]) == [1.0]
    # equal distance from 0.5: the lower one
    assert choose_thresholds(np.array([[0.0] * 8 + [1.0, 0.0, 1.0] + [0.0] * 8]), GRID) == [0.45]


def test_multilabel_thresholds_are_chosen_per_channel_and_an_empty_channel_keeps_half():
    x0, g0 = constructed(0.32, 0.27)  # best 0.30
    x1, g1 = constructed(0.77, 0.72)  # best 0.75
    x2, g2 = constructed(0.9, 0.2, n_pos=0, n_neg=250)  # no positive pixel: Dice 0 or undefined everywhere
    logits = torch.tensor(np.stack([x0, x1, x2]), dtype=torch.float32).view(1, 3, 1, -1)
    target = torch.tensor(np.stack([g0, g1, g2])).view(1, 3, 1, -1).float()  # float masks are rounded
    sweep = ThresholdSweep("multilabel", 3)
    sweep.update(logits, target)
    assert choose_thresholds(sweep.dice(), GRID, sweep.positives()) == [0.3, 0.75, 0.5]
    assert np.isnan(sweep.dice()[2]).sum() > 0 and np.nanmax(sweep.dice()[2]) == 0.0


def test_shift_logits_cuts_each_channel_at_its_threshold():
    logits = torch.tensor(logit([[0.2, 0.4, 0.6], [0.2, 0.4, 0.6]]), dtype=torch.float32).view(1, 2, 1, 3)
    pred = shift_logits(logits, [0.3, 0.5]) > 0
    assert pred.view(2, 3).tolist() == [[False, True, True], [False, False, True]]
    assert shift_logits(logits, [0.5, 0.5]) is logits and shift_logits(logits, None) is logits
    assert (shift_logits(logits[0], [0.3, 0.5]) > 0).view(2, 3).tolist() == pred.view(2, 3).tolist()  # C x H x W
    with pytest.raises(ValueError, match="3 threshold"):
        shift_logits(logits, [0.3, 0.5, 0.5])


def test_threshold_values_are_checked():
    assert check_thresholds(0.3, 2) == [0.3, 0.3] and check_thresholds([0.2, 0.7], 2) == [0.2, 0.7]
    for bad in (0, 1, 1.5, -0.1, True, "0.3"):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            check_thresholds(bad, 1)
    with pytest.raises(ValueError, match="expected 2 values"):
        check_thresholds([0.3], 2)
    with pytest.raises(ValueError, match="sigmoid outputs"):
        ThresholdSweep("multiclass", 4)


def test_resolve_threshold_auto_number_and_multiclass():
    stored = {"threshold": {"value": 0.3, "tuned_on": "val"}}
    assert resolve_threshold("auto", stored, "binary", 1)[0] == [0.3]
    values, why = resolve_threshold("auto", {}, "binary", 1, "x.pt")
    assert values == [0.5] and "x.pt holds no tuned threshold" in why
    assert resolve_threshold(0.5, stored, "binary", 1)[0] == [0.5]
    assert resolve_threshold(0.7, stored, "multilabel", 2)[0] == [0.7, 0.7]
    assert resolve_threshold("auto", {"threshold": {"value": [0.2, 0.8]}}, "multilabel", 2)[0] == [0.2, 0.8]
    assert resolve_threshold("auto", stored, "multiclass", 4)[0] is None
    with pytest.raises(ValueError, match="multiclass"):
        resolve_threshold(0.3, {}, "multiclass", 4)
    with pytest.raises(ValueError, match="expected auto"):
        resolve_threshold("high", {}, "binary", 1)
    with pytest.raises(ValueError, match="strictly between"):
        resolve_threshold(1.2, {}, "binary", 1)


def test_tuning_then_scoring_val_predicts_it_once_with_the_same_rows(monkeypatch):
    """The end of a job with job.tune_threshold: the pass that tunes the threshold keeps val's logits
    (LogitCache), the pass that scores val with it reads them: one forward pass per batch, not two, and the
    per-case rows are those of predicting again (also what a cache past its limit falls back to)."""
    import segtrain.inference.evaluation as evaluation

    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 1, 3, padding=1).eval()
    batches = [
        {"image": torch.randn(2, 3, 16, 16), "mask": (torch.rand(2, 16, 16) < 0.3).long(), "id": [f"c{i}a", f"c{i}b"]}
        for i in range(3)
    ]
    calls = []
    real = evaluation.predict_logits
    monkeypatch.setattr(evaluation, "predict_logits", lambda m, x, **kw: calls.append(x.shape[0]) or real(m, x, **kw))
    kw = dict(mode="binary", num_classes=1, class_names=["fg"], nsd_tolerance=2.0, split="val")

    kept = LogitCache(1 << 20)
    sweep = threshold_sweep(model, batches, mode="binary", num_channels=1, keep=kept)
    thresholds = choose_thresholds(sweep.dice(), sweep.grid, sweep.positives())
    once = evaluate_cases(model, batches, threshold=thresholds, batches=kept.batches(), **kw)
    assert kept.complete and len(calls) == 3  # val read once
    twice = evaluate_cases(model, batches, threshold=thresholds, **kw)
    assert len(calls) == 6 and once == twice

    small = LogitCache(100)  # past its limit: holds nothing, and the scoring pass predicts again
    threshold_sweep(model, batches, mode="binary", num_channels=1, keep=small)
    assert not small.complete
    with pytest.raises(RuntimeError, match="went past its limit"):
        small.batches()


def compose_train(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def test_tune_threshold_is_refused_in_multiclass_mode_and_must_be_a_bool():
    cfg = {"model": {"classes": 4, "in_channels": 3}, "loss": {"mode": "multiclass"},
           "dataset": {"mode": "multiclass", "num_classes": 4, "in_channels": 3},
           "job": {"tune_threshold": True}}  # fmt: skip
    with pytest.raises(ValueError, match="job.tune_threshold=true but dataset.mode=multiclass"):
        check_config(cfg)
    check_config({**cfg, "job": {"tune_threshold": False}})
    with pytest.raises(Exception, match="job.tune_threshold=sometimes") as err:  # Hydra, against JobConfig
        compose_train(["job.tune_threshold=sometimes"])
    assert "Value 'sometimes' is not a valid bool" in str(err.value.__cause__)


def test_a_stored_config_from_before_the_key_equals_the_default():
    old = {"trainer": {"select": "last"}}  # before tune_threshold existed, and before the job group
    assert config_differences(old, {"job": {"select": "last", "tune_threshold": False}}) == []
    assert config_differences(old, {"job": {"select": "last", "tune_threshold": True}}) != []


# ---- a real binary job with job.tune_threshold=true --------------------------------------------------

BINARY_ARGS = [*TINY, "dataset=shapes_binary", "loss=bce", "dataset.length.test=8", "logger=none",
               "job.tune_threshold=true"]  # fmt: skip


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tuned")
    run = tmp / "sweep" / "loss=bce,seed=0"
    run_train([*BINARY_ARGS, f"hydra.run.dir='{run}'"], tmp)
    return run


def test_job_tunes_on_val_records_it_and_evaluates_with_it(tuned_run):
    metrics = json.loads((tuned_run / "metrics.json").read_text())
    t = metrics["threshold"]
    assert t["tuned_on"] == "val" and t["grid"] == [0.05, 0.95, 0.05] and t["channels"] == ["shape"]
    assert isinstance(t["value"], float) and t["value"] in GRID
    assert set(t["dice_at_0.5"]) == set(t["dice_at_tuned"]) == {"val", "test"}
    assert t["dice_at_tuned"]["val"] >= t["dice_at_0.5"]["val"]  # chosen on val: never worse there
    # the selected checkpoint (last.pt) holds it, and so does best.pt where it is the same file
    state = load_checkpoint(tuned_run / "checkpoints" / "last.pt")
    assert state["threshold"]["value"] == t["value"] and state["threshold"]["epoch"] == metrics["selected"]["epoch"]
    # per_case.csv is the case-by-case evaluation at that threshold
    model, config = model_from_checkpoint(tuned_run / "checkpoints" / "last.pt")
    data = build_split(config["dataset"], "test")
    sweep = ThresholdSweep("binary", 1)
    rows = evaluate_cases(model, build_eval_loader(config["dataset"], data), mode="binary", num_classes=1,
                          class_names=["shape"], nsd_tolerance=2.0, split="test", threshold=[t["value"]],
                          on_logits=lambda lg, y, _: sweep.update(lg, y))  # fmt: skip
    written = [r for r in read_csv(tuned_run / "per_case.csv") if r["split"] == "test"]
    assert [int(r["pred_pixels"]) for r in written] == [r["pred_pixels"] for r in rows]
    assert sweep.dice_at([t["value"]])[0] == pytest.approx(t["dice_at_tuned"]["test"])
    assert sweep.dice_at([0.5])[0] == pytest.approx(t["dice_at_0.5"]["test"])
    log = (tuned_run / "train.log").read_text()
    assert "threshold tuned on val" in log and "stored the threshold in" in log


def read_csv(path):
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))


def with_threshold(run, value, tmp_path):
    """A copy of the run's last.pt that holds ``value`` as its tuned threshold (a known value to test with)."""
    ckpt = tmp_path / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes((run / "checkpoints" / "last.pt").read_bytes())
    annotate_checkpoint(ckpt, {"threshold": {"value": value, "tuned_on": "val"}})
    return ckpt


def test_evaluate_script_threshold_auto_half_and_a_number(tuned_run, tmp_path):
    from segtrain.tools import evaluate as evaluate_script

    ckpt = with_threshold(tuned_run, 0.2, tmp_path)
    pixels = {}
    for setting in ("auto", "0.5", "0.2", "0.8"):
        out = tmp_path / f"eval_{setting}"
        assert evaluate_script.main([f"checkpoint={ckpt}", f"threshold={setting}", f"output={out}"]) == 0
        summary = json.loads((out / "metrics.json").read_text())
        pixels[setting] = sum(int(r["pred_pixels"]) for r in read_csv(out / "per_case.csv"))
        assert summary["threshold"] == ([0.2] if setting == "auto" else [float(setting)])
    assert "tuned on val" in json.loads((tmp_path / "eval_auto" / "metrics.json").read_text())["threshold_source"]
    assert pixels["auto"] == pixels["0.2"] > pixels["0.5"] > pixels["0.8"]
    # a checkpoint without a tuned threshold: auto is 0.5, and the output says why
    plain = tmp_path / "plain.pt"
    state = load_checkpoint(ckpt)
    state.pop("threshold")
    torch.save(state, plain)
    out = tmp_path / "eval_plain"
    assert evaluate_script.main([f"checkpoint={plain}", f"output={out}"]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["threshold"] == [0.5] and "holds no tuned threshold" in summary["threshold_source"]
    assert sum(int(r["pred_pixels"]) for r in read_csv(out / "per_case.csv")) == pixels["0.5"]


def test_predict_script_masks_follow_the_threshold(tuned_run, tmp_path):
    from segtrain.tools import predict as predict_script

    ckpt = with_threshold(tuned_run, 0.2, tmp_path)
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(images / f"im{i}.png")
    fg = {}
    for setting in ("auto", "0.2", "0.5", "0.9"):
        out = tmp_path / f"pred_{setting}"
        assert predict_script.main([f"checkpoint={ckpt}", f"input={images}", f"output={out}",
                                    f"threshold={setting}"]) == 0  # fmt: skip
        fg[setting] = sum(int(np.asarray(Image.open(out / f"im{i}.png")).sum()) for i in range(2))
    assert fg["auto"] == fg["0.2"] > fg["0.5"] >= fg["0.9"]
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        predict_script.main([f"checkpoint={ckpt}", f"input={images}", f"output={tmp_path / 'x'}", "threshold=1.5"])


def test_report_shows_the_tuned_threshold_of_a_real_job(tuned_run):
    value = json.loads((tuned_run / "metrics.json").read_text())["threshold"]["value"]
    result = summarize(tuned_run.parent, plots=False)
    (row,) = by_config(tables(result.markdown)[0]).values()  # one job, one configuration
    assert row["threshold"] == f"{value:.2f}*"
    assert "*threshold*" in result.markdown


def test_report_threshold_column_per_channel_over_seeds_and_fixed_half(tmp_path):
    base = base_cases(20)
    for seed, values in ((1, [0.3, 0.7]), (2, [0.4, 0.7])):
        make_job(tmp_path / f"loss=a,seed={seed}", ["loss=a", f"seed={seed}"], shifted(base, 0.1),
                 metrics_extra={"threshold": {"value": values, "tuned_on": "val"}})  # fmt: skip
    make_job(tmp_path / "loss=b,seed=1", ["loss=b", "seed=1"], base,
             metrics_extra={"threshold": {"value": 0.5, "tuned_on": None}})  # fmt: skip
    rows = by_config(tables(summarize(tmp_path, plots=False).markdown)[0])
    assert rows["loss=a"]["threshold"] == "0.35 (0.30-0.40) / 0.70*"
    assert rows["loss=b"]["threshold"] == "0.50"


def test_multilabel_job_tunes_one_threshold_per_channel_and_predict_uses_them(tmp_path):
    run = tmp_path / "run"
    run_train([*TINY, "dataset.mode=multilabel", "dataset.num_classes=3", "dataset.length.test=8",
               "dataset.class_names=[ellipse,rectangle,triangle]", "loss=bce", "logger=none",
               "job.tune_threshold=true", f"hydra.run.dir={run}"], tmp_path)  # fmt: skip
    t = json.loads((run / "metrics.json").read_text())["threshold"]
    assert len(t["value"]) == 3 and all(v in GRID for v in t["value"])
    assert t["channels"] == ["ellipse", "rectangle", "triangle"]
    assert all(len(t[k]["val"]) == 3 for k in ("dice_at_0.5", "dice_at_tuned"))
    assert all(a >= b for a, b in zip(t["dice_at_tuned"]["val"], t["dice_at_0.5"]["val"], strict=True))
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["threshold"]["value"] == t["value"]
    values, why = resolve_threshold("auto", state, "multilabel", 3)
    assert values == t["value"] and "tuned on val" in why
