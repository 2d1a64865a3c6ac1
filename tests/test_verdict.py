"""segtrain.verdict: ranking, calls against the leader with seeds and cases as sources of variance, and rank
stability, checked against scipy and statsmodels-free hand computations; calibration on simulated sweeps."""

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
from segtrain.verdict.compare import components, pair_tests, seeds_needed
from segtrain.verdict.simulate import as_records, simulate_scores
from segtrain.verdict.stats import rank_rows, two_level_means

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def records(values: dict[str, np.ndarray]) -> list[tuple[str, int, int, float]]:
    """{config: (seeds, cases) array} -> (config, seed, case, value) records."""
    return [(c, s, i, float(v[s, i])) for c, v in values.items() for s in range(v.shape[0]) for i in range(v.shape[1])]


def noisy(rng: np.random.Generator, offsets: dict[str, float], n_cases: int = 40, n_seeds: int = 2) -> dict:
    base = rng.uniform(0.5, 0.9, n_cases)
    return {c: base + o + rng.normal(0, 0.02, (n_seeds, n_cases)) for c, o in offsets.items()}


def seed_effects_only(rng: np.random.Generator, offsets: dict[str, float], n_cases: int, n_seeds: int) -> dict:
    """y[k, s, i] = case_i + offset_k + u[k, s]: no configuration x case and no seed x case part."""
    base = rng.uniform(0.4, 0.8, n_cases)
    return {c: base + o + rng.normal(0, 0.03, (n_seeds, 1)) for c, o in offsets.items()}


def test_without_case_terms_the_test_is_welch_on_the_seed_means() -> None:
    rng = np.random.default_rng(fresh_seed())
    vals = seed_effects_only(rng, {"a": 0.0, "b": -0.05}, n_cases=30, n_seeds=4)
    vals["b"] = vals["b"][:3]  # unequal seeds: Welch's df
    v = summarize(records(vals), higher_is_better=True, n_boot=50)
    (c,) = v.comparisons
    ref = stats.ttest_ind(vals[v.leader].mean(axis=1), vals[c.config].mean(axis=1), equal_var=False)
    assert c.var_case == pytest.approx(0.0, abs=1e-15)
    assert c.p_raw == pytest.approx(ref.pvalue, rel=1e-9) and c.p_holm == pytest.approx(ref.pvalue, rel=1e-9)
    half = c.ci_high - c.diff_mean
    assert half == pytest.approx(stats.t.isf(0.025, ref.df) * c.se, rel=1e-9) and c.df == pytest.approx(ref.df)
    assert c.diff_mean == pytest.approx(np.mean(vals[v.leader]) - np.mean(vals[c.config]))


def test_case_only_is_a_paired_t_test_on_the_seed_averaged_cases() -> None:
    rng = np.random.default_rng(fresh_seed())
    vals = noisy(rng, {"a": 0.0, "b": -0.01}, n_cases=40, n_seeds=1)
    v = summarize(records(vals), higher_is_better=True, case_only=True, n_boot=50)
    (c,) = v.comparisons
    ref = stats.ttest_rel(v.values[0], v.values[1])
    assert c.p_raw == pytest.approx(ref.pvalue, rel=1e-9) and c.df == 39 and v.case_only
    assert sentence(v, split="test", metric="Dice").startswith("Case-level only, these models, not these losses: on")
    assert v.to_dict()["unit"] == "these trained models (case-level only)"


def test_variance_components_against_a_two_way_table_by_hand() -> None:
    y = np.array([[0.5, 0.7, 0.6], [0.6, 0.9, 0.6]])  # 2 seeds x 3 cases
    c = components(y)
    resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + y.mean()
    assert c.n_seeds == 2 and c.seed_var == pytest.approx(np.var(y.mean(axis=1), ddof=1))
    assert c.residual_var == pytest.approx((resid**2).sum() / 2)
    assert math.isnan(components(y[:1]).seed_var)
    # the pair: the case term is the paired variance less each side's seed x case part, over n
    other = y[::-1, ::-1] * 0.9
    t = pair_tests(np.stack([y.mean(axis=0), other.mean(axis=0)]), [c, components(other)])
    d = y.mean(axis=0) - other.mean(axis=0)
    case = max(np.var(d, ddof=1) - c.residual_var / 2 - components(other).residual_var / 2, 0) / 3
    assert t.var_case[0, 1] == pytest.approx(case)
    assert t.var[0, 1] == pytest.approx(c.seed_var / 2 + components(other).seed_var / 2 + case)


