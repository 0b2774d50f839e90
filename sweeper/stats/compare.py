"""Reference comparisons of each candidate with the best: paired differences, their p-values.

These are the figures a reader may want beside a verdict (a paired t-test and Holm, the signed
rank test, how often a run beats a run of the best), but none of them decides one: they ignore
that the best was picked after seeing the data, and flag equal candidates far more often than
their level (``benchmarks/stats_sim.py`` measures it). Verdicts are :mod:`sweeper.stats.verdicts`.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as _st

from sweeper.errors import SweeperError
from sweeper.stats.arrays import as_values, check_choice, check_fraction, check_n_boot, column_stats, compact
from sweeper.stats.summary import CI_METHODS, T_BELOW, _bootstrap_interval, _resample_weights

MIN_WILCOXON_RUNS = 6
"""Below 6 pairs the exact one-sided signed-rank p-value cannot go below 1/32 > .025."""


def holm(pvalues: Any) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries are not in the family).

    The i-th smallest of m p-values is multiplied by ``m - i + 1``, then made non-decreasing
    along that order and capped at 1; it controls the family-wise error rate for any dependence.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def probability_of_improvement(values: Any, against: int) -> np.ndarray:
    """P(X_i > X_against) for each candidate i: how often a run of i beats a run of ``against``.

    Estimated over all pairs of finite runs (the Mann-Whitney statistic divided by n_i * n_a;
    ties count 1/2), as rliable's ``probability_of_improvement`` and Bouthillier et al. (2021).
    0.5 means no tendency either way; it is a rate, not mIoU. NaN where either has no runs.
    """
    x = as_values(values)
    a = x[:, against]
    a = a[np.isfinite(a)]
    n = np.isfinite(x).sum(axis=0)
    if a.size == 0:
        return np.full(x.shape[1], np.nan)
    xi = x[:, :, None]
    wins = (xi > a).sum(axis=(0, 2)) + 0.5 * (xi == a).sum(axis=(0, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, wins / (n * a.size), np.nan)



class Comparison(NamedTuple):
    """Each candidate against the best (highest mean); arrays have one entry per candidate.

    ``diff``: candidate minus best in mIoU (negative = worse), the mean paired difference over
    the seeds both have when they share >= 2, else the difference of means (``test`` says which:
    "paired", "welch", or "" when there is no test). ``diff_ci_low``/``diff_ci_high``: its
    confidence interval at level ``ci`` (t interval, or paired bootstrap over shared seeds and
    independent resamples for Welch), one comparison at a time. ``p_paired_t``: one-sided p-value
    that the candidate is worse (paired t, or Welch t), not adjusted; ``p_holm``: Holm-adjusted
    over all comparisons; ``p_wilcoxon``: one-sided signed-rank p over the shared seeds, NaN
    below 6 pairs. ``p_improvement``: P(run of candidate > run of best). ``n_shared``: seeds both
    ran.
    """

    best: int
    diff: np.ndarray
    diff_ci_low: np.ndarray
    diff_ci_high: np.ndarray
    test: np.ndarray
    n_shared: np.ndarray
    p_paired_t: np.ndarray
    p_holm: np.ndarray
    p_wilcoxon: np.ndarray
    p_improvement: np.ndarray


def best_index(values: Any) -> int:
    """Column of the highest mean (first one on a tie); raises if no candidate has a run."""
    x = as_values(values)
    _, mean, _ = column_stats(x)
    if not np.isfinite(mean).any():
        raise SweeperError("no candidate has a finite run: nothing to compare")
    return int(np.nanargmax(mean))


def _wilcoxon_less(d_shared: np.ndarray, n_shared: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """One-sided signed-rank p-values, vectorised over candidates with the same pair count."""
    p = np.full(d_shared.shape[1], np.nan)
    dc = compact(d_shared)
    for m in np.unique(n_shared[cols]):
        if m < MIN_WILCOXON_RUNS:
            continue
        group = cols[n_shared[cols] == m]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = _st.wilcoxon(dc[:m, group], axis=0, alternative="less")
        p[group] = res.pvalue
    return p



def compare_to_best(
    values: Any,
    *,
    ci: float = 0.95,
    method: str = "auto",
    n_boot: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Compare every candidate with the best one (highest mean); see :class:`Comparison`.

    ``method`` as in :func:`~sweeper.stats.summary.summarize` (``auto``: t intervals below 10
    shared seeds). ``n_boot=0`` skips the bootstrap (intervals NaN where it would be used).
    """
    x = as_values(values)
    check_fraction("ci", ci)
    check_choice("method", method, CI_METHODS)
    check_n_boot(n_boot)
    best = best_index(x)
    k = x.shape[1]
    obs = np.isfinite(x)
    n, mean, sd = column_stats(x)
    shared = obs & obs[:, [best]]
    n_shared = shared.sum(axis=0)
    d = np.where(shared, x - x[:, [best]], np.nan)
    _, d_mean, d_sd = column_stats(d)

    others = np.arange(k) != best
    paired = others & (n_shared >= 2)
    welch = others & ~paired & (n >= 2) & (n[best] >= 2)
    test = np.full(k, "", dtype=object)
    test[paired], test[welch] = "paired", "welch"

    diff = np.where(paired, d_mean, mean - mean[best])
    diff[best] = 0.0
    p_t = np.full(k, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_paired = d_mean / (d_sd / np.sqrt(n_shared))
        var_i, var_b = sd**2 / n, sd[best] ** 2 / n[best]
        t_welch = (mean - mean[best]) / np.sqrt(var_i + var_b)
        df_welch = (var_i + var_b) ** 2 / (var_i**2 / (n - 1) + var_b**2 / (n[best] - 1))
    p_t[paired] = _st.t.cdf(t_paired[paired], n_shared[paired] - 1)
    p_t[welch] = _st.t.cdf(t_welch[welch], df_welch[welch])
    p_w = _wilcoxon_less(d, n_shared, np.flatnonzero(paired))

    with np.errstate(invalid="ignore", divide="ignore"):
        hp = _st.t.ppf((1 + ci) / 2, np.maximum(n_shared - 1, 1)) * d_sd / np.sqrt(n_shared)
        hw = _st.t.ppf((1 + ci) / 2, df_welch) * np.sqrt(var_i + var_b)
    low = np.where(paired, diff - hp, np.where(welch, diff - hw, np.nan))
    high = np.where(paired, diff + hp, np.where(welch, diff + hw, np.nan))
    if method == "bootstrap":
        boot_paired, boot_welch = paired, welch
    elif method == "auto":
        boot_paired = paired & (n_shared >= T_BELOW)
        boot_welch = welch & (n >= T_BELOW) & (n[best] >= T_BELOW)
    else:
        boot_paired = boot_welch = np.zeros(k, dtype=bool)
    low[boot_paired | boot_welch] = high[boot_paired | boot_welch] = np.nan
    if n_boot and boot_paired.any():
        lp, hp_ = _bootstrap_interval(np.where(boot_paired, d, np.nan), ci, n_boot, seed, stream=1)
        low[boot_paired], high[boot_paired] = lp[boot_paired], hp_[boot_paired]
    if n_boot and boot_welch.any():
        xb = x[obs[:, best], best]
        wb = _resample_weights(xb.size, n_boot, seed, stream=2)
        lw, hw_ = _bootstrap_interval(np.where(boot_welch, x, np.nan), ci, n_boot, seed, stream=3, minus=wb @ xb)
        low[boot_welch], high[boot_welch] = lw[boot_welch], hw_[boot_welch]
    low[best] = high[best] = 0.0
    return Comparison(best=best, diff=diff, diff_ci_low=low, diff_ci_high=high, test=test, n_shared=n_shared,
                      p_paired_t=p_t, p_holm=holm(p_t), p_wilcoxon=p_w,
                      p_improvement=probability_of_improvement(x, best))
