"""Ablation statistics: Dunnett's many-to-one intervals, paired by seed, against scipy and by hand."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import stats as st

from sweeper import stats as S
from sweeper.errors import SweeperError
from sweeper.stats.ablation import _noise


def study(effects, sds, n, *, seed=0, base=0.70, seed_sd=0.0):
    """(n seeds x 1 + k arms): column 0 the baseline (sd ``sds[0]``), then one arm per effect."""
    rng = np.random.default_rng(seed)
    mu = base + np.r_[0.0, effects]
    return mu + rng.normal(0, 1, (n, mu.size)) * np.asarray(sds) + rng.normal(0, seed_sd, (n, 1))


# --------------------------------------------------------------------------- the critical value


def test_one_arm_is_the_paired_t_interval():
    x = study([0.01], [0.01, 0.01], 6, seed=1)
    x[4:, 1] = np.nan  # the baseline's extra seeds do not enter the paired difference
    arm = S.compare_to_baseline(x, rope=0.01).arms[0]
    d = x[:4, 1] - x[:4, 0]
    half = st.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert arm.n == 4 and arm.df == 3 and not arm.own_noise
    assert arm.effect == pytest.approx(d.mean(), abs=1e-15)
    assert (arm.low, arm.high) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-12)
    assert arm.p_adjusted == pytest.approx(st.ttest_rel(x[:4, 1], x[:4, 0]).pvalue, rel=1e-10)


@pytest.mark.parametrize("k, n", [(2, 5), (4, 6), (7, 4)])
def test_p_values_match_scipy_dunnett_on_independent_samples(k, n):
    # Independent groups of equal size: the statistic scipy builds has correlation 0.5 and the
    # pooled df; our quadrature reads the same multivariate t without Monte Carlo.
    rng = np.random.default_rng(k)
    control = rng.normal(0, 1, n)
    groups = [rng.normal(0.6 * (i == 0), 1, n) for i in range(k)]
    ref = st.dunnett(*groups, control=control, rng=np.random.default_rng(0))
    df = (k + 1) * (n - 1)
    s2 = np.mean([g.var(ddof=1) for g in [control, *groups]])
    t = np.array([(g.mean() - control.mean()) / math.sqrt(2 * s2 / n) for g in groups])
    np.testing.assert_allclose(t, ref.statistic, rtol=1e-12)
    np.testing.assert_allclose(S.many_to_one_sf(t, k, df), ref.pvalue, atol=1e-3)


@pytest.mark.parametrize("k, df", [(3, 1.5), (5, 4.0), (10, 8.0)])
def test_the_critical_value_holds_the_multivariate_t_at_95_percent(k, df):
    c = S.many_to_one_isf(0.05, k, df)
    corr = np.full((k, k), 0.5) + 0.5 * np.eye(k)
    inside = st.multivariate_t(shape=corr, df=df).cdf(np.full(k, c), lower_limit=np.full(k, -c), random_state=0)
    assert inside == pytest.approx(0.95, abs=1e-3)


def test_the_quadrature_is_exact_where_the_answer_is_known():
    t = np.array([0.5, 2.0, 3.5])
    # rho 0 and a known sigma: k independent normals (Sidak).
    np.testing.assert_allclose(S.many_to_one_sf(t, 6, math.inf, 0.0), 1 - (1 - 2 * st.norm.sf(t)) ** 6, rtol=1e-9)
    np.testing.assert_allclose(S.many_to_one_sf(t, 1, 7.0), 2 * st.t.sf(t, 7), rtol=1e-12)
    assert S.many_to_one_isf(0.05, 1, 7.0) == pytest.approx(st.t.ppf(0.975, 7))


def test_critical_values_grow_with_k_and_shrink_with_df():
    by_k = [S.many_to_one_isf(0.05, k, 10.0) for k in (1, 2, 3, 5, 10, 20)]
    by_df = [S.many_to_one_isf(0.05, 5, df) for df in (2.0, 3.0, 5.0, 10.0, 30.0, 1e4)]
    assert np.all(np.diff(by_k) > 0) and np.all(np.diff(by_df) < 0)
    # Between the one-at-a-time and the Bonferroni critical values.
    assert st.t.isf(0.025, 10) < by_k[3] < st.t.isf(0.025 / 5, 10)


# --------------------------------------------------------------------------- verdicts


def test_verdicts_on_constructed_effects():
    x = study([0.05, -0.05, 0.001, 0.0], [0.002] * 5, 5, seed=2)
    res = S.compare_to_baseline(x, rope=0.01)
    assert [a.verdict for a in res.arms[:3]] == [S.BETTER, S.WORSE, S.EQUIVALENT]
    assert res.k == 4 and res.count(S.EQUIVALENT) == 2 and list(res.verdicts[:2]) == [S.BETTER, S.WORSE]
    better = res.arms[0]
    assert better.low > 0.01 and better.p_adjusted < 1e-6 and math.isnan(better.seeds_to_decide)
    noisy_few = study([0.02, 0.0], [0.03] * 3, 2, seed=3)
    assert all(a.verdict == S.UNDECIDED for a in S.compare_to_baseline(noisy_few, rope=0.01).arms)


def test_the_interval_and_the_adjusted_p_value_agree():
    for seed in range(20):
        res = S.compare_to_baseline(study([0.01, -0.01, 0.0, 0.02], [0.01] * 5, 4, seed=seed), rope=0.0)
        for a in res.arms:
            assert (a.p_adjusted < 0.05) == (a.low > 0 or a.high < 0)
            assert (a.high - a.low) / 2 == pytest.approx(a.crit * a.se)


def test_a_shared_seed_effect_cancels():
    x = study([0.02, -0.01, 0.0], [0.01, 0.01, 0.02, 0.01], 5, seed=4)
    lucky = x + np.array([0.05, -0.03, 0.0, 0.08, -0.02])[:, None]
    a, b = S.compare_to_baseline(x), S.compare_to_baseline(lucky)
    for u, v in zip(a.arms, b.arms):
        assert (u.effect, u.low, u.high, u.verdict) == pytest.approx((v.effect, v.low, v.high, v.verdict), abs=1e-12)
    assert a.sigma == pytest.approx(b.sigma)


def test_a_noisy_arm_widens_its_own_interval_and_a_noisy_baseline_all():
    quiet = S.compare_to_baseline(study([0.0] * 4, [0.01] * 5, 8, seed=5))
    loud_arm = S.compare_to_baseline(study([0.0] * 4, [0.01, 0.05, 0.01, 0.01, 0.01], 8, seed=5))
    assert loud_arm.arms[0].own_noise and loud_arm.arms[0].noisy and loud_arm.arms[0].arm_sd > 0.03
    # (The loud arm also raises the pool, the floor of every arm: as tune's, conservative.)
    assert loud_arm.arms[0].se > 1.5 * max(a.se for a in loud_arm.arms[1:])
    assert loud_arm.arms[0].df < loud_arm.noise_df
    loud_base = S.compare_to_baseline(study([0.0] * 4, [0.05, 0.01, 0.01, 0.01, 0.01], 8, seed=5))
    assert loud_base.baseline_own_noise and loud_base.baseline_noisy
    assert all(b.se > 2 * q.se for b, q in zip(loud_base.arms, quiet.arms))
    assert all(b.df < loud_base.noise_df for b in loud_base.arms)


def test_a_lucky_quiet_arm_is_floored_at_the_pool():
    x = study([0.0] * 4, [0.01] * 5, 6, seed=6)
    x[:, 1] = x[:, 0] + 0.003 + np.array([1, -1, 1, -1, 1, -1]) * 1e-5  # nearly noiseless differences
    res = S.compare_to_baseline(x)
    arm = res.arms[0]
    assert arm.sd < 1e-4 and arm.se >= res.sigma * math.sqrt(2 / 6) * (1 - 1e-9)


def test_the_side_variances_are_unbiased_under_unequal_noise():
    sds = np.array([0.02, 0.01, 0.03, 0.01, 0.015])
    est = []
    rng = np.random.default_rng(7)
    for _ in range(600):
        x = 0.7 + rng.normal(0, 1, (4, 5)) * sds + rng.normal(0, 0.02, (4, 1))
        x[3, 2:4] = np.nan  # unbalanced: two arms with 3 seeds
        est.append(_noise(x, np.isfinite(x)).side)
    np.testing.assert_allclose(np.mean(est, axis=0), sds**2, rtol=0.15)


# --------------------------------------------------------------------------- missing seeds


def test_arms_with_fewer_seeds_one_seed_or_none():
    x = study([0.0, 0.0, -0.08, 0.0], [0.005] * 5, 5, seed=8)
    x[3:, 1] = np.nan  # 3 seeds
    x[1:, 3] = np.nan  # 1 seed, far below: judged with the pooled noise
    x[:, 4] = np.nan  # never ran
    res = S.compare_to_baseline(x, rope=0.01)
    n = [a.n for a in res.arms]
    assert n == [3, 5, 1, 0] and res.k == 3 and res.baseline_n == 5
    assert res.arms[0].effect == pytest.approx(np.mean(x[:3, 1] - x[:3, 0]))
    single = res.arms[2]
    assert single.single_seed and np.isnan(single.sd) and not single.own_noise
    assert single.se == pytest.approx(res.sigma * math.sqrt(2)) and single.verdict == S.WORSE
    assert res.arms[3].verdict == "" and math.isnan(res.arms[3].effect) and math.isnan(res.arms[3].p_adjusted)


def test_without_a_pooled_noise_everyone_is_undecided():
    x = np.array([[0.70, 0.60, 0.80], [0.71, np.nan, np.nan]])
    res = S.compare_to_baseline(x)
    assert res.noise_df == 0 and math.isnan(res.sigma)
    assert all(a.verdict == S.UNDECIDED and math.isnan(a.low) and math.isnan(a.seeds_to_decide) for a in res.arms)


def test_rejects_bad_input():
    with pytest.raises(SweeperError, match="at least one change arm"):
        S.compare_to_baseline(np.ones((3, 1)))
    with pytest.raises(SweeperError, match="baseline"):
        S.compare_to_baseline(np.array([[np.nan, 0.7], [np.nan, 0.6]]))
    with pytest.raises(SweeperError, match="rope"):
        S.compare_to_baseline(np.ones((3, 2)), rope=-0.01)


# --------------------------------------------------------------------------- more seeds


def test_seeds_to_decide_would_decide_by_the_same_rule():
    res = S.compare_to_baseline(study([0.02, 0.004, -0.015, 0.0], [0.01] * 5, 3, seed=9), rope=0.01)
    big_df = S.many_to_one_isf(0.05, res.k, 1e4)
    undecided = [a for a in res.arms if a.verdict == S.UNDECIDED and math.isfinite(a.seeds_to_decide)]
    assert undecided
    for a in undecided:
        m, var = a.seeds_to_decide, a.se**2 * a.n  # variance of one paired difference
        room = abs(a.effect) - 0.01 if abs(a.effect) > 0.01 else 0.01 - abs(a.effect)
        assert m > a.n and big_df * math.sqrt(var / m) < room
        assert m == a.n + 1 or room <= big_df * math.sqrt(var / (m - 1))


def test_next_arms_lists_undecided_arms_fewest_seeds_first():
    x = study([0.06, 0.005, 0.0, 0.003], [0.01] * 5, 5, seed=10)
    x[3:, 4] = np.nan
    res = S.compare_to_baseline(x, rope=0.01)
    assert res.arms[0].verdict == S.BETTER
    nxt = S.next_arms(x, 10, rope=0.01)
    undecided = [a.index for a in res.arms if a.verdict == S.UNDECIDED]
    assert set(nxt) <= set(undecided) and 1 not in nxt and nxt[0] == 4  # arm 4 has 3 seeds: first
    assert S.next_arms(x[:, [0, 1]], 10, rope=0.01).size == 0  # decided: no more seeds
    assert not set(S.next_arms(x, 5, rope=0.01)) & {1, 2, 3}  # out of seeds
    with pytest.raises(SweeperError, match="max_seeds"):
        S.next_arms(x, 0)


def test_next_arms_gives_up_on_the_hopeless():
    x = study([0.01, 0.0], [0.01] * 3, 4, seed=11)  # an effect on the ROPE's edge: ~inf seeds
    res = S.compare_to_baseline(x, rope=0.01)
    assert res.arms[0].verdict == S.UNDECIDED
    hopeless = [a.index for a in res.arms if a.seeds_to_decide > 1.3 * 6]
    assert hopeless and not set(S.next_arms(x, 6, rope=0.01)) & set(hopeless)
    one_seed = np.array([[0.70, 0.69, 0.70], [0.71, np.nan, 0.72], [0.69, np.nan, 0.70]])
    assert 1 in S.next_arms(one_seed, 5, rope=0.01)  # one seed: too rough to give up on


def test_an_ablation_racing_on_next_arms_ends_decided_or_out_of_seeds():
    rng = np.random.default_rng(12)
    mu = 0.70 + np.array([0.0, 0.04, -0.03, 0.0, 0.002, -0.006])
    x = np.full((10, mu.size), np.nan)
    x[:3] = mu + rng.normal(0, 0.006, (3, mu.size))
    while (nxt := S.next_arms(x, 10, rope=0.01)).size:
        j = int(nxt[0])
        row = int(np.isfinite(x[:, j]).sum())
        if np.isnan(x[row, 0]):
            x[row, 0] = mu[0] + rng.normal(0, 0.006)
        x[row, j] = mu[j] + rng.normal(0, 0.006)
    res = S.compare_to_baseline(x, rope=0.01)
    assert [a.verdict for a in res.arms[:2]] == [S.BETTER, S.WORSE]
    for a in res.arms:
        assert a.verdict != S.UNDECIDED or a.n == 10 or a.seeds_to_decide > 1.3 * 10


def test_fast_enough_to_call_once_per_unit():
    x = study([0.0] * 10, [0.01] * 11, 10, seed=13)
    x[4:, 6:] = np.nan
    S.compare_to_baseline(x)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        S.next_arms(x, 10)
        times.append(time.perf_counter() - t0)
    assert sorted(times)[2] < 0.1
