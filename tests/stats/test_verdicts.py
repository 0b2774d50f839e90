"""Verdicts pinned on hand-checkable matrices, and racing by the same rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from sweeper import stats as S
from sweeper.errors import SweeperError

# Three candidates x three seeds; sd exactly 0.01 in every column, so the pooled sd is 0.01 with
# df 6 and every gap's se is 0.01 * sqrt(2/3).
BASE = np.array([[0.01], [0.00], [-0.01]])


def matrix(*means):
    return np.asarray(means)[None, :] + BASE


def crit(k, df, alpha=0.05):
    return st.studentized_range.ppf(1 - alpha, k, df) / math.sqrt(2)


def test_intervals_are_tukey_kramer_by_hand():
    x = matrix(0.70, 0.69, 0.62)
    v = S.decide(x, rope=0.01)
    se = 0.01 * math.sqrt(2 / 3)
    assert v.best == 0 and v.df == 6 and v.sigma == pytest.approx(0.01)
    np.testing.assert_allclose(v.gap, [0.0, -0.01, -0.08], atol=1e-12)
    np.testing.assert_allclose(v.se[1:], [se, se])
    np.testing.assert_allclose(v.gap_low[1:], np.array([-0.01, -0.08]) - crit(3, 6) * se, rtol=1e-5)
    np.testing.assert_allclose(v.gap_high[1:], np.array([-0.01, -0.08]) + crit(3, 6) * se, rtol=1e-5)
    assert v.crit == pytest.approx(crit(3, 6), rel=1e-5)
    # -0.08 + 3.56 * 0.0082 = -0.051 < -0.01: worse. -0.01 +- 0.029 crosses both edges: undecided.
    assert list(v.verdict) == [S.BEST, S.UNDECIDED, S.WORSE]
    q = math.sqrt(2) * 0.08 / se
    assert v.p_tukey[2] == pytest.approx(st.studentized_range.sf(q, 3, 6), rel=1e-3)


def test_equivalent_needs_the_whole_interval_inside_the_rope():
    x = matrix(0.70, 0.699, 0.62)
    half = crit(3, 6) * 0.01 * math.sqrt(2 / 3)  # 0.0291
    assert list(S.decide(x, rope=0.031).verdict) == [S.BEST, S.EQUIVALENT, S.WORSE]  # 0.001 + 0.0291 < 0.031
    assert S.decide(x, rope=0.001 + half - 1e-4).verdict[1] == S.UNDECIDED
    # Worse means worse by more than the ROPE: 0.08 behind is not "worse" with a ROPE of 0.06.
    assert S.decide(x, rope=0.06).verdict[2] == S.UNDECIDED
    assert S.decide(x, rope=0.08 - half - 1e-4).verdict[2] == S.WORSE


def test_a_single_run_is_judged_with_the_pooled_noise_and_no_runs_has_no_verdict():
    x = np.column_stack([matrix(0.70, 0.695), [0.60, np.nan, np.nan], [np.nan] * 3])
    v = S.decide(x, rope=0.01)
    se = math.sqrt(0.01**2 / 1 + 0.01**2 / 1)  # one shared seed: one run on each side, pooled sd
    assert v.se[2] == pytest.approx(se)
    assert v.gap[2] == pytest.approx(0.60 - 0.71)  # on the seed both ran
    assert list(v.verdict) == [S.BEST, S.UNDECIDED, S.WORSE, ""]
    assert math.isnan(v.gap[3]) and v.k == 3


def test_a_candidate_noisier_than_the_pool_carries_its_own_variance_and_df():
    loud = np.array([[0.04], [0.0], [-0.04]])
    x = np.column_stack([matrix(0.70, 0.69, 0.68, 0.67, 0.66, 0.65), 0.60 + loud])
    v = S.decide(x, rope=0.0)
    s2 = (6 * 2 * 0.01**2 + 2 * 0.04**2) / 14
    a, b = 0.04**2 / 3, s2 / 3
    assert v.sigma == pytest.approx(math.sqrt(s2)) and v.df == 14
    assert v.se[6] == pytest.approx(math.sqrt(a + b)) and v.se[1] == pytest.approx(math.sqrt(2 * s2 / 3))
    assert v.gap_df[6] == pytest.approx((a + b) ** 2 / (a**2 / 2 + b**2 / 14))
    assert v.gap_df[1] == 14  # two pooled sides: the pool's df
    assert v.noisy[6] and not v.noisy[:6].any()  # 0.04 > 2 x 0.0177


def test_no_noise_estimate_leaves_everything_undecided():
    x = np.array([[0.70, 0.60, 0.50]])
    v = S.decide(x)
    assert list(v.verdict) == [S.BEST, S.UNDECIDED, S.UNDECIDED] and v.df == 0
    assert np.isnan(v.gap_low).all() and np.isnan(v.seeds_to_decide).all()


def test_seeds_to_decide_would_decide_by_the_same_rule():
    rng = np.random.default_rng(3)
    x = 0.7 + rng.normal(0, 0.004, (3, 8)) - np.linspace(0, 0.03, 8)
    v = S.decide(x, rope=0.01)
    undecided = np.flatnonzero(v.verdict == S.UNDECIDED)
    assert undecided.size
    for i in undecided:
        m = v.seeds_to_decide[i]
        if math.isinf(m):
            assert abs(abs(v.gap[i]) - 0.01) < 0.01
            continue
        var_i = max(v.sigma**2, np.nanvar(x[:, i], ddof=1))
        var_b = max(v.sigma**2, np.nanvar(x[:, v.best], ddof=1))
        room = -0.01 - v.gap[i] if v.gap[i] < -0.01 else 0.01 - abs(v.gap[i])
        big_df = S.studentized_range_isf(0.05, v.k, 1e4) / math.sqrt(2)
        assert big_df * math.sqrt((var_i + var_b) / m) < room <= big_df * math.sqrt((var_i + var_b) / (m - 1))


def test_rejects_bad_arguments():
    with pytest.raises(SweeperError, match="rope"):
        S.decide(matrix(0.7, 0.6), rope=-0.1)
    with pytest.raises(SweeperError, match="no candidate has a finite run"):
        S.decide(np.full((2, 2), np.nan))


# --------------------------------------------------------------------------- racing


def test_after_screening_everyone_needs_a_seed():
    assert S.needs_more_seeds(np.array([[0.70, 0.60, 0.65, 0.50]]), 5).all()


def test_racing_stops_for_the_decided_and_the_best_runs_while_anyone_is_open():
    x = np.full((3, 6), np.nan)
    x[:, :3] = np.array([0.70, 0.695, 0.66])[None, :] + 0.3 * BASE  # sd 0.003
    x[0, 3:] = [0.55, 0.50, 0.45]  # one run each, far below: worse by the pooled noise
    v = S.decide(x, rope=0.01)
    assert list(v.verdict) == [S.BEST, S.UNDECIDED] + [S.WORSE] * 4
    assert v.seeds_to_decide[1] == 6  # 0.005 from the ROPE's edge at sd 0.003
    assert list(S.needs_more_seeds(x, 5, rope=0.01)) == [True, True, False, False, False, False]
    assert not S.needs_more_seeds(x, 4, rope=0.01).any()  # 6 > 1.3 x 4 seeds: hopeless, stop


def test_a_candidate_the_budget_cannot_decide_gets_no_more_seeds():
    x = matrix(0.70, 0.69, 0.62)  # the runner-up sits on the ROPE's edge: ~inf seeds
    v = S.decide(x, rope=0.01)
    assert v.verdict[1] == S.UNDECIDED and v.seeds_to_decide[1] > S.verdicts.HOPELESS_FACTOR * 5
    assert not S.needs_more_seeds(x, 5, rope=0.01).any()
    one_run = np.array([[0.70, 0.69], [0.71, np.nan]])  # one run: too rough to give up on
    assert S.needs_more_seeds(one_run, 5, rope=0.01)[1]


def test_candidates_without_runs_are_never_flagged():
    x = np.array([[0.70, 0.70, np.nan]])
    assert list(S.needs_more_seeds(x, 5)) == [True, True, False]
    assert not S.needs_more_seeds(np.array([[0.7, 0.6, 0.5]]), 1).any()


def test_next_candidates_orders_by_mean_and_fills_slots():
    x = np.array([[0.60, 0.70, 0.65, 0.68]])
    assert list(S.next_candidates(x, 5)) == [1, 3, 2, 0]
    assert list(S.next_candidates(x, 5, slots=2)) == [1, 3]
    with pytest.raises(SweeperError, match="max_seeds"):
        S.needs_more_seeds(x, 0)


def test_racing_by_the_verdicts_ends_with_every_row_decided_or_out_of_budget():
    rng = np.random.default_rng(7)
    mu = 0.7 - np.linspace(0, 0.05, 12)
    x = np.full((5, 12), np.nan)
    x[0] = mu + rng.normal(0, 0.004, 12)
    while (idx := S.next_candidates(x, 5, slots=1, rope=0.01)).size:
        i = idx[0]
        x[np.isfinite(x[:, i]).sum(), i] = mu[i] + rng.normal(0, 0.004)
    v = S.decide(x, rope=0.01)
    n = np.isfinite(x).sum(axis=0)
    for i in np.flatnonzero(v.verdict == S.UNDECIDED):
        assert n[i] == 5 or v.seeds_to_decide[i] > S.verdicts.HOPELESS_FACTOR * 5
    assert n.sum() < 0.7 * x.size  # racing spent fewer runs than 5 seeds for everyone
    assert (v.verdict == S.WORSE).sum() >= 5


def test_racing_reads_the_verdicts_without_their_p_values():
    """``p_values=False`` (what racing asks for) changes nothing but the p-values it skips."""
    rng = np.random.default_rng(3)
    x = 0.6 - 0.004 * np.arange(12)[None, :] + 0.01 * rng.normal(size=(6, 12))
    x[3:, 5:] = np.nan
    full, lean = S.decide(x), S.decide(x, p_values=False)
    assert np.isfinite(full.p_tukey).any() and np.isnan(lean.p_tukey).all()
    for name in ("verdict", "gap", "gap_low", "gap_high", "se", "seeds_to_decide"):
        np.testing.assert_array_equal(getattr(full, name), getattr(lean, name))


@pytest.mark.parametrize("df", [3.37, 99.95, 100.0, 1009.0, 2957.0])
def test_critical_values_round_df_down_never_narrowing_an_interval(df):
    """df is rounded down (a tenth below 100, three significant digits above): the critical value
    used is never below scipy's at the exact df; within 1e-4 of it from df 100 on (a tenth of a
    degree of freedom is worth ~1.5% at df 3)."""
    from sweeper.stats.verdicts import _crit

    exact = st.studentized_range.isf(0.05, 8, df) / math.sqrt(2)
    got = _crit(0.05, 8, df)
    assert exact * (1 - 1e-5) <= got <= exact * (1 + (1e-4 if df >= 99 else 0.02))