def test_identical_configurations_are_equivalent_never_worse() -> None:
    x = np.array([[0.7, 0.8, 0.9, 0.6, 0.75, 0.65, 0.85, 0.5]] * 2) + np.array([[0.0], [0.001]])
    v = summarize(records({"a": x, "b": x.copy(), "c": x - 0.3}), higher_is_better=True, n_boot=200)
    b = v.comparison("b")
    assert b.p_raw == 1.0 and not b.worse and b.call == "equivalent" and b.n_nonzero == 0
    assert (b.diff_mean, b.diff_median) == (0.0, 0.0) and -0.01 < b.ci_low < 0 < b.ci_high < 0.01
    # the same seeds 0.01 apart: two seeds cannot show them equivalent within 0.01, and more seeds would
    wide = summarize(records({"a": x * [[1], [1]] + [[0], [0.009]], "b": x + [[0], [0.009]]}), higher_is_better=True)
    assert wide.calls["b"] == "undecided" and wide.comparisons[0].seeds_needed_for == "equivalent"
    assert set(v.tie_set) == {"a", "b"} and v.calls["c"] == "worse"
    # identical configurations share rank 1 in the full ranking; resampling their seeds apart, each leads
    # about half the time (both lead where the draws agree: competition ranks)
    assert all(0.4 < s.p_first < 1 for s in v.stability[:2]) and [s.rank for s in v.stability] == [1, 1, 3]


def test_one_seed_calls_nothing_worse_and_says_why() -> None:
    rng = np.random.default_rng(fresh_seed())
    vals = noisy(rng, {"a": 0.0, "b": -0.3}, n_cases=50, n_seeds=1)
    v = summarize(records(vals), higher_is_better=True, n_boot=50)
    (c,) = v.comparisons
    assert c.call == "undecided" and v.tie_set == ("a", "b") and math.isnan(c.p_raw)
    assert c.seeds_needed is None and c.seeds_needed_for == "one seed: training noise not measured"
    text = sentence(v, split="test", metric="Dice")
    assert "training noise cannot be measured" in text and "case_only" in text and "not measured" in text
    assert summarize(records(vals), higher_is_better=True, n_boot=50, case_only=True).calls["b"] == "worse"


def test_real_difference_is_worse_and_small_one_undecided_with_seeds_needed() -> None:
    rng = np.random.default_rng(1)  # fixed draws: a pair the 5 seeds leave undecided
    y = simulate_scores(rng, n_configs=3, n_seeds=5, n_cases=200, seed_sd=0.01, effect=0.15)
    y[2] = y[0] + rng.normal(0, 0.03, (5, 1)) - 0.03  # a small gap in noisy training
    v = summarize(as_records(y, ["best", "far", "near"]), higher_is_better=True, n_boot=100)
    assert v.calls == {"best": "leader", "far": "worse", "near": "undecided"}
    near = v.comparison("near")
    assert (near.seeds_needed, near.seeds_needed_for) == (15, "worse")
    # the rule behind it: with 15 seeds each the expected test calls it worse at 80% power; 14 do not
    taus = (v.components["best"].seed_var, v.components["near"].seed_var)
    kw = {"alpha": 0.05, "n_pairs": 3, "rope": 0.01, "n_cases": 200}
    assert seeds_needed(near.diff_mean, taus, near.var_case, **kw) == (15, "worse")
    assert seeds_needed(near.diff_mean, taus, near.var_case, max_seeds=14, **kw) == (None, "more than 14")
    # where the case term alone is too wide, no number of seeds decides it
    assert seeds_needed(0.005, (1e-6, 1e-6), 1e-4, **kw) == (
        None,
        "the case sample limits it: more seeds alone will not decide it",
    )


