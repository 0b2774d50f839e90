"""The ranked table and its input: order, pivoting records, bad values."""

from __future__ import annotations

import numpy as np
import pytest

from sweeper import stats as S
from sweeper.errors import SweeperError


def noisy(means, seeds, sigma, seed=0):
    """(seeds, candidates) matrix: the given true means plus iid normal noise."""
    rng = np.random.default_rng(seed)
    return np.asarray(means, float) + rng.normal(0.0, sigma, (seeds, len(means)))


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
        S.decide(x, rope=-0.1)
    with pytest.raises(SweeperError, match="2 candidate names for 3 columns"):
        S.rank_candidates(noisy([0.7, 0.6, 0.5], 2, 0.01), ["a", "b"])
    with pytest.raises(SweeperError, match="unique"):
        S.rank_candidates(x, ["a", "a"])
    with pytest.raises(SweeperError, match="no candidate has a finite run"):
        S.compare_to_best(np.full((2, 2), np.nan))


def test_rank_candidates_puts_the_best_first_and_no_runs_last():
    x = noisy([0.65, 0.70, 0.60, 0.0], 3, 0.002, seed=24)
    x[:, 3] = np.nan
    ranking = S.rank_candidates(x, ["a", "b", "c", "d"], rope=0.005)
    assert [row.candidate.key for row in ranking.rows] == ["b", "a", "c", "d"]
    assert [row.rank for row in ranking.rows] == [1, 2, 3, 4]
    assert ranking.best_key == "b" and ranking.rows[0].verdict == S.BEST
    assert [row.verdict for row in ranking.rows] == [S.BEST, S.WORSE, S.WORSE, ""]
    assert ranking.rows[0].p_improvement == 0.5
    assert ranking.noise_candidates == 3 and ranking.noise_df == 6
    assert ranking.mde == pytest.approx(S.min_detectable_effect(ranking.noise_floor, 3))
    assert ranking.seeds_for_rope == S.seeds_needed(ranking.noise_floor, 0.005)
    assert ranking.count(S.WORSE) == 2 and ranking.ci_method_text == "t interval"


def test_the_trivial_baseline_warns_when_no_model_beats_it_by_the_rope():
    x = noisy([0.090, 0.088], 3, 0.002, seed=25)
    assert S.rank_candidates(x, ["a", "b"], baseline=0.084).no_model_learned
    assert not S.rank_candidates(x, ["a", "b"], baseline=0.05).no_model_learned
    assert not S.rank_candidates(x, ["a", "b"]).no_model_learned


def test_ranking_a_thousand_candidates_decides_the_far_ones():
    x = noisy(list(0.7 - np.linspace(0, 0.1, 1000)), 10, 0.004, seed=26)
    ranking = S.rank_candidates(x, [f"c{i}" for i in range(1000)])
    assert ranking.count(S.WORSE) > 800 and int(ranking.rows[0].candidate.key[1:]) < 50  # within 0.005
