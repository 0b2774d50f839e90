"""sweeper.stats on hand-checkable matrices, against scipy on the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from sweeper import stats as S
from sweeper.errors import SweeperError


def noisy(means, seeds, sigma, seed=0):
    """(seeds, candidates) matrix: the given true means plus iid normal noise."""
    rng = np.random.default_rng(seed)
    return np.asarray(means, float) + rng.normal(0.0, sigma, (seeds, len(means)))


# --------------------------------------------------------------------------- p-values vs scipy


def test_paired_t_matches_scipy_ttest_rel_one_sided():
    x = noisy([0.70, 0.69, 0.695, 0.68], 6, 0.005, seed=1)
    comp = S.compare_to_best(x, n_boot=0)
    b = comp.best
    for i in range(4):
        if i == b:
            assert math.isnan(comp.p_paired_t[i])
            continue
        ref = st.ttest_rel(x[:, i], x[:, b], alternative="less").pvalue
        assert comp.test[i] == "paired"
        assert comp.p_paired_t[i] == pytest.approx(ref, rel=1e-10)
        assert comp.diff[i] == pytest.approx(np.mean(x[:, i] - x[:, b]), abs=1e-15)


def test_paired_t_uses_only_the_seeds_both_ran():
    x = noisy([0.70, 0.68, 0.69], 6, 0.005, seed=2)
    x[[1, 4], 1] = np.nan
    comp = S.compare_to_best(x, n_boot=0)
    assert comp.best == 0
    shared = np.isfinite(x[:, 1])
    ref = st.ttest_rel(x[shared, 1], x[shared, 0], alternative="less").pvalue
    assert comp.n_shared[1] == 4
    assert comp.p_paired_t[1] == pytest.approx(ref, rel=1e-10)


def test_welch_when_no_seed_is_shared():
    x = noisy([0.70, 0.69, 0.695], 6, 0.004, seed=3)
    x[3:, 0] = np.nan  # best: seeds 0-2
    x[:3, 1] = np.nan  # candidate: seeds 3-5
    comp = S.compare_to_best(x, n_boot=0)
    assert comp.best == 0 and comp.n_shared[1] == 0 and comp.test[1] == "welch"
    a, b = x[3:, 1], x[:3, 0]
    ref = st.ttest_ind(a, b, equal_var=False, alternative="less").pvalue
    assert comp.p_paired_t[1] == pytest.approx(ref, rel=1e-10)
    assert comp.diff[1] == pytest.approx(a.mean() - b.mean())


def test_wilcoxon_matches_scipy_from_six_pairs_only():
    x7 = noisy([0.70, 0.69, 0.698], 7, 0.004, seed=4)
    comp = S.compare_to_best(x7, n_boot=0)
    b = comp.best
    for i in range(3):
        if i != b:
            ref = st.wilcoxon(x7[:, i] - x7[:, b], alternative="less").pvalue
            assert comp.p_wilcoxon[i] == pytest.approx(ref, rel=1e-10)
    comp5 = S.compare_to_best(x7[:5], n_boot=0)
    assert np.isnan(comp5.p_wilcoxon).all()


def test_studentized_range_sf_matches_scipy():
    for k, df in [(3, 2), (10, 36), (40, 150)]:
        q = st.studentized_range.ppf([0.5, 0.95, 0.99, 0.999], k, df)
        ref = st.studentized_range.sf(q, k, df)
        np.testing.assert_allclose(S.studentized_range_sf(q, k, df), ref, rtol=1e-4)
    # k = 2 is the two-sided t-test
    assert S.studentized_range_sf(3.0, 2, 7) == pytest.approx(2 * st.t.sf(3.0 / math.sqrt(2), 7))


def test_tukey_p_with_seed_blocks_matches_two_way_anova_by_hand():
    rng = np.random.default_rng(5)
    x = noisy([0.70, 0.69, 0.695, 0.685], 5, 0.004, seed=5) + rng.normal(0, 0.01, (5, 1))
    comp = S.compare_to_best(x, n_boot=0)
    r, k = x.shape
    resid = x - x.mean(0) - x.mean(1, keepdims=True) + x.mean()
    df = (r - 1) * (k - 1)
    mse = (resid**2).sum() / df
    b = comp.best
    assert comp.df == df and comp.design == "blocks"
    for i in range(k):
        if i == b:
            continue
        q = abs(x[:, i].mean() - x[:, b].mean()) / math.sqrt(mse / r)
        assert comp.p_tukey[i] == pytest.approx(st.studentized_range.sf(q, k, df), rel=1e-4)
        assert comp.diff_adjusted[i] == pytest.approx(x[:, i].mean() - x[:, b].mean())


def test_adjusted_difference_and_se_with_missing_runs_match_dense_least_squares():
    rng = np.random.default_rng(6)
    r, k = 6, 5
    x = rng.normal(size=(r, k)) + rng.normal(size=(r, 1)) + np.arange(k) * 0.3
    x[0, 1] = x[3, 2] = x[4, 2] = x[5, 4] = np.nan
    comp = S.compare_to_best(x, n_boot=0)
    rows, cols = np.nonzero(np.isfinite(x))
    design = np.zeros((rows.size, k + r))
    design[np.arange(rows.size), cols] = 1
    design[np.arange(rows.size), k + rows] = 1
    y = x[rows, cols]
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    df = y.size - np.linalg.matrix_rank(design)
    s2 = np.sum((y - design @ coef) ** 2) / df
    gram_pinv = np.linalg.pinv(design.T @ design)
    b = comp.best
    assert comp.df == df
    for i in range(k):
        if i == b:
            continue
        c = np.zeros(k + r)
        c[i], c[b] = 1, -1
        assert comp.diff_adjusted[i] == pytest.approx(coef[i] - coef[b], abs=1e-12)
        assert comp.se_adjusted[i] == pytest.approx(math.sqrt(s2 * c @ gram_pinv @ c), rel=1e-9)


def test_disconnected_seeds_fall_back_to_one_way_tukey_kramer():
    rng = np.random.default_rng(7)
    x = np.full((6, 4), np.nan)
    x[:3, :2] = rng.normal([0.70, 0.69], 0.004, (3, 2))  # candidates 0, 1 ran seeds 0-2
    x[3:, 2:] = rng.normal([0.695, 0.68], 0.004, (3, 2))  # candidates 2, 3 ran seeds 3-5
    comp = S.compare_to_best(x, n_boot=0)
    assert comp.design == "one-way" and comp.procedure == S.PROCEDURE_ONE_WAY
    groups = [x[np.isfinite(x[:, i]), i] for i in range(4)]
    ref = st.tukey_hsd(*groups).pvalue
    for i in range(4):
        if i != comp.best:
            assert comp.p_tukey[i] == pytest.approx(ref[comp.best, i], rel=1e-3)


# --------------------------------------------------------------------------- Holm


def test_holm_worked_example():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    adjusted = S.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])


def test_holm_ignores_nan_and_caps_at_one():
    np.testing.assert_allclose(S.holm([0.02, np.nan, 0.5]), [0.04, np.nan, 0.5])
    np.testing.assert_allclose(S.holm([0.6, 0.7]), [1.0, 1.0])
    assert S.holm([]).size == 0


# --------------------------------------------------------------------------- markers


def test_clear_winner_gets_a_star_and_the_rest_three_stars():
    x = noisy([0.80, 0.70, 0.71, 0.69], 5, 0.002, seed=8)
    comp = S.compare_to_best(x, n_boot=0)
    assert comp.best == 0
    assert list(comp.marker) == [S.BEST, "***", "***", "***"]


def test_all_tied_are_not_distinguishable():
    row = np.array([0.70, 0.71, 0.69, 0.705, 0.695])[:, None]
    x = np.repeat(row, 4, axis=1)  # every candidate equal on every seed
    comp = S.compare_to_best(x, n_boot=0)
    assert comp.best == 0
    assert list(comp.marker) == [S.BEST, S.TIED, S.TIED, S.TIED]
    np.testing.assert_allclose(np.delete(comp.p_tukey, 0), 1.0)


def test_significant_gap_inside_the_rope_is_tied_outside_it_is_starred():
    x = noisy([0.700, 0.695, 0.600], 5, 1e-4, seed=9)  # 0.005 gap, tiny noise
    inside = S.compare_to_best(x, rope=0.01, n_boot=0)
    assert inside.p_tukey[1] < 0.001
    assert list(inside.marker) == [S.BEST, S.TIED, "***"]
    outside = S.compare_to_best(x, rope=0.001, n_boot=0)
    assert list(outside.marker) == [S.BEST, "***", "***"]


def test_single_run_is_question_mark_and_no_runs_is_blank():
    x = noisy([0.70, 0.60, 0.50, 0.65], 4, 0.003, seed=10)
    x[1:, 2] = np.nan
    x[:, 3] = np.nan
    comp = S.compare_to_best(x, n_boot=0)
    assert list(comp.marker) == [S.BEST, "***", S.SINGLE, S.NO_RUNS]
    assert comp.test[2] == "" and math.isnan(comp.p_paired_t[2])


def test_missing_runs_keep_blocks_and_still_separate_a_worse_candidate():
    x = noisy([0.70, 0.66, 0.699], 5, 0.003, seed=11)
    x[[0, 2], 1] = np.nan
    x[4, 2] = np.nan
    comp = S.compare_to_best(x, n_boot=0)
    assert comp.design == "blocks" and comp.best in (0, 2)
    assert comp.marker[1] in S.STARS and comp.marker[2 - comp.best] == S.TIED


def test_marker_uses_tukey_not_holm():
    # The last candidate sits 0.004 below the best on every seed (tiny paired sd), so the paired t
    # is overwhelming; against the noise of all ten candidates (Tukey) 0.004 is not resolved.
    best = np.array([0.700, 0.702, 0.698, 0.701, 0.699])
    last = best - 0.004 + np.array([2, -1, 1, -2, 0]) * 1e-4
    others = noisy([0.694] * 8, 5, 0.003, seed=12)
    x = np.column_stack([best, others, last])
    comp = S.compare_to_best(x, rope=0.0, n_boot=0)
    assert comp.best == 0
    assert comp.p_holm[-1] < 1e-4
    assert comp.p_tukey[-1] > 0.05 and comp.marker[-1] == S.TIED


# --------------------------------------------------------------------------- intervals


def test_bootstrap_is_seeded():
    x = noisy([0.70, 0.69, 0.68], 6, 0.005, seed=13)
    a = S.summarize(x, seed=3)
    b = S.summarize(x, seed=3)
    c = S.summarize(x, seed=4)
    np.testing.assert_array_equal(a.ci_low, b.ci_low)
    np.testing.assert_array_equal(a.ci_high, b.ci_high)
    assert not np.array_equal(a.ci_low, c.ci_low)
    assert np.all((a.ci_low <= a.mean) & (a.mean <= a.ci_high))


def test_bootstrap_interval_of_a_candidate_does_not_depend_on_the_others():
    x = noisy([0.70, 0.69, 0.68], 6, 0.005, seed=14)
    alone = S.summarize(x[:, :1], seed=0)
    together = S.summarize(x, seed=0)
    # same resamples; only the summation order of the matrix product may differ
    assert alone.ci_low[0] == pytest.approx(together.ci_low[0], rel=1e-12)
    assert alone.ci_high[0] == pytest.approx(together.ci_high[0], rel=1e-12)
    assert alone.ci_low[0] != S.summarize(x[:, :1], seed=1).ci_low[0]


def test_t_interval_matches_scipy_and_single_runs_have_none():
    x = noisy([0.70, 0.69], 5, 0.005, seed=15)
    x[1:, 1] = np.nan
    s = S.summarize(x, method="t", ci=0.9)
    lo, hi = st.t.interval(0.9, 4, loc=x[:, 0].mean(), scale=st.sem(x[:, 0]))
    assert (s.ci_low[0], s.ci_high[0]) == (pytest.approx(lo), pytest.approx(hi))
    assert s.n[1] == 1 and math.isnan(s.sd[1]) and math.isnan(s.ci_low[1])
    assert s.median[0] == pytest.approx(np.median(x[:, 0]))


def test_difference_interval_covers_the_paired_difference():
    x = noisy([0.70, 0.69], 8, 0.004, seed=16)
    for method in ("bootstrap", "t"):
        comp = S.compare_to_best(x, method=method)
        i = 1 - comp.best
        assert comp.diff_ci_low[i] < comp.diff[i] < comp.diff_ci_high[i]
    t = S.compare_to_best(x, method="t", ci=0.95)
    d = x[:, i] - x[:, comp.best]
    lo, hi = st.t.interval(0.95, 7, loc=d.mean(), scale=st.sem(d))
    assert (t.diff_ci_low[i], t.diff_ci_high[i]) == (pytest.approx(lo), pytest.approx(hi))


# --------------------------------------------------------------------------- improvement, noise


def test_probability_of_improvement_matches_mann_whitney():
    x = np.array([[1.0, 2.0], [2.0, 2.0], [3.0, np.nan]])
    p = S.probability_of_improvement(x, against=1)
    assert p[0] == pytest.approx(0.5)  # (0 + 0 + .5 + .5 + 1 + 1) / 6
    assert p[1] == pytest.approx(0.5)
    y = noisy([0.70, 0.69], 7, 0.01, seed=17)
    u = st.mannwhitneyu(y[:, 1], y[:, 0]).statistic
    assert S.probability_of_improvement(y, 0)[1] == pytest.approx(u / 49)


def test_noise_floor_pools_candidates_with_two_or_more_runs():
    x = np.array([[1.0, 2.0, 5.0], [3.0, 4.0, np.nan], [np.nan, 6.0, np.nan]])
    assert S.noise_floor(x) == pytest.approx(math.sqrt((1 * 2 + 2 * 4) / 3))
    assert math.isnan(S.noise_floor(x[:1]))


def test_min_detectable_effect_has_the_stated_power():
    sigma, n = 0.004, 5
    mde = S.min_detectable_effect(sigma, n)
    nc = mde * math.sqrt(n) / (math.sqrt(2) * sigma)
    assert st.nct.sf(st.t.ppf(0.975, n - 1), n - 1, nc) == pytest.approx(0.8, abs=1e-9)
    # and by simulation of the stated design: two candidates, paired two-sided t-test
    rng = np.random.default_rng(18)
    d = rng.normal(0, sigma, (20000, n)) - rng.normal(-mde, sigma, (20000, n))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
    assert np.mean(t > st.t.ppf(0.975, n - 1)) == pytest.approx(0.8, abs=0.015)


def test_mde_and_seeds_needed_agree():
    sigma = 0.004
    mdes = [S.min_detectable_effect(sigma, n) for n in range(2, 30)]
    assert all(a > b for a, b in zip(mdes, mdes[1:]))
    for n in (2, 3, 5, 10, 25):
        mde = S.min_detectable_effect(sigma, n)
        assert S.seeds_needed(sigma, mde * (1 + 1e-9)) == n
        assert S.seeds_needed(sigma, mde * 0.999) == n + 1
    assert S.min_detectable_effect(sigma, 1) == math.inf
    assert S.min_detectable_effect(0.0, 5) == 0.0
    assert S.seeds_needed(1.0, 1e-6, max_seeds=50) is None
    with pytest.raises(SweeperError):
        S.seeds_needed(sigma, 0.0)


# --------------------------------------------------------------------------- racing


def test_after_screening_everyone_needs_a_seed():
    x = noisy([0.70, 0.60, 0.65, 0.50], 1, 0.004, seed=19)
    for rule in S.RACING_RULES:
        assert S.needs_more_seeds(x, 5, rule=rule).all()


def test_far_below_single_runs_are_resolved_by_pooled_noise():
    x = np.full((3, 6), np.nan)
    x[:, :3] = noisy([0.700, 0.699, 0.698], 3, 0.002, seed=20)
    x[0, 3:] = [0.55, 0.50, 0.45]
    flag = S.needs_more_seeds(x, 5, rope=0.01)
    assert not flag[3:].any()  # "?" in the table, but clearly below under the pooled noise
    literal = S.needs_more_seeds(x, 5, rope=0.01, rule="markers")
    assert literal[3:].all()  # the literal rule gives every "?" a second seed


def test_tied_candidates_race_until_max_seeds_and_the_best_keeps_up():
    x = noisy([0.70, 0.70, 0.60], 2, 0.01, seed=21)
    flag = S.needs_more_seeds(x, 5, rope=0.0)
    assert list(flag) == [True, True, False]
    full = noisy([0.70, 0.70, 0.60], 5, 0.01, seed=21)
    full[4, 1 - S.best_index(full)] = np.nan  # the runner-up got 4, the best 5
    flag = S.needs_more_seeds(full, 4, rope=0.0)
    assert not flag.any()  # everyone unresolved is at max_seeds


def test_precise_tie_inside_the_rope_is_resolved_by_mcb_but_not_by_markers():
    x = noisy([0.700, 0.698, 0.600], 4, 0.0005, seed=22)
    assert not S.needs_more_seeds(x, 10, rope=0.01).any()
    literal = S.needs_more_seeds(x, 10, rope=0.01, rule="markers")
    assert list(literal) == [True, True, False]  # "≈" keeps running, and so does the best


def test_candidates_without_runs_are_never_flagged():
    x = noisy([0.70, 0.70, 0.70], 1, 0.01, seed=23)
    x[:, 2] = np.nan
    assert list(S.needs_more_seeds(x, 5)) == [True, True, False]
    assert not S.needs_more_seeds(np.full((2, 3), np.nan), 5).any()


def test_next_candidates_orders_by_mean_and_fills_slots():
    x = np.array([[0.60, 0.70, 0.65, 0.68]])
    assert list(S.next_candidates(x, 5)) == [1, 3, 2, 0]
    assert list(S.next_candidates(x, 5, slots=2)) == [1, 3]


def test_racing_rejects_bad_arguments():
    x = noisy([0.7, 0.6], 2, 0.01)
    with pytest.raises(SweeperError, match="did you mean 'mcb'"):
        S.needs_more_seeds(x, 5, rule="mbc")
    with pytest.raises(SweeperError, match="max_seeds"):
        S.needs_more_seeds(x, 0)


# --------------------------------------------------------------------------- ranking and input


def test_rank_candidates_puts_the_best_first_and_no_runs_last():
    x = noisy([0.65, 0.70, 0.60, 0.0], 3, 0.002, seed=24)
    x[:, 3] = np.nan
    ranking = S.rank_candidates(x, ["a", "b", "c", "d"], rope=0.005)
    assert [row.candidate.key for row in ranking.rows] == ["b", "a", "c", "d"]
    assert [row.rank for row in ranking.rows] == [1, 2, 3, 4]
    assert ranking.best_key == "b" and ranking.rows[0].marker == S.BEST
    assert ranking.rows[0].p_improvement == 0.5
    assert ranking.noise_candidates == 3 and ranking.noise_df == 6
    assert ranking.mde == pytest.approx(S.min_detectable_effect(ranking.noise_floor, 3))
    assert ranking.seeds_for_rope == S.seeds_needed(ranking.noise_floor, 0.005)


def test_pivot_runs_builds_the_matrix_and_refuses_duplicates():
    values, keys, seeds = S.pivot_runs(
        [("a", 0, 0.7), ("b", 0, 0.6), ("a", 2, 0.72), ("b", 1, None)]
    )
    assert keys == ["a", "b"] and seeds == [0, 1, 2]
    np.testing.assert_array_equal(values, [[0.7, 0.6], [np.nan, np.nan], [0.72, np.nan]])
    with pytest.raises(SweeperError, match="two runs for seed 0"):
        S.pivot_runs([("a", 0, 0.7), ("a", 0, 0.71)])


@pytest.mark.parametrize(
    "values, message",
    [
        ([0.7, 0.6], "2-D"),
        ([[0.7, np.inf]], "inf"),
        ([["x"]], "numbers"),
    ],
)
def test_bad_values_raise_sweeper_error(values, message):
    with pytest.raises(SweeperError, match=message):
        S.summarize(values)


def test_bad_options_raise_sweeper_error():
    x = noisy([0.7, 0.6], 3, 0.01)
    with pytest.raises(SweeperError, match="did you mean 'bootstrap'"):
        S.summarize(x, method="bootstrp")
    with pytest.raises(SweeperError, match="rope"):
        S.compare_to_best(x, rope=-0.1)
    with pytest.raises(SweeperError, match="2 candidate names for 3 columns"):
        S.rank_candidates(noisy([0.7, 0.6, 0.5], 2, 0.01), ["a", "b"])
    with pytest.raises(SweeperError, match="unique"):
        S.rank_candidates(x, ["a", "a"])
    with pytest.raises(SweeperError, match="no candidate has a finite run"):
        S.compare_to_best(np.full((2, 2), np.nan))
