"""Per-candidate summaries: seeded bootstrap, t intervals, and the automatic choice."""

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


def test_bootstrap_is_seeded():
    x = noisy([0.70, 0.69, 0.68], 6, 0.005, seed=13)
    a = S.summarize(x, method="bootstrap", seed=3)
    b = S.summarize(x, method="bootstrap", seed=3)
    c = S.summarize(x, method="bootstrap", seed=4)
    np.testing.assert_array_equal(a.ci_low, b.ci_low)
    np.testing.assert_array_equal(a.ci_high, b.ci_high)
    assert not np.array_equal(a.ci_low, c.ci_low)
    assert np.all((a.ci_low <= a.mean) & (a.mean <= a.ci_high))


def test_bootstrap_interval_of_a_candidate_does_not_depend_on_the_others():
    x = noisy([0.70, 0.69, 0.68], 6, 0.005, seed=14)
    alone = S.summarize(x[:, :1], method="bootstrap", seed=0)
    together = S.summarize(x, method="bootstrap", seed=0)
    # same resamples; only the summation order of the matrix product may differ
    assert alone.ci_low[0] == pytest.approx(together.ci_low[0], rel=1e-12)
    assert alone.ci_high[0] == pytest.approx(together.ci_high[0], rel=1e-12)
    assert alone.ci_low[0] != S.summarize(x[:, :1], method="bootstrap", seed=1).ci_low[0]


def test_t_interval_matches_scipy_and_single_runs_have_none():
    x = noisy([0.70, 0.69], 5, 0.005, seed=15)
    x[1:, 1] = np.nan
    s = S.summarize(x, method="t", ci=0.9)
    lo, hi = st.t.interval(0.9, 4, loc=x[:, 0].mean(), scale=st.sem(x[:, 0]))
    assert (s.ci_low[0], s.ci_high[0]) == (pytest.approx(lo), pytest.approx(hi))
    assert s.n[1] == 1 and math.isnan(s.sd[1]) and math.isnan(s.ci_low[1])
    assert s.median[0] == pytest.approx(np.median(x[:, 0]))


def test_auto_takes_the_t_interval_below_ten_runs_and_the_bootstrap_from_ten():
    x = noisy([0.70, 0.69], 12, 0.005, seed=30)
    x[5:, 1] = np.nan  # 12 runs and 5 runs
    auto = S.summarize(x)
    t = S.summarize(x, method="t")
    boot = S.summarize(x, method="bootstrap")
    assert (auto.ci_low[1], auto.ci_high[1]) == (t.ci_low[1], t.ci_high[1])
    assert (auto.ci_low[0], auto.ci_high[0]) == (boot.ci_low[0], boot.ci_high[0])
    assert auto.ci_low[0] != t.ci_low[0]


def test_t_interval_covers_at_its_level_with_three_seeds_where_the_bootstrap_does_not():
    rng = np.random.default_rng(31)
    x = 0.7 + rng.normal(0, 0.01, (3, 4000))
    t = S.summarize(x, method="t")
    boot = S.summarize(x, method="bootstrap", n_boot=400)
    covered_t = np.mean((t.ci_low <= 0.7) & (0.7 <= t.ci_high))
    covered_boot = np.mean((boot.ci_low <= 0.7) & (0.7 <= boot.ci_high))
    assert covered_t == pytest.approx(0.95, abs=0.015)
    assert covered_boot < 0.85  # the percentile bootstrap cannot see more spread than 3 runs show