def test_holm_runs_over_all_pairs_because_the_leader_is_chosen_by_the_data() -> None:
    rng = np.random.default_rng(fresh_seed())
    y = simulate_scores(rng, n_configs=4, n_seeds=3, n_cases=60, seed_sd=0.01, effect=0.02)
    v = summarize(as_records(y), higher_is_better=True, n_boot=50)
    order = [int(c[1:]) for c in v.ranking]
    t = pair_tests(y[order].mean(axis=1), [components(y[i]) for i in order])
    iu = np.triu_indices(4, 1)
    np.testing.assert_allclose([c.p_raw for c in v.comparisons], t.p[0, 1:])
    np.testing.assert_allclose([c.p_holm for c in v.comparisons], holm(t.p[iu])[:3])
    assert [c.worse for c in v.comparisons] == list(holm(t.p[iu])[:3] <= 0.05)


def test_simulated_aa_sweeps_call_worse_at_most_alpha_and_the_old_test_did_not() -> None:
    calibration = pytest.importorskip("benchmarks.verdict_calibration")
    rng = np.random.default_rng(0)  # a rate test: fixed draws, so it never fails by chance
    sims = 300
    bound = 0.05 + 3 * math.sqrt(0.05 * 0.95 / sims)
    for k, s, n, sd in [(2, 3, 128, 0.05), (13, 3, 50, 0.03), (5, 2, 20, 0.0)]:
        cell = calibration.run_cell(rng, n_configs=k, n_seeds=s, n_cases=n, seed_sd=sd, effect=0.0, sims=sims)
        assert cell.rates["seeds+cases"] <= bound, cell
        if sd > 0:
            assert cell.rates["before"] > 0.5, cell  # cases only: seed noise reads as a real difference
    power = calibration.run_cell(rng, n_configs=2, n_seeds=10, n_cases=200, seed_sd=0.01, effect=0.05, sims=100)
    assert power.rates["seeds+cases"] > 0.9 and power.leader_called_worse["seeds+cases"] == 0.0


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
    # the missing cell holds the mean of the seeds that have the case, so the seed means stay comparable
    np.testing.assert_allclose(t.seed_values["a"], [[0.5, 0.7], [0.9, 0.7]])


def test_holm_against_hand_computation() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4 * 0.005, 3 * 0.01, 2 * 0.03, max(1 * 0.04, 0.06)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # step-down monotonicity: 1 * 0.021 < 2 * 0.02 is raised to 0.04; scaled values cap at 1
    np.testing.assert_allclose(holm([0.021, 0.02]), [0.04, 0.04])
    np.testing.assert_allclose(holm([0.5, 0.9, 0.001]), [1.0, 1.0, 0.003])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, 1.5])


def test_two_level_bootstrap_matches_a_gather_over_cases_and_seeds() -> None:
    rng = np.random.default_rng(fresh_seed())
    ys = [rng.uniform(0, 1, (3, 25)), rng.uniform(0, 1, (2, 25))]
    out = two_level_means(ys, 200, 7)
    idx = np.random.default_rng(7).integers(0, 25, size=(200, 25))
    seed_rng = np.random.default_rng([7, 1])
    for k, y in enumerate(ys):
        picks = seed_rng.integers(0, y.shape[0], size=(200, y.shape[0]))
        gathered = np.array([y[picks[b]][:, idx[b]].mean() for b in range(200)])
        np.testing.assert_allclose(out[:, k], gathered, rtol=1e-12)
    x = np.stack([y.mean(axis=0) for y in ys])  # without seed resampling: the case bootstrap of the seed means
    np.testing.assert_allclose(two_level_means(ys, 200, 7, resample_seeds=False), x[:, idx].mean(axis=-1).T)


