"""Fidelity of cheap rungs: Kendall's tau against scipy, its bootstrap interval against scipy's,
and the survival of the full-budget best through promotion, on hand-checkable cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from sweeper.errors import SweeperError
from sweeper.stats.fidelity import full_best, kendall_tau, rung_fidelity, survives


def _pair(k=15, seeds=2, rho=0.6, seed=0):
    """(seeds x candidates) full-budget and cheap mIoU, correlated by ``rho`` over candidates."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.5, 0.05, k)
    full = true + rng.normal(0, 0.005, (seeds, k))
    cheap = rho * true + math.sqrt(1 - rho * rho) * rng.normal(0.5, 0.05, k) + rng.normal(0, 0.005, (seeds, k))
    return cheap, full


def test_tau_is_scipys_within_a_seed_and_the_mean_over_seeds():
    cheap, full = _pair(seeds=3)
    expected = np.mean([st.kendalltau(cheap[s], full[s]).statistic for s in range(3)])
    assert kendall_tau(cheap, full) == pytest.approx(expected, abs=1e-12)
    cheap[0, 2] = np.nan  # a failed run drops that candidate from that seed only
    keep = np.isfinite(cheap[0])
    expected = np.mean([st.kendalltau(cheap[0, keep], full[0, keep]).statistic]
                       + [st.kendalltau(cheap[s], full[s]).statistic for s in (1, 2)])
    assert kendall_tau(cheap, full) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(kendall_tau([[0.1, 0.1, 0.1]], [[0.1, 0.2, 0.3]]))  # constant: undefined, not 0


def test_bootstrap_interval_agrees_with_scipys_percentile_bootstrap():
    cheap, full = _pair(k=15, seeds=2, seed=3)
    ours = rung_fidelity(cheap[None], full, epochs=[1], full_epochs=8, keep=1 / 3, n_boot=2000, seed=1).rungs[0]
    ref = st.bootstrap((np.arange(15),), lambda i: kendall_tau(cheap[:, i], full[:, i]), vectorized=False,
                       method="percentile", n_resamples=2000, rng=np.random.default_rng(2)).confidence_interval
    # Two independent bootstraps of one sample: the ends agree to Monte Carlo error (~0.02 here).
    assert ours.tau_low == pytest.approx(ref.low, abs=0.05)
    assert ours.tau_high == pytest.approx(ref.high, abs=0.05)
    assert ours.tau_low < ours.tau < ours.tau_high
    again = rung_fidelity(cheap[None], full, epochs=[1], full_epochs=8, keep=1 / 3, n_boot=2000, seed=1).rungs[0]
    assert again == ours  # seeded


def test_a_perfectly_concordant_rung():
    cheap, full = _pair(k=9, seeds=1, rho=0.0)
    cheap = 0.5 * full - 0.1  # another scale, the same order
    f = rung_fidelity(np.stack([cheap, cheap + 0.05]), full, epochs=[1, 3], full_epochs=8, keep=1 / 3, n_boot=500)
    for r in f.rungs:
        assert r.tau == pytest.approx(1.0) and r.tau_low == pytest.approx(1.0) and r.tau_high == pytest.approx(1.0)
        assert r.survival == 1.0 and r.survived == 1.0
    assert [r.promoted for r in f.rungs] == [3, 1]
    assert f.best == int(np.argmax(full[0]))


def test_a_reversed_rung_never_keeps_the_best():
    _, full = _pair(k=9, seeds=1)
    f = rung_fidelity(-full[None], full, epochs=[1], full_epochs=8, keep=1 / 3, n_boot=500)
    r = f.rungs[0]
    assert r.tau == pytest.approx(-1.0) and r.tau_high == pytest.approx(-1.0)
    assert r.survived == 0.0
    # Only a resample made of 7+ copies of the best could keep it (p ~ 6e-6 per resample).
    assert r.survival == 0.0


def test_survival_climbs_every_rung_up_to_this_one():
    # Six candidates, keep 1/2: column 5 is the full-budget best.
    levels = [[0.9, 0.8, 0.1, 0.2, 0.3, 0.7],  # 5 is third of six: 3 go on (0, 1, 5)
              [0.1, 0.9, 0.0, 0.0, 0.0, 0.5]]  # of 0, 1, 5: 5 is second, ceil(1.5) = 2 go on (1, 5)
    assert survives(levels, 5, 0.5) == [True, True]
    assert survives(levels, 5, 0.3) == [False, False]  # ceil(1.8) = 2 go on (0, 1); it stays out after
    levels[1][0] = 0.95  # now 5 is third of three at the second rung
    assert survives(levels, 5, 0.5) == [True, False]
    # Ties go to the earlier column: with keep 0.4, ceil(1.2) = 2 go on, column 1 and column 0.
    assert survives([[0.1, 0.9, 0.1]], 2, 0.4) == [False]
    assert survives([[0.1, 0.9, 0.1]], 2, 0.4, same=[0, 1, 0]) == [True]  # column 0 is a copy of the best
    assert survives([[0.1, 0.9, 0.1]], 2, 0.3, same=[0, 1, 0]) == [False]  # only column 1 goes on


def test_bootstrap_survival_of_two_candidates_is_one_half():
    """Two candidates, keep 1/2 (one goes on); the rung prefers the full-budget loser. Of the four
    equally likely resamples, (0, 0) and (1, 1) keep their own best, (0, 1) and (1, 0) lose it."""
    full = np.array([[0.6, 0.5]])
    cheap = np.array([[[0.2, 0.3]]])
    f = rung_fidelity(cheap, full, epochs=[1], full_epochs=4, keep=0.5, n_boot=4000, seed=0)
    assert f.rungs[0].survived == 0.0
    assert f.rungs[0].survival == pytest.approx(0.5, abs=0.03)


def test_survival_with_several_seeds_is_the_share_of_seeds():
    full = np.array([[0.6, 0.5, 0.4], [0.6, 0.5, 0.4]])
    cheap = np.array([[[0.3, 0.2, 0.1], [0.1, 0.2, 0.3]]])  # seed 0 keeps the best, seed 1 does not
    f = rung_fidelity(cheap, full, epochs=[1], full_epochs=4, keep=1 / 3, n_boot=200)
    assert f.rungs[0].survived == 0.5
    assert f.rungs[0].tau == pytest.approx(0.0)  # +1 and -1


def test_full_best_is_the_best_mean_and_ignores_failed_runs():
    assert full_best([[0.5, np.nan, 0.4], [0.5, 0.9, 0.8]]) == 1
    assert full_best([[0.5, np.nan, 0.5]]) == 0  # first on a tie
    with pytest.raises(SweeperError, match="no candidate has a full-budget run"):
        full_best([[np.nan, np.nan]])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"epochs": [1, 3]}, "2 rung budgets for 1 cheap rungs"),
    ({"keep": 1.0}, "keep must be strictly between 0 and 1"),
    ({"n_boot": 0}, "n_boot must be >= 1"),
])
def test_arguments_are_checked(kwargs, message):
    cheap, full = _pair(k=5, seeds=1)
    args = {"epochs": [1], "full_epochs": 8, "keep": 0.33, **kwargs}
    with pytest.raises(SweeperError, match=message):
        rung_fidelity(cheap[None], full, **args)
    with pytest.raises(SweeperError, match="like full"):
        rung_fidelity(cheap[:, :3], full, epochs=[1], full_epochs=8, keep=0.33)
