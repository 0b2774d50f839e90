"""Noise floor, detectable gaps and seeds needed: the stated power, checked by simulation."""

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
