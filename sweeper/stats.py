"""Statistics for ranking candidates that were each trained over several seeds or folds.

One array convention everywhere (as in rliable): ``values`` is a float array of shape
``(runs, candidates)``. Row ``r`` holds seed (or fold) ``r`` for every candidate, so rows pair the
candidates (common random numbers: the same data split, data order and initialisation seed), and
``NaN`` marks a run that is missing. Higher is better; the numbers are dataset-level mIoU in
[0, 1], so every difference, ROPE, standard deviation and effect below is in mIoU units (0.01 is
one mIoU point).

Which test decides the markers, and why
---------------------------------------
The best candidate is chosen *after* looking at the data, and the others are then compared with
it. A paired t-test against the observed best, even Holm-corrected, ignores that selection: with
10 equal candidates and 5 seeds it flags some candidate as "worse than the best" in about one
study in five (``benchmarks/stats_sim.py`` measures it). When all candidates are equal,
"some candidate is significantly below the observed best" is exactly "the largest minus the
smallest mean is large", i.e. the studentized range. So the markers are decided by Tukey's HSD
restricted to the comparisons with the best: candidate ``i`` is worse when
``sqrt(2) * (mean_best - mean_i) / se_i`` exceeds the studentized-range quantile for all the
candidates that have runs. Seeds are blocks: the means and the residual variance come from the
additive model ``value[r, i] = candidate_i + seed_r + noise`` fitted by least squares on the
observed cells, which removes seed effects shared by all candidates (a hard fold is hard for
everyone) and handles missing runs (Tukey-Kramer standard errors). If missing runs cut the seeds
into groups that share no candidate, seed effects cannot be separated from candidate effects and
the model falls back to one-way Tukey-Kramer (no blocks). With complete data and normal noise the
chance of marking any candidate worse when all are equal is exactly ``alpha``.

Hsu's multiple comparisons with the best (MCB) answers a different question: "is ``i`` not the
unique best?". Under ties that statement is true for everyone, so MCB does not bound false
"worse" markers (measured: about one study in five, like the naive test). It does bound what
racing needs, "the chosen candidate is within the ROPE of the truly best one", so
:func:`needs_more_seeds` uses it.

With missing runs the standard errors are Tukey-Kramer-type and the level is approximate (the
simulation measures it with 10% of runs missing); with heteroscedastic candidates (one
architecture much noisier than the rest) the pooled residual variance is an average, so the
noisy one's comparisons are optimistic and the quiet ones' conservative.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from scipy import special
from scipy import stats as _st

from sweeper.errors import SweeperError, did_you_mean

BEST = "★"
"""Marker of the candidate with the highest mean."""
TIED = "≈"
"""Not distinguishable from the best: not significant (Tukey) or the gap is inside the ROPE."""
SINGLE = "?"
"""A single run: the candidate has no noise estimate of its own."""
NO_RUNS = ""
"""No finite run at all (every seed failed or none ran yet)."""
STARS = ("*", "**", "***")
"""Worse than the best by more than the ROPE, Tukey-adjusted p < .05, .01, .001."""

PROCEDURE_BLOCKS = "Tukey HSD vs best, seeds as blocks"
PROCEDURE_ONE_WAY = "Tukey-Kramer vs best, one-way (seeds not connected)"

CI_METHODS = ("bootstrap", "t")
RACING_RULES = ("mcb", "markers")
MIN_WILCOXON_RUNS = 6
"""Below 6 pairs the exact one-sided signed-rank p-value cannot go below 1/32 > .025."""


# --------------------------------------------------------------------------- candidates and input


@dataclass(frozen=True)
class Label:
    """What a column of ``values`` is: a label the statistics carry along and never read.

    ``key`` is unique (e.g. ``"unet/resnet34"``); ``params`` is the parameter count (not
    millions) or None when unknown; ``extra`` holds anything else worth exporting (JSON only).
    """

    key: str
    arch: str = ""
    encoder: str = ""
    params: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)


def as_values(values: Any) -> np.ndarray:
    """Return ``values`` as a float (runs, candidates) array, or raise :class:`SweeperError`."""
    try:
        arr = np.array(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise SweeperError(f"values must be numbers (NaN for a missing run): {exc}") from None
    if arr.ndim != 2:
        raise SweeperError(
            f"values must be a 2-D array of shape (runs, candidates), got {arr.ndim}-D "
            f"shape {arr.shape}"
        )
    if np.isinf(arr).any():
        raise SweeperError("values contain inf; use NaN for a missing or failed run")
    return arr


def pivot_runs(
    records: Iterable[tuple[str, int, float | None]],
) -> tuple[np.ndarray, list[str], list[int]]:
    """Build ``values`` from ``(candidate_key, seed, value)`` records, e.g. one per finished trial.

    Returns ``(values, keys, seeds)``: columns follow the first appearance of each key, rows are
    the sorted distinct seeds, and a (key, seed) without a record (or with value None) is NaN. A
    (key, seed) recorded twice raises, because silently keeping one of two runs biases the mean.
    """
    keys: dict[str, int] = {}
    cells: dict[tuple[str, int], float] = {}
    for key, seed, value in records:
        key, seed = str(key), int(seed)
        keys.setdefault(key, len(keys))
        if (key, seed) in cells:
            raise SweeperError(f"candidate {key!r} has two runs for seed {seed}")
        cells[(key, seed)] = math.nan if value is None else float(value)
    seeds = sorted({seed for _, seed in cells})
    row = {seed: r for r, seed in enumerate(seeds)}
    values = np.full((len(seeds), len(keys)), np.nan)
    for (key, seed), value in cells.items():
        values[row[seed], keys[key]] = value
    return as_values(values), list(keys), seeds


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise SweeperError(
            f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}"
            + did_you_mean(value, choices)
        )


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 < float(value) < 1.0:
        raise SweeperError(f"{name} must be between 0 and 1 (exclusive), got {value!r}")


def _check_rope(rope: float) -> None:
    if not float(rope) >= 0.0:
        raise SweeperError(f"rope must be >= 0 (in mIoU units, e.g. 0.01), got {rope!r}")


def _check_n_boot(n_boot: int) -> None:
    if int(n_boot) != n_boot or n_boot < 0:
        raise SweeperError(f"n_boot must be a whole number >= 0, got {n_boot!r}")


# --------------------------------------------------------------------------- per-candidate summary


class Summary(NamedTuple):
    """Per-candidate statistics, each an array with one entry per candidate (column).

    ``n``: finite runs. ``mean``, ``sd`` (ddof 1, NaN below 2 runs), ``median``: mIoU over
    those runs. ``ci_low``/``ci_high``: confidence interval of the mean (NaN below 2 runs, since
    one run says nothing about the noise).
    """

    n: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    median: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


def _column_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    obs = np.isfinite(x)
    n = obs.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(obs, x, 0.0).sum(axis=0) / n
        dev = np.where(obs, x - mean, 0.0)
        sd = np.sqrt((dev * dev).sum(axis=0) / (n - 1))
    mean = np.where(n > 0, mean, np.nan)
    sd = np.where(n > 1, sd, np.nan)
    return n, mean, sd


def _compact(x: np.ndarray) -> np.ndarray:
    """Move each column's finite entries to the top, keeping their order (NaN below)."""
    order = np.argsort(~np.isfinite(x), axis=0, kind="stable")
    return np.take_along_axis(x, order, axis=0)


