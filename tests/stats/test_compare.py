"""Reference comparisons with the best, against scipy on the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from sweeper import stats as S


def noisy(means, seeds, sigma, seed=0):
    """(seeds, candidates) matrix: the given true means plus iid normal noise."""
    rng = np.random.default_rng(seed)
    return np.asarray(means, float) + rng.normal(0.0, sigma, (seeds, len(means)))


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


def test_holm_worked_example():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    adjusted = S.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])


def test_holm_ignores_nan_and_caps_at_one():
    np.testing.assert_allclose(S.holm([0.02, np.nan, 0.5]), [0.04, np.nan, 0.5])
    np.testing.assert_allclose(S.holm([0.6, 0.7]), [1.0, 1.0])
    assert S.holm([]).size == 0


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


def test_probability_of_improvement_matches_mann_whitney():
    x = np.array([[1.0, 2.0], [2.0, 2.0], [3.0, np.nan]])
    p = S.probability_of_improvement(x, against=1)
    assert p[0] == pytest.approx(0.5)  # (0 + 0 + .5 + .5 + 1 + 1) / 6
    assert p[1] == pytest.approx(0.5)
    y = noisy([0.70, 0.69], 7, 0.01, seed=17)
    u = st.mannwhitneyu(y[:, 1], y[:, 0]).statistic
    assert S.probability_of_improvement(y, 0)[1] == pytest.approx(u / 49)