def test_bootstrap_is_determined_by_its_seed() -> None:
    rng = np.random.default_rng(fresh_seed())
    recs = records(noisy(rng, {"a": 0.0, "b": -0.003, "c": -0.006}, n_cases=25))
    one, two = (summarize(recs, higher_is_better=True, n_boot=300, seed=7) for _ in range(2))
    assert json.dumps(one.to_dict()) == json.dumps(two.to_dict())
    other = summarize(recs, higher_is_better=True, n_boot=300, seed=8)
    assert [s.rank_freq for s in other.stability] != [s.rank_freq for s in one.stability]


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
    lo = summarize(records(hd), higher_is_better=False, n_boot=200, rope=0.1)
    hi = summarize(records({c: -x for c, x in hd.items()}), higher_is_better=True, n_boot=200, rope=0.1)
    assert lo.ranking == hi.ranking == ("a", "b", "c")
    for a, b in zip(lo.comparisons, hi.comparisons, strict=True):
        assert a.mean == pytest.approx(-b.mean) and a.diff_mean > 0  # positive = worse, in HD95 units
        assert (a.diff_mean, a.ci_low, a.ci_high, a.p_raw) == pytest.approx((b.diff_mean, b.ci_low, b.ci_high, b.p_raw))
        assert a.call == b.call


def test_single_config() -> None:
    x = np.array([[0.9, 0.8, 0.7]])
    one = summarize(records({"a": x}), higher_is_better=True, n_boot=10)
    assert one.tie_set == ("a",) and one.comparisons == () and one.stability[0].p_first == 1.0
    assert "only `a` has usable results" in sentence(one, split="val", metric="Dice")


def test_sentence_reads_like_the_spec() -> None:
    rng = np.random.default_rng(1)  # fixed draws: the test reads one sentence with all three calls in it
    y = simulate_scores(rng, n_configs=4, n_seeds=3, n_cases=200, seed_sd=0.0, interaction_sd=0.0, noise_sd=0.002)
    y[3] -= 0.2  # ce: far behind
    y[2] = y[0] - 0.02 + rng.normal(0, 0.02, (3, 1))  # focal: a little behind, noisy training
    v = summarize(as_records(y, ["dice", "iou", "focal", "ce"]), higher_is_better=True)
    text = sentence(v, split="test", metric="Dice", selected_on_same_split=True)
    assert v.calls == {v.leader: "leader", "ce": "worse", "focal": "undecided"} | {
        c: "equivalent" for c in ("dice", "iou") if c != v.leader
    }
    assert "Undecided: `focal` (0.0" in text and "seeds per configuration would likely call it" in text
    assert text.startswith(f"On test (200 cases, 3 seeds) `{v.leader}` ranks first (P(rank 1) = ")
    ce = v.comparison("ce")
    found = re.search(r"Worse \(seeds and cases, Holm over all 6 pairs, alpha = 0.05\): `ce` by ([\d.]+) Dice "
                      r"\[([\d.]+), ([\d.]+)\]\.", text)  # fmt: skip
    assert found and [float(g) for g in found.groups()] == pytest.approx(
        [ce.diff_mean, ce.ci_low, ce.ci_high], abs=1e-3
    )
    assert "Equivalent (95% interval within +-0.01 Dice): " in text
    assert f"Tie set (not shown worse): {', '.join(f'`{c}`' for c in v.tie_set[:-1])} and `{v.tie_set[-1]}`." in text
    assert text.endswith("The checkpoint was selected on this same split: scores are optimistic.")
    units = sentence(v, split="test", metric="Dice", units={"cases": 200, "seeds": 3, "folds": 5})
    assert units.startswith("On test (200 cases, 3 seeds, 5 folds)")


def test_to_dict_is_json(tmp_path) -> None:
    x = np.array([[0.9, 0.8, 0.7, 0.6]])
    v = summarize(records({"a": x, "b": x}), higher_is_better=True, n_boot=20)
    d = json.loads(json.dumps(v.to_dict(include_values=True), allow_nan=False))
    assert d["tie_set"] == ["a", "b"] and d["values"][1] == x[0].tolist() and d["rope"] == 0.01
    assert d["calls"] == {"a": "leader", "b": "undecided"} and d["comparisons"][0]["call"] == "undecided"
    assert d["components"]["a"] == {"n_seeds": 1, "seed_var": None, "residual_var": None}
    for key in ("diff_mean", "ci_low", "ci_high", "var_seed", "var_case", "seeds_needed", "worse"):
        assert key in d["comparisons"][0]


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


def test_bad_rope_is_named() -> None:
    with pytest.raises(ValueError, match="rope must be a number >= 0 in metric units"):
        summarize([("a", 0, 0, 0.5)], higher_is_better=True, rope=-0.1)
