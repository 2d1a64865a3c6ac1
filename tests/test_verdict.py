"""segtrain.verdict: case-level ranking, Holm-Wilcoxon tie set and bootstrap rank stability, checked against
scipy and against numbers worked out by hand."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from conftest import fresh_seed
from scipy import stats

from segtrain.verdict import (
    DroppedCase,
    FailedConfig,
    FailedSeed,
    IncompleteSeed,
    build_table,
    holm,
    kendall_tau_rows,
    plot_ranks,
    sentence,
    summarize,
)
from segtrain.verdict.stats import bootstrap_counts, bootstrap_means, rank_rows

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def records(values: dict[str, np.ndarray]) -> list[tuple[str, int, int, float]]:
    """{config: (seeds, cases) array} -> (config, seed, case, value) records."""
    return [(c, s, i, float(v[s, i])) for c, v in values.items() for s in range(v.shape[0]) for i in range(v.shape[1])]


def noisy(rng: np.random.Generator, offsets: dict[str, float], n_cases: int = 40, n_seeds: int = 2) -> dict:
    base = rng.uniform(0.5, 0.9, n_cases)
    return {c: base + o + rng.normal(0, 0.02, (n_seeds, n_cases)) for c, o in offsets.items()}


def test_clear_winner_matches_scipy() -> None:
    rng = np.random.default_rng(fresh_seed())
    vals = noisy(rng, {"ce": -0.15, "dice": 0.0, "focal": -0.1})
    v = summarize(records(vals), higher_is_better=True)
    assert v.ranking == ("dice", "focal", "ce") and v.tie_set == ("dice",)
    means = {c: x.mean(axis=0) for c, x in vals.items()}  # seeds first, per case
    p = [stats.wilcoxon(means["dice"] - means[c], alternative="greater").pvalue for c in ("focal", "ce")]
    for c, p_ref in zip(v.comparisons, p, strict=True):
        d = means["dice"] - means[c.config]
        assert c.p_raw == pytest.approx(p_ref, rel=1e-12) and c.p_raw < 1e-6
        assert c.diff_mean == pytest.approx(d.mean()) and c.diff_median == pytest.approx(np.median(d))
        assert c.ci_low < c.diff_mean < c.ci_high and c.worse
    assert [c.p_holm for c in v.comparisons] == pytest.approx([2 * min(p), max(2 * min(p), max(p))])
    np.testing.assert_allclose(v.values[0], means["dice"])


def test_exact_tie_has_p_one_and_both_rank_first() -> None:
    x = np.array([[0.7, 0.8, 0.9, 0.6, 0.75, 0.65, 0.85, 0.5]])  # 8 cases: 2^-8 < alpha / 2
    v = summarize(records({"a": x, "b": x.copy(), "c": x - 0.3}), higher_is_better=True, n_boot=200)
    b = v.comparison("b")
    assert b.p_raw == 1.0 and b.p_holm == 1.0 and not b.worse and b.n_nonzero == 0
    assert (b.diff_mean, b.diff_median, b.ci_low, b.ci_high) == (0.0, 0.0, 0.0, 0.0)
    assert set(v.tie_set) == {"a", "b"}
    # identical configurations share rank 1 in every resample (competition ranks), and in the full ranking
    assert [s.p_first for s in v.stability[:2]] == [1.0, 1.0] and [s.rank for s in v.stability] == [1, 1, 3]


def test_seeds_averaged_per_case_before_testing() -> None:
    # case means of "a" are m; its two seeds disagree (+-e), and seed 1 alone would make "a" the worse one
    m = np.array([0.80, 0.60, 0.60, 0.70, 0.50, 0.90])
    e = np.array([0.30, -0.30, 0.25, -0.25, 0.20, -0.35])
    d = np.array([0.05, 0.10, 0.15, 0.20, 0.25, -0.01])  # "b" worse by d: one negative, of the smallest |d|
    v = summarize(records({"a": np.stack([m + e, m - e]), "b": (m - d)[None]}), higher_is_better=True)
    np.testing.assert_allclose(v.values, [m, m - d], atol=1e-15)
    (c,) = v.comparisons
    # by hand: ranks of |d| are 2..6 positive and 1 negative, W+ = 20; of the 2^6 sign patterns only
    # {W+ = 21, W+ = 20} are at least as extreme, so the exact one-sided p = 2 / 64
    assert c.p_raw == pytest.approx(2 / 64) and c.p_holm == pytest.approx(2 / 64) and c.worse
    assert c.diff_mean == pytest.approx(d.mean()) and c.diff_median == pytest.approx(0.125)
    assert v.tie_set == ("a",) and v.seeds == {"a": (0, 1), "b": (0,)}
    # "b" has one seed, "a" two: seed 1 of "b" missing is a failed seed, reported
    assert v.failed_seeds == [FailedSeed("b", 1, "no records")]


def test_failed_seed_is_listed_and_remaining_seeds_count() -> None:
    rng = np.random.default_rng(fresh_seed())
    vals = noisy(rng, {"a": 0.0, "b": -0.05, "c": -0.1}, n_seeds=3)
    recs = [r for r in records(vals) if not (r[0] == "b" and r[1] == 2)]
    v = summarize(recs, higher_is_better=True, configs=["a", "b", "c", "never_ran"])
    assert v.failed_seeds == [FailedSeed("b", 2, "no records")]
    assert v.failed_configs == [FailedConfig("never_ran", "no records")]
    assert "never_ran" not in v.ranking and v.seeds["b"] == (0, 1)
    np.testing.assert_allclose(v.values[v.ranking.index("b")], vals["b"][:2].mean(axis=0))
    text = sentence(v, split="test", metric="Dice")
    assert "seed 2 of `b` (no records; its other seeds count)" in text and "`never_ran` (no records)" in text

    # the same in nested form: a seed mapped to None is a failed run; a config with only failed seeds fails
    nested = {c: {s: {i: float(x[s, i]) for i in range(x.shape[1])} for s in range(3)} for c, x in vals.items()}
    nested["b"][2] = None
    nested["d"] = {0: None, 1: None}
    nested["e"] = {0: {}}
    nested["c"][1] = {}  # an empty seed is a failed one too, never skipped unreported
    w = summarize(nested, higher_is_better=True)
    assert w.failed_seeds == [FailedSeed("b", 2, "reported failed"), FailedSeed("c", 1, "no records")]
    assert w.failed_configs == [FailedConfig("d", "all seeds failed (['0', '1'])"), FailedConfig("e", "no records")]
    np.testing.assert_allclose(w.values[w.ranking.index("b")], v.values[v.ranking.index("b")])
    np.testing.assert_allclose(w.values[w.ranking.index("c")], vals["c"][[0, 2]].mean(axis=0))


def test_nan_and_missing_cases_are_dropped_for_all_and_reported() -> None:
    x = np.array([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]])
    recs = records({"a": x, "b": x - 0.1, "c": x - 0.2})
    recs[recs.index(("b", 0, 2, 0.6))] = ("b", 0, 2, math.nan)
    recs = [r for r in recs if r[:3] != ("c", 0, 5)]
    recs.append(("a", 0, 99, 0.5))  # a case only "a" scored
    t = build_table(recs)
    assert t.cases == (0, 1, 3, 4, 6)
    assert t.dropped_cases == [
        DroppedCase(2, "undefined", ("b",)),
        DroppedCase(5, "missing", ("c",)),
        DroppedCase(99, "missing", ("b", "c")),
    ]
    text = sentence(summarize(recs, higher_is_better=True, n_boot=50), split="val", metric="HD95")
    assert "1 case where HD95 is undefined; 2 cases not scored for every configuration" in text


def test_incomplete_seed_is_averaged_over_the_seeds_that_have_the_case() -> None:
    recs = [("a", 0, 0, 0.5), ("a", 0, 1, 0.7), ("a", 1, 0, 0.9), ("b", 0, 0, 0.1), ("b", 0, 1, 0.2)]
    recs += [("b", 1, 0, 0.3), ("b", 1, 1, 0.4)]
    t = build_table(recs)
    assert t.incomplete_seeds == [IncompleteSeed("a", 1, (1,))]
    np.testing.assert_allclose(t.values, [[0.7, 0.7], [0.2, 0.3]])


def test_holm_against_hand_computation() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4 * 0.005, 3 * 0.01, 2 * 0.03, max(1 * 0.04, 0.06)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # step-down monotonicity: 1 * 0.021 < 2 * 0.02 is raised to 0.04; scaled values cap at 1
    np.testing.assert_allclose(holm([0.021, 0.02]), [0.04, 0.04])
    np.testing.assert_allclose(holm([0.5, 0.9, 0.001]), [1.0, 1.0, 0.003])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, 1.5])


def test_holm_applied_over_the_k_minus_1_comparisons() -> None:
    rng = np.random.default_rng(fresh_seed())
    vals = noisy(rng, {"a": 0.0, "b": -0.004, "c": -0.008, "d": -0.02}, n_cases=30, n_seeds=1)
    v = summarize(records(vals), higher_is_better=True, n_boot=100)
    p = np.array([c.p_raw for c in v.comparisons])
    order = np.argsort(p)
    hand = np.empty(3)
    hand[order] = np.maximum.accumulate(np.minimum(1, np.array([3, 2, 1]) * p[order]))
    np.testing.assert_allclose([c.p_holm for c in v.comparisons], hand)
    assert [c.worse for c in v.comparisons] == list(hand <= 0.05)
    assert v.tie_set == (v.leader, *(c.config for c in v.comparisons if c.p_holm > 0.05))


def test_bootstrap_is_determined_by_its_seed_and_matches_a_gather() -> None:
    rng = np.random.default_rng(fresh_seed())
    recs = records(noisy(rng, {"a": 0.0, "b": -0.003, "c": -0.006}, n_cases=25))
    one, two = (summarize(recs, higher_is_better=True, n_boot=300, seed=7) for _ in range(2))
    assert json.dumps(one.to_dict()) == json.dumps(two.to_dict())
    other = summarize(recs, higher_is_better=True, n_boot=300, seed=8)
    assert [c.ci_low for c in other.comparisons] != [c.ci_low for c in one.comparisons]

    # the counts-matrix product equals the plain index-matrix gather, and so do the CIs and P(rank 1)
    x = one.values
    idx = np.random.default_rng(7).integers(0, x.shape[1], size=(300, x.shape[1]))
    gathered = x[:, idx].mean(axis=-1).T  # (B, K)
    np.testing.assert_allclose(bootstrap_means(x, bootstrap_counts(x.shape[1], 300, 7)), gathered, rtol=1e-12)
    for j, c in enumerate(one.comparisons, start=1):
        lo, hi = np.percentile(gathered[:, 0] - gathered[:, j], [2.5, 97.5])
        assert (c.ci_low, c.ci_high) == pytest.approx((lo, hi))
    p_first = (gathered == gathered.max(axis=1, keepdims=True)).mean(axis=0)
    np.testing.assert_allclose([s.p_first for s in one.stability], p_first)


def test_dominant_config_ranks_first_in_every_resample() -> None:
    rng = np.random.default_rng(fresh_seed())
    vals = noisy(rng, {"best": 0.3, "mid": 0.15, "low": 0.0}, n_cases=20)
    v = summarize(records(vals), higher_is_better=True, n_boot=500)
    assert [(s.config, s.p_first, s.rank_low, s.rank_high) for s in v.stability] == [
        ("best", 1.0, 1, 1),
        ("mid", 0.0, 2, 2),
        ("low", 0.0, 3, 3),
    ]
    assert v.stability[0].rank_freq == (1.0, 0.0, 0.0) and v.tau_median == v.tau_mean == 1.0


def test_rank_interval_and_tau_against_direct_computation() -> None:
    rng = np.random.default_rng(fresh_seed())
    vals = noisy(rng, {f"c{i}": -0.002 * i for i in range(6)}, n_cases=15, n_seeds=1)
    v = summarize(records(vals), higher_is_better=True, n_boot=400, seed=3)
    idx = np.random.default_rng(3).integers(0, 15, size=(400, 15))
    boot_ranks = stats.rankdata(-v.values[:, idx].mean(axis=-1).T, method="min", axis=1)
    full = stats.rankdata(-v.values.mean(axis=1), method="min")
    for j, s in enumerate(v.stability):
        r = np.sort(boot_ranks[:, j])
        assert (s.rank_low, s.rank_high) == (r[math.ceil(0.025 * 400) - 1], r[math.ceil(0.975 * 400) - 1])
        assert s.rank_freq == pytest.approx(np.bincount(r - 1, minlength=6) / 400)
    tau = [stats.kendalltau(full, row).statistic for row in boot_ranks]
    assert v.tau_median == pytest.approx(np.median(tau)) and v.tau_mean == pytest.approx(np.mean(tau))


def test_kendall_tau_rows_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(fresh_seed())
    ranks = rank_rows(rng.integers(0, 4, (50, 7)).astype(float))
    ref = np.array([1, 2, 2, 4, 5, 5, 7])
    expected = [stats.kendalltau(ref, r).statistic for r in ranks]
    np.testing.assert_allclose(kendall_tau_rows(ref, ranks), expected, equal_nan=True)


def test_lower_is_better_direction() -> None:
    rng = np.random.default_rng(fresh_seed())
    hd = {c: 10 * x for c, x in noisy(rng, {"a": 0.0, "b": 0.03, "c": 0.06}, n_cases=30).items()}
    lo = summarize(records(hd), higher_is_better=False, n_boot=200)
    hi = summarize(records({c: -x for c, x in hd.items()}), higher_is_better=True, n_boot=200)
    assert lo.ranking == hi.ranking == ("a", "b", "c")
    for a, b in zip(lo.comparisons, hi.comparisons, strict=True):
        assert a.mean == pytest.approx(-b.mean) and a.diff_mean > 0  # positive = worse, in HD95 units
        assert (a.diff_mean, a.ci_low, a.ci_high, a.p_raw) == pytest.approx((b.diff_mean, b.ci_low, b.ci_high, b.p_raw))
    d = lo.values[1] - lo.values[0]
    assert lo.comparisons[0].p_raw == pytest.approx(stats.wilcoxon(d, alternative="greater").pvalue)


def test_few_cases_note_and_single_config() -> None:
    x = np.array([[0.9, 0.8, 0.7]])
    v = summarize(records({"a": x, "b": x - 0.2, "c": x - 0.3}), higher_is_better=True, n_boot=100)
    assert v.tie_set == ("a", "b", "c") and v.comparisons[0].p_raw == pytest.approx(1 / 8)
    assert "no configuration can be shown worse" in sentence(v, split="val", metric="Dice")
    one = summarize(records({"a": x}), higher_is_better=True, n_boot=10)
    assert one.tie_set == ("a",) and one.comparisons == () and one.stability[0].p_first == 1.0
    assert "only `a` has usable results" in sentence(one, split="val", metric="Dice")


def test_sentence_reads_like_the_spec() -> None:
    rng = np.random.default_rng(fresh_seed())
    vals = noisy(rng, {"dice": 0.0, "tversky": 0.0, "focal_tversky": 0.0, "ce": -0.21}, n_cases=200, n_seeds=3)
    # differences of equal size and alternating sign: W+ = W-, nowhere near significant. Dyadic values and
    # equal seeds keep every difference exact (roundoff would break the ties between |d| at random)
    vals["dice"] = np.tile(np.round(vals["dice"][0] * 1024) / 1024, (3, 1))
    vals["tversky"] = vals["dice"] + 2.0**-7 * np.resize([1, -1], 200)
    vals["focal_tversky"] = vals["dice"] + 2.0**-6 * np.resize([-1, 1], 200)
    v = summarize(records(vals), higher_is_better=True)
    text = sentence(v, split="test", metric="Dice", selected_on_same_split=True)
    lead, a, b, last = v.ranking  # the three near-identical means may come in any order
    assert last == "ce" and v.tie_set == (lead, a, b)
    assert text.startswith(
        f"On test (200 cases, 3 seeds) `{lead}` ranks first (P(rank 1) = {v.stability[0].p_first:.2f})"
    )
    assert f"; `{a}` and `{b}` are not significantly worse (Holm-Wilcoxon, alpha = 0.05): treat them as tied; " in text
    ce = v.comparison("ce")
    found = re.search(r"; `ce` is worse by ([\d.]+) Dice \[([\d.]+), ([\d.]+)\]\. ", text)
    assert found and [float(g) for g in found.groups()] == pytest.approx(
        [ce.diff_mean, ce.ci_low, ce.ci_high], abs=1e-3
    )
    assert text.endswith("The checkpoint was selected on this same split: scores are optimistic.")
    units = sentence(v, split="test", metric="Dice", units={"cases": 200, "seeds": 3, "folds": 5})
    assert units.startswith("On test (200 cases, 3 seeds, 5 folds)")


def test_to_dict_is_json(tmp_path) -> None:
    x = np.array([[0.9, 0.8, 0.7, 0.6]])
    v = summarize(records({"a": x, "b": x}), higher_is_better=True, n_boot=20)
    d = json.loads(json.dumps(v.to_dict(include_values=True), allow_nan=False))
    assert d["tie_set"] == ["a", "b"] and d["comparisons"][0]["p_raw"] == 1.0 and d["values"][1] == x[0].tolist()


def test_plot_ranks_writes_png(tmp_path) -> None:
    rng = np.random.default_rng(fresh_seed())
    v = summarize(records(noisy(rng, {f"c{i}": -0.003 * i for i in range(5)})), higher_is_better=True, n_boot=100)
    out = plot_ranks(v, tmp_path / "sub" / "ranks.png")
    assert out.read_bytes()[:8] == PNG_SIGNATURE and out.stat().st_size > 5000


@pytest.mark.parametrize(
    ("recs", "error", "match"),
    [
        ([("a", 0, 0, 0.5), ("a", 0, 0, 0.6)], ValueError, "case 0 appears twice"),
        ([("a", 0, 0, "0.5")], TypeError, "is not a number"),
        ([("a", 0, 0, None)], TypeError, "use NaN"),
        ([{"config": "a", "seed": 0, "value": 1.0}], KeyError, "lacks key 'case'"),
        ([("a", 0, 0, math.nan)], ValueError, "1 with NaN/inf values"),
        ([], ValueError, "no configuration has usable records"),
    ],
)
def test_bad_input_is_named(recs, error, match) -> None:
    with pytest.raises(error, match=match):
        summarize(recs, higher_is_better=True)