def _resample_weights(m: int, n_boot: int, seed: int, stream: int) -> np.ndarray:
    """(n_boot, m) bootstrap weights: counts of each of m runs in a resample, divided by m.

    The generator is seeded by (seed, stream, m) alone, so a candidate's interval depends on its
    own runs and the seed, not on which other candidates are in the table.
    """
    rng = np.random.default_rng([int(seed), int(stream), int(m)])
    idx = rng.integers(0, m, size=(n_boot, m))
    flat = (np.arange(n_boot)[:, None] * m + idx).ravel()
    return np.bincount(flat, minlength=n_boot * m).reshape(n_boot, m) / m


_CHUNK = 2048


def _bootstrap_interval(
    x: np.ndarray,
    level: float,
    n_boot: int,
    seed: int,
    stream: int,
    minus: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of each column's mean, resampling that column's finite entries.

    Columns with the same number of runs share one resample matrix (one matrix product per group).
    ``minus`` (n_boot,), when given, is subtracted from every resampled mean: the resampled mean
    of an independent second sample, for a Welch-type difference.
    """
    k = x.shape[1]
    low = np.full(k, np.nan)
    high = np.full(k, np.nan)
    if n_boot == 0 or k == 0:
        return low, high
    xc = _compact(x)
    n = np.isfinite(x).sum(axis=0)
    q = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    for m in np.unique(n[n >= 2]):
        weights = _resample_weights(int(m), n_boot, seed, stream)
        cols = np.flatnonzero(n == m)
        for start in range(0, cols.size, _CHUNK):
            chunk = cols[start : start + _CHUNK]
            means = weights @ xc[:m, chunk]
            if minus is not None:
                means = means - minus[:, None]
            low[chunk], high[chunk] = np.quantile(means, q, axis=0)
    return low, high


def summarize(
    values: Any,
    *,
    ci: float = 0.95,
    method: str = "bootstrap",
    n_boot: int = 2000,
    seed: int = 0,
) -> Summary:
    """Per-candidate n, mean, sd, median and a ``ci`` confidence interval of the mean (mIoU).

    ``method="bootstrap"`` (default) is the percentile bootstrap over the candidate's runs with a
    seeded generator (same ``seed``, same interval); ``method="t"`` is the Student-t interval
    ``mean ± t(n-1) * sd / sqrt(n)``, which assumes roughly normal run-to-run noise. With 3-5
    seeds the bootstrap interval is too narrow (it cannot see more spread than the runs show);
    the t interval is the safer choice there.
    """
    x = as_values(values)
    _check_fraction("ci", ci)
    _check_choice("method", method, CI_METHODS)
    _check_n_boot(n_boot)
    n, mean, sd = _column_stats(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(x, axis=0) if x.shape[0] else np.full(x.shape[1], np.nan)
    if method == "t":
        with np.errstate(invalid="ignore", divide="ignore"):
            half = _st.t.ppf((1.0 + ci) / 2.0, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
        low, high = mean - half, mean + half
    else:
        low, high = _bootstrap_interval(x, ci, n_boot, seed, stream=0)
    ok = n >= 2
    return Summary(n, mean, sd, median, np.where(ok, low, np.nan), np.where(ok, high, np.nan))


# --------------------------------------------------------------------------- multiplicity


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


# The studentized range P(Q > q) = E_s[R(q s)], where R(w) = P(range of k standard normals > w)
# and s = sqrt(chi2_df / df). R is tabulated once per k on a fine grid of w (Gauss-Legendre over
# the normal line) and the expectation over s is a Gauss-Legendre sum over the chi quantile taken
# at u = v**3, so that the heavy lower tail of s at few degrees of freedom is resolved.
_Z_NODES, _Z_WEIGHTS = np.polynomial.legendre.leggauss(160)
_Z_NODES, _Z_WEIGHTS = _Z_NODES * 8.5, _Z_WEIGHTS * 8.5
_V_NODES, _V_WEIGHTS = np.polynomial.legendre.leggauss(96)
_V_NODES, _V_WEIGHTS = (_V_NODES + 1.0) / 2.0, _V_WEIGHTS / 2.0
_W_GRID = np.linspace(0.0, 40.0, 4001)


@lru_cache(maxsize=64)
def _log_range_sf(k: int) -> np.ndarray:
    """log P(range of k standard normals > w) on ``_W_GRID``; exact to rounding, not sampled."""
    z = _Z_NODES
    log_cdf = special.log_ndtr(z)
    cdf = np.exp(log_cdf)
    dens = _Z_WEIGHTS * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) * k
    head = np.exp((k - 1) * log_cdf) * dens
    out = np.empty(_W_GRID.size)
    step = 512
    for start in range(0, _W_GRID.size, step):
        w = _W_GRID[start : start + step, None]
        ratio = np.minimum(special.ndtr(z - w) / cdf, 1.0)
        with np.errstate(divide="ignore"):
            # Phi^(k-1) - (Phi - Phi(z - w))^(k-1), without cancellation for tiny tails.
            tail = -np.expm1((k - 1) * np.log1p(-ratio))
        out[start : start + step] = (head * tail).sum(axis=-1)
    return np.log(np.clip(out, 1e-320, 1.0))


@lru_cache(maxsize=512)
def _chi_nodes(df: float) -> tuple[np.ndarray, np.ndarray]:
    u = _V_NODES**3
    s = np.sqrt(_st.chi2.ppf(u, df) / df)
    return s, _V_WEIGHTS * 3.0 * _V_NODES**2


def studentized_range_sf(q: Any, k: int, df: float) -> np.ndarray:
    """P(Q > q) for the studentized range of ``k`` means with ``df`` degrees of freedom.

    The same quantity as ``scipy.stats.studentized_range.sf`` (agreeing to ~1e-5 relative for
    p >= 1e-4), but vectorised over ``q`` with fixed quadrature: scipy integrates adaptively,
    ~6 ms per value, too slow for a thousand candidates or a simulation. ``k = 2`` is exact (the
    two-sided t-test).
    """
    q = np.asarray(q, dtype=float)
    flat = np.abs(q.ravel())
    if k < 2:
        raise ValueError("the studentized range needs k >= 2 means")
    if k == 2:
        return (2.0 * _st.t.sf(flat / math.sqrt(2.0), df)).reshape(q.shape)
    s, ws = _chi_nodes(float(df))
    log_r = _log_range_sf(int(k))
    w = np.minimum(flat[:, None] * s[None, :], _W_GRID[-1])
    out = np.exp(np.interp(w, _W_GRID, log_r)) @ ws
    return np.clip(out, 0.0, 1.0).reshape(q.shape)


# --------------------------------------------------------------------------- comparison with best


class _Fit(NamedTuple):
    """Additive model ``value = candidate + seed + noise`` and the contrasts with the best."""

    diff: np.ndarray  # adjusted mean of candidate minus adjusted mean of the best (mIoU)
    se: np.ndarray  # standard error of ``diff`` (NaN for the best, n=0, or no residual df)
    sigma: float  # residual sd (mIoU), NaN when df == 0
    df: int
    k: int  # candidates with at least one run: the size of the studentized-range family
    design: str  # "blocks", "one-way" or "none"


def _fit_vs_best(x: np.ndarray, best: int) -> _Fit:
    obs = np.isfinite(x)
    n_all = obs.sum(axis=0)
    kcols = np.flatnonzero(n_all > 0)
    rows = np.flatnonzero(obs.any(axis=1))
    k_all = x.shape[1]
    diff = np.full(k_all, np.nan)
    se = np.full(k_all, np.nan)
    if kcols.size < 2:
        return _Fit(diff, se, math.nan, 0, int(kcols.size), "none")
    xa = x[np.ix_(rows, kcols)]
    oa = obs[np.ix_(rows, kcols)]
    m = oa.astype(float)
    n = m.sum(axis=0)
    y = np.where(oa, xa, 0.0)
    total = int(n.sum())
    jb = int(np.flatnonzero(kcols == best)[0])
    # Eliminate candidate effects: the seed effects solve the reduced (Laplacian-like) system.
    u = (m / n).T  # (candidates, seeds): each candidate's weights over seeds
    lap = np.diag(m.sum(axis=1)) - m @ u
    eig = np.linalg.eigvalsh(lap)
    rank = int((eig > 1e-9 * max(1.0, float(eig.max(initial=0.0)))).sum())
    connected = rank == rows.size - 1
    if connected:
        lap_pinv = np.linalg.pinv(lap, hermitian=True)
        rhs = y.sum(axis=1) - m @ (y.sum(axis=0) / n)
        seed_eff = lap_pinv @ rhs
        cand = (y.sum(axis=0) - m.T @ seed_eff) / n
        resid = np.where(oa, xa - cand[None, :] - seed_eff[:, None], 0.0)
        df = total - kcols.size - rank
        du = u - u[jb]
        extra = np.einsum("ir,rs,is->i", du, lap_pinv, du)
        design = "blocks"
    else:
        cand = y.sum(axis=0) / n
        resid = np.where(oa, xa - cand[None, :], 0.0)
        df = total - kcols.size
        extra = np.zeros(kcols.size)
        design = "one-way"
    sigma = math.sqrt(float((resid * resid).sum()) / df) if df > 0 else math.nan
    var_unit = 1.0 / n + 1.0 / n[jb] + extra
    var_unit[jb] = np.nan
    diff[kcols] = cand - cand[jb]
    diff[best] = 0.0
    se[kcols] = sigma * np.sqrt(np.maximum(var_unit, 0.0))
    return _Fit(diff, se, sigma, int(df), int(kcols.size), design)


def _tukey_p(fit: _Fit) -> np.ndarray:
    """Tukey-adjusted two-sided p-value of each candidate's difference from the best."""
    p = np.full(fit.diff.shape, np.nan)
    ok = np.isfinite(fit.se)
    if fit.df < 1 or not ok.any():
        return p
    d = np.abs(fit.diff[ok])
    s = fit.se[ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        qstat = np.where(s > 0, math.sqrt(2.0) * d / s, np.where(d > 0, np.inf, 0.0))
    p[ok] = studentized_range_sf(qstat, fit.k, fit.df)
    return p


def _markers(
    n: np.ndarray, best: int, diff_adjusted: np.ndarray, p_tukey: np.ndarray, rope: float,
    alpha: float,
) -> np.ndarray:
    markers = np.full(n.shape, TIED, dtype=object)
    worse = (p_tukey < alpha) & (-diff_adjusted > rope)
    markers[worse] = STARS[0]
    markers[worse & (p_tukey < 0.01)] = STARS[1]
    markers[worse & (p_tukey < 0.001)] = STARS[2]
    markers[n == 1] = SINGLE
    markers[n == 0] = NO_RUNS
    markers[best] = BEST
    return markers


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
    confidence interval (paired bootstrap over shared seeds, or independent resamples for Welch;
    t intervals with ``method="t"``). ``p_paired_t``: one-sided p-value that the candidate is
    worse (paired t, or Welch t), not adjusted; ``p_holm``: Holm-adjusted over all comparisons;
    ``p_wilcoxon``: one-sided signed-rank p over the shared seeds, NaN below 6 pairs. These
    ignore that the best was picked after seeing the data, so they do not decide the markers.
    ``diff_adjusted``/``se_adjusted``: seed-adjusted difference (additive model, seeds as blocks)
    and its standard error; ``p_tukey``: its Tukey-adjusted p-value, which decides ``marker``.
    ``p_improvement``: P(run of candidate > run of best). ``n_shared``: seeds both ran.
    ``procedure``/``design``/``df``/``sigma_residual``/``n_family``: what decided the markers,
    its residual degrees of freedom and residual sd (mIoU), and the studentized-range family size.
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
    diff_adjusted: np.ndarray
    se_adjusted: np.ndarray
    p_tukey: np.ndarray
    p_improvement: np.ndarray
    marker: np.ndarray
    procedure: str
    design: str
    df: int
    sigma_residual: float
    n_family: int
    rope: float
    alpha: float


def best_index(values: Any) -> int:
    """Column of the highest mean (first one on a tie); raises if no candidate has a run."""
    x = as_values(values)
    _, mean, _ = _column_stats(x)
    if not np.isfinite(mean).any():
        raise SweeperError("no candidate has a finite run: nothing to compare")
    return int(np.nanargmax(mean))


def _wilcoxon_less(d_shared: np.ndarray, n_shared: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """One-sided signed-rank p-values, vectorised over candidates with the same pair count."""
    p = np.full(d_shared.shape[1], np.nan)
    dc = _compact(d_shared)
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
    rope: float = 0.01,
    alpha: float = 0.05,
    ci: float = 0.95,
    method: str = "bootstrap",
    n_boot: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Compare every candidate with the best one (highest mean); see :class:`Comparison`.

    Markers: the best gets ``★``; a candidate with one run ``?``; one whose seed-adjusted gap to
    the best exceeds ``rope`` (mIoU) with Tukey-adjusted p < ``alpha`` gets ``*``/``**``/``***``
    for p < .05/.01/.001; everyone else ``≈``. ``n_boot=0`` skips the bootstrap (intervals NaN),
    which simulations use for speed.
    """
    x = as_values(values)
    _check_rope(rope)
    _check_fraction("alpha", alpha)
    _check_fraction("ci", ci)
    _check_choice("method", method, CI_METHODS)
    _check_n_boot(n_boot)
    best = best_index(x)
    k = x.shape[1]
    obs = np.isfinite(x)
    n, mean, sd = _column_stats(x)
    shared = obs & obs[:, [best]]
    n_shared = shared.sum(axis=0)
    d = np.where(shared, x - x[:, [best]], np.nan)
    _, d_mean, d_sd = _column_stats(d)

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

    low = np.full(k, np.nan)
    high = np.full(k, np.nan)
    if method == "t":
        with np.errstate(invalid="ignore", divide="ignore"):
            hp = _st.t.ppf((1 + ci) / 2, np.maximum(n_shared - 1, 1)) * d_sd / np.sqrt(n_shared)
            hw = _st.t.ppf((1 + ci) / 2, df_welch) * np.sqrt(var_i + var_b)
        low[paired], high[paired] = (diff - hp)[paired], (diff + hp)[paired]
        low[welch], high[welch] = (diff - hw)[welch], (diff + hw)[welch]
    elif n_boot:
        lp, hp_ = _bootstrap_interval(np.where(paired, d, np.nan), ci, n_boot, seed, stream=1)
        low[paired], high[paired] = lp[paired], hp_[paired]
        if welch.any():
            xb = x[obs[:, best], best]
            wb = _resample_weights(xb.size, n_boot, seed, stream=2)
            lw, hw_ = _bootstrap_interval(
                np.where(welch, x, np.nan), ci, n_boot, seed, stream=3, minus=wb @ xb
            )
            low[welch], high[welch] = lw[welch], hw_[welch]
    low[best] = high[best] = 0.0

    fit = _fit_vs_best(x, best)
    p_tukey = _tukey_p(fit)
    marker = _markers(n, best, fit.diff, p_tukey, rope, alpha)
    procedure = PROCEDURE_ONE_WAY if fit.design == "one-way" else PROCEDURE_BLOCKS
    return Comparison(
        best=best,
        diff=diff,
        diff_ci_low=low,
        diff_ci_high=high,
        test=test,
        n_shared=n_shared,
        p_paired_t=p_t,
        p_holm=holm(p_t),
        p_wilcoxon=p_w,
        diff_adjusted=fit.diff,
        se_adjusted=fit.se,
        p_tukey=p_tukey,
        p_improvement=probability_of_improvement(x, best),
        marker=marker,
        procedure=procedure,
        design=fit.design,
        df=fit.df,
        sigma_residual=fit.sigma,
        n_family=fit.k,
        rope=float(rope),
        alpha=float(alpha),
    )


# --------------------------------------------------------------------------- noise and power


def _pooled_sd(x: np.ndarray) -> tuple[float, int, int]:
    n, _, sd = _column_stats(x)
    use = n >= 2
    dof = int((n[use] - 1).sum())
    if dof == 0:
        return math.nan, 0, 0
    return math.sqrt(float(((n[use] - 1) * sd[use] ** 2).sum()) / dof), dof, int(use.sum())


def noise_floor(values: Any) -> float:
    """Run-to-run sd of one candidate (mIoU): the within-candidate sd pooled over candidates.

    Only candidates with >= 2 runs contribute, weighted by their degrees of freedom; NaN when
    none has. It includes seed effects shared by all candidates, so for paired comparisons it is
    an upper bound on the noise that matters (see :func:`min_detectable_effect`).
    """
    return _pooled_sd(as_values(values))[0]


def _power(delta: float, sigma: float, n: int, alpha: float) -> float:
    df = n - 1
    nc = delta * math.sqrt(n) / (math.sqrt(2.0) * sigma)
    return float(_st.nct.sf(_st.t.ppf(1.0 - alpha / 2.0, df), df, nc))


def min_detectable_effect(
    sigma: float, n: int, *, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest true gap (mIoU) that ``n`` seeds per candidate detect with probability ``power``.

    Design: two candidates with ``n`` seeds each, paired by seed, tested with the two-sided paired
    t-test at ``alpha`` (df ``n - 1``) -- what the marker procedure reduces to for two candidates.
    Runs of different candidates are treated as independent, so the paired difference has sd
    ``sqrt(2) * sigma`` (sigma = :func:`noise_floor`); seed effects shared by both candidates
    only make the true figure smaller. Power counts only the correct direction (the worse one is
    flagged). Returns ``inf`` for ``n < 2`` (no noise estimate, nothing is detectable) and 0 for
    ``sigma == 0``. More candidates need a larger gap (the studentized range grows with k).
    """
    _check_fraction("alpha", alpha)
    _check_fraction("power", power)
    if not sigma >= 0:
        raise SweeperError(f"sigma must be >= 0 (mIoU), got {sigma!r}")
    if n < 2:
        return math.inf
    if sigma == 0:
        return 0.0
    hi = sigma
    while _power(hi, sigma, n, alpha) < power:
        hi *= 2.0
    from scipy.optimize import brentq

    return float(brentq(lambda g: _power(g, sigma, n, alpha) - power, 0.0, hi, xtol=1e-12 * hi))


def seeds_needed(
    sigma: float,
    delta: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    max_seeds: int = 10_000,
) -> int | None:
    """Fewest seeds per candidate whose :func:`min_detectable_effect` is <= ``delta`` (mIoU).

    Same design as :func:`min_detectable_effect`; None when more than ``max_seeds`` would be
    needed.
    """
    if not delta > 0:
        raise SweeperError(f"delta must be > 0 (mIoU), got {delta!r}")
    if min_detectable_effect(sigma, max_seeds, alpha=alpha, power=power) > delta:
        return None
    lo, hi = 1, max_seeds  # mde(lo) > delta >= mde(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if min_detectable_effect(sigma, mid, alpha=alpha, power=power) <= delta:
            hi = mid
        else:
            lo = mid
    return hi


# --------------------------------------------------------------------------- ranking


class Row(NamedTuple):
    """One candidate of a :class:`Ranking`; mIoU fields in [0, 1], differences candidate - best.

    See :class:`Summary` and :class:`Comparison` for each field; ``rank`` starts at 1 (the best),
    ``index`` is the candidate's column in ``values`` and ``runs`` its value per seed row (NaN =
    missing).
    """

    rank: int
    index: int
    candidate: Label
    n: int
    mean: float
    sd: float
    median: float
    ci_low: float
    ci_high: float
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    diff_adjusted: float
    test: str
    p_paired_t: float
    p_holm: float
    p_wilcoxon: float
    p_tukey: float
    p_improvement: float
    marker: str
    runs: tuple[float, ...]


class Ranking(NamedTuple):
    """Everything a report draws: rows best first, plus the noise floor and test settings.

    ``noise_floor`` (mIoU) is the pooled within-candidate sd over ``noise_candidates`` candidates
    with >= 2 runs (``noise_df`` degrees of freedom). ``mde`` is the gap detectable with 80%
    power between two candidates with ``mde_seeds`` seeds each (the most seeds any candidate
    has), ``seeds_for_rope`` the seeds per candidate needed to detect a gap of ``rope`` (None when
    unknown or rope is 0). ``procedure``, ``design``, ``df`` and ``n_family`` say what decided the
    markers; ``ci``, ``ci_method``, ``n_boot`` and ``seed`` how intervals were made.
    """

    rows: tuple[Row, ...]
    best_key: str
    rope: float
    alpha: float
    ci: float
    ci_method: str
    n_boot: int
    seed: int
    procedure: str
    design: str
    df: int
    n_family: int
    noise_floor: float
    noise_df: int
    noise_candidates: int
    mde: float
    mde_seeds: int
    seeds_for_rope: int | None


def _as_candidates(candidates: Sequence[str | Label], k: int) -> list[Label]:
    out = [c if isinstance(c, Label) else Label(key=str(c)) for c in candidates]
    if len(out) != k:
        raise SweeperError(
            f"got {len(out)} candidate names for {k} columns of values (one per candidate)"
        )
    keys = [c.key for c in out]
    dupes = sorted({key for key in keys if keys.count(key) > 1})
    if dupes:
        raise SweeperError(f"candidate keys must be unique, repeated: {', '.join(dupes)}")
    return out


def rank_candidates(
    values: Any,
    candidates: Sequence[str | Label],
    *,
    rope: float = 0.01,
    alpha: float = 0.05,
    ci: float = 0.95,
    method: str = "bootstrap",
    n_boot: int = 2000,
    seed: int = 0,
) -> Ranking:
    """Rank candidates by mean mIoU and compare each with the best: the input of every report.

    ``values`` is (runs, candidates) as in the module docstring; ``candidates`` are keys or
    :class:`Label` labels, one per column. Candidates without any finite run rank last.
    """
    x = as_values(values)
    cands = _as_candidates(candidates, x.shape[1])
    summ = summarize(x, ci=ci, method=method, n_boot=n_boot, seed=seed)
    comp = compare_to_best(
        x, rope=rope, alpha=alpha, ci=ci, method=method, n_boot=n_boot, seed=seed
    )
    order = sorted(
        range(x.shape[1]),
        key=lambda i: (i != comp.best, summ.n[i] == 0, -np.nan_to_num(summ.mean[i], nan=0.0), i),
    )
    rows = tuple(
        Row(
            rank=rank,
            index=i,
            candidate=cands[i],
            n=int(summ.n[i]),
            mean=float(summ.mean[i]),
            sd=float(summ.sd[i]),
            median=float(summ.median[i]),
            ci_low=float(summ.ci_low[i]),
            ci_high=float(summ.ci_high[i]),
            diff=float(comp.diff[i]),
            diff_ci_low=float(comp.diff_ci_low[i]),
            diff_ci_high=float(comp.diff_ci_high[i]),
            diff_adjusted=float(comp.diff_adjusted[i]),
            test=str(comp.test[i]),
            p_paired_t=float(comp.p_paired_t[i]),
            p_holm=float(comp.p_holm[i]),
            p_wilcoxon=float(comp.p_wilcoxon[i]),
            p_tukey=float(comp.p_tukey[i]),
            p_improvement=float(comp.p_improvement[i]),
            marker=str(comp.marker[i]),
            runs=tuple(float(v) for v in x[:, i]),
        )
        for rank, i in enumerate(order, start=1)
    )
    sigma, noise_df, noise_k = _pooled_sd(x)
    mde_seeds = int(summ.n.max()) if x.size else 0
    mde = min_detectable_effect(sigma, mde_seeds, alpha=alpha) if np.isfinite(sigma) else math.nan
    seeds_rope = (
        seeds_needed(sigma, rope, alpha=alpha) if np.isfinite(sigma) and rope > 0 else None
    )
    return Ranking(
        rows=rows,
        best_key=cands[comp.best].key,
        rope=float(rope),
        alpha=float(alpha),
        ci=float(ci),
        ci_method=method,
        n_boot=int(n_boot),
        seed=int(seed),
        procedure=comp.procedure,
        design=comp.design,
        df=comp.df,
        n_family=comp.n_family,
        noise_floor=sigma,
        noise_df=noise_df,
        noise_candidates=noise_k,
        mde=mde,
        mde_seeds=mde_seeds,
        seeds_for_rope=seeds_rope,
    )


# --------------------------------------------------------------------------- racing


def needs_more_seeds(
    values: Any,
    max_seeds: int,
    *,
    rope: float = 0.01,
    alpha: float = 0.05,
    rule: str = "mcb",
) -> np.ndarray:
    """Which candidates should get another seed: a boolean array, one entry per candidate.

    Racing: screen every candidate with one seed, then call this after each finished run (or
    batch) and give the next seed to flagged candidates, highest mean first (that is
    :func:`next_candidates`); stop when nothing is flagged. A candidate's next seed should be
    the next row (seed number = its run count), so rows stay paired across candidates.
    A candidate is flagged while it is unresolved and has fewer than ``max_seeds``
    finite runs; the best is flagged while anyone else is unresolved. Candidates with no finite
    run are never flagged (screening and retries of failed runs are the caller's job).

    ``rule="mcb"`` (default): candidate ``i`` is resolved once the upper confidence bound of
    ``mean_i - mean_best`` is at most ``rope`` -- Hsu's comparison with the best, one-sided, with
    a Sidak-bounded critical value over the other candidates and the seed-adjusted standard
    errors of the marker procedure. When every other candidate is resolved, the best is within
    ``rope`` of the truly best candidate with probability >= 1 - alpha (at a single look). A
    candidate with one run is judged with the pooled residual noise of the others, so screening
    results far below the best need no second seed.

    ``rule="markers"``: the literal rule "still marked ≈ or ?" -- candidates inside the ROPE stay
    ≈ and run to ``max_seeds``, and every single-run candidate gets a second seed; it spends more
    runs (see ``benchmarks/stats_sim.py``).
    """
    x = as_values(values)
    _check_rope(rope)
    _check_fraction("alpha", alpha)
    _check_choice("rule", rule, RACING_RULES)
    if int(max_seeds) != max_seeds or max_seeds < 1:
        raise SweeperError(f"max_seeds must be a whole number >= 1, got {max_seeds!r}")
    n = np.isfinite(x).sum(axis=0)
    flag = np.zeros(x.shape[1], dtype=bool)
    if not (n > 0).any():
        return flag
    best = best_index(x)
    fit = _fit_vs_best(x, best)
    if rule == "mcb":
        if fit.df >= 1 and fit.k >= 2:
            crit = _st.t.ppf((1.0 - alpha) ** (1.0 / (fit.k - 1)), fit.df)
            with np.errstate(invalid="ignore"):
                resolved = fit.diff + crit * fit.se <= rope
        else:
            resolved = np.zeros(x.shape[1], dtype=bool)
    else:
        marker = _markers(n, best, fit.diff, _tukey_p(fit), rope, alpha)
        resolved = (marker != TIED) & (marker != SINGLE)
    open_ = (n > 0) & ~resolved
    open_[best] = False
    flag = open_ & (n < max_seeds)
    flag[best] = bool(open_.any()) and n[best] < max_seeds
    return flag


def next_candidates(
    values: Any,
    max_seeds: int,
    *,
    slots: int | None = None,
    rope: float = 0.01,
    alpha: float = 0.05,
    rule: str = "mcb",
) -> np.ndarray:
    """Column indices to run next: flagged by :func:`needs_more_seeds`, highest mean first.

    ``slots`` caps how many (free workers); None returns every flagged candidate (a "round").
    Filling a few slots and asking again is what saves runs: after screening nobody has a noise
    estimate, so a round would give every candidate a second seed, while the top few alone
    already give the pooled noise that resolves the rest.
    """
    x = as_values(values)
    flag = needs_more_seeds(x, max_seeds, rope=rope, alpha=alpha, rule=rule)
    idx = np.flatnonzero(flag)
    _, mean, _ = _column_stats(x)
    idx = idx[np.argsort(-mean[idx], kind="stable")]
    if slots is not None:
        if int(slots) != slots or slots < 1:
            raise SweeperError(f"slots must be a whole number >= 1, got {slots!r}")
        idx = idx[:slots]
    return idx
