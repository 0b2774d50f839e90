"""Ablation: k changes, each against one fixed baseline, paired by seed (``sweeper ablate``).

``values`` is (seeds x arms) as in :mod:`sweeper.stats.arrays`, column 0 the baseline chosen in
advance, columns 1..k one change each (loss=dice, lr=1e-3, ...). Every arm runs the same seeds
(common random numbers) and the baseline runs every seed any arm runs, so arm ``j``'s effect is
the mean of the paired differences ``d_j = arm_j - baseline`` over the seeds they share (mIoU,
positive = the change helps). A seed's luck shared by all arms cancels in every ``d_j``.

Intervals are Dunnett's many-to-one, two-sided: ``effect ± c * se`` with ``c`` solving
``P(max_j |T_j| <= c) = 1 - alpha`` for ``T`` multivariate t over the ``k`` arms with runs, so
all k intervals hold together with probability at least ``1 - alpha`` (k changes are not k
chances to be wrong). Against the ROPE, symmetric with ``tune``'s verdicts
(:mod:`sweeper.stats.verdicts`):

- ``better``: the interval lies above ``+rope``: the change helps by more than the ROPE;
- ``worse``: the interval lies below ``-rope``;
- ``equivalent``: the interval lies inside ``[-rope, +rope]``: the change does not matter;
- ``undecided``: neither; :attr:`ArmEffect.seeds_to_decide` says how many seeds would likely do.

Noise ("max-var", as tune's): a paired difference has the arm's and the baseline's run-to-run
variance, ``var(d_j) = sigma_j^2 + sigma_0^2`` (a seed's shared luck cancels). The pool
``sigma^2`` is the residual variance of the two-way fit ``value = seed + arm`` over every paired
run (df = runs - seeds - arms + 1). Each side's own variance is estimated from the same fit's
residuals, seed effects removed (an unbiased quadratic estimate, Shukla's stability variance;
Satterthwaite's df), and floored at the pool: ``se_j^2 = (max(sigma^2, s_j^2) +
max(sigma^2, s_0^2)) / m_j`` over the ``m_j`` seeds arm j shares with the baseline, with the
Welch-Satterthwaite df of the two sides (the pool's df where both use the pool). So a lucky quiet
arm does not get a tiny interval, an arm noisier than the rest widens its own interval, and a
noisy baseline widens all of them. The split needs three arms of two or more seeds (the
baseline and two changes); with fewer, both sides use the pool, and with one change arm
(``k = 1``) this is exactly the paired t interval. Floored per difference instead (an arm's own
paired variance with its ``m_j - 1`` df against the pool of differences), a baseline three times
noisier than the arms was wrongly marked in 9-15% of null studies at 3 seeds: its lucky-quiet
seeds drag every arm below the pool together; see ``benchmarks/stats_sim.py``.

Correlation: the ``T_j`` share the baseline's error, so ``corr(d_j, d_l) = 0.5`` when the arms'
noise is equal -- and equal noise is what the floor assumes of every arm that uses the pool.
The critical value uses 0.5 rather than an estimate: from 3-10 seeds a correlation's standard
error is 0.25-0.55, far larger than the bias it would remove, and by Sidak's inequality a baseline
noisier than the arms (true correlation above 0.5) only makes 0.5 conservative. An arm much
noisier than the rest, or with fewer seeds, correlates less with the others, which makes 0.5
slightly liberal for it; ``benchmarks/stats_sim.py`` measures the family-wise error in that case.
``c`` is computed at each arm's df (rounded down to a tenth), by quadrature of the exact
equicorrelated integral (no Monte Carlo, unlike ``scipy.stats.multivariate_t``), and cached.

An arm with one shared seed has no variance of its own: it is judged with the pooled noise when
other arms give one (``single_seed``; as tune's ``(1 run)``), else it stays undecided.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from scipy import special
from scipy import stats as _st

from sweeper.errors import SweeperError
from sweeper.stats.arrays import as_values, check_fraction, check_rope
from sweeper.stats.srange import _chi_nodes
from sweeper.stats.verdicts import (
    EQUIVALENT,
    HOPELESS_FACTOR,
    MAX_SEEDS_TO_DECIDE,
    NOISY_RATIO,
    UNDECIDED,
    WORSE,
)

BETTER = "better"
ARM_VERDICTS = (BETTER, EQUIVALENT, WORSE, UNDECIDED)
ABLATION_PROCEDURE = "Dunnett many-to-one simultaneous intervals vs the baseline, paired by seed, max-var"
#: The correlation of two arms' paired differences when their noise is equal (they share the baseline's).
RHO = 0.5

# Gauss-Legendre nodes for the shared (baseline) normal of the equicorrelated integral, and the
# grid of the known-sigma tail it is tabulated on (as :mod:`sweeper.stats.srange` does).
_Z_NODES, _Z_WEIGHTS = np.polynomial.legendre.leggauss(96)
_Z_NODES, _Z_WEIGHTS = _Z_NODES * 8.5, _Z_WEIGHTS * 8.5 * np.exp(-0.5 * (_Z_NODES * 8.5) ** 2) / math.sqrt(2 * math.pi)
_W_GRID = np.linspace(0.0, 40.0, 4001)


def _df_key(df: float) -> float:
    """df rounded down to a tenth (a cache key; rounding down is conservative), at least 0.5."""
    return max(math.floor(min(float(df), 1e6) * 10) / 10, 0.5)


@lru_cache(maxsize=64)
def _log_max_modulus_sf(k: int, rho: float) -> np.ndarray:
    """log P(max_j |Z_j| > w) on ``_W_GRID`` for k standard normals equicorrelated ``rho``:
    ``Z_j = sqrt(rho) Z_0 + sqrt(1 - rho) E_j``, a Gauss-Legendre sum over ``Z_0``."""
    a, b = math.sqrt(rho), math.sqrt(1.0 - rho)
    z = a * _Z_NODES
    out = np.empty(_W_GRID.size)
    step = 512
    for start in range(0, _W_GRID.size, step):
        w = _W_GRID[start : start + step, None]
        # 1 - P(|Z_j| <= w | Z_0) for one arm, as the sum of its two small tails.
        u = np.minimum(special.ndtr(-(w + z) / b) + special.ndtr((z - w) / b), 1.0)
        with np.errstate(divide="ignore"):
            tail = -np.expm1(k * np.log1p(-u))  # 1 - (1 - u)^k without cancellation
        out[start : start + step] = tail @ _Z_WEIGHTS
    return np.log(np.clip(out, 1e-320, 1.0))


def many_to_one_sf(t: Any, k: int, df: float, rho: float = RHO) -> np.ndarray:
    """P(max_j |T_j| > |t|) for ``T`` multivariate t over ``k`` arms, equicorrelated ``rho`` >= 0,
    ``df`` degrees of freedom (``inf`` for a known sigma): Dunnett's two-sided adjusted p-value.

    ``k = 1`` is the two-sided t-test. Otherwise ``T_j = (sqrt(rho) Z_0 + sqrt(1 - rho) E_j) / s``
    with ``s^2 ~ chi2(df) / df``: the known-sigma tail is tabulated once per (k, rho) and averaged
    over the chi quadrature of :mod:`sweeper.stats.srange`, vectorised over ``t`` (agrees with
    ``scipy.stats.multivariate_t`` to its Monte Carlo error, ~1e-4, in microseconds).
    """
    t = np.asarray(t, dtype=float)
    flat = np.abs(t.ravel())
    if k < 1:
        raise ValueError("a many-to-one comparison needs k >= 1 arms")
    if not 0.0 <= rho < 1.0:
        raise ValueError(f"rho must be in [0, 1), got {rho!r}")
    if k == 1:
        return (2.0 * _st.t.sf(flat, df)).reshape(t.shape)
    s, ws = (np.ones(1), np.ones(1)) if math.isinf(df) else _chi_nodes(float(df))
    log_sf = _log_max_modulus_sf(int(k), float(rho))
    w = np.minimum(flat[:, None] * s[None, :], _W_GRID[-1])
    out = np.exp(np.interp(w, _W_GRID, log_sf)) @ ws
    return np.clip(out, 0.0, 1.0).reshape(t.shape)


@lru_cache(maxsize=1024)
def many_to_one_isf(alpha: float, k: int, df: float, rho: float = RHO) -> float:
    """Dunnett's two-sided critical value: the ``c`` with P(max_j |T_j| > c) = ``alpha`` (cached)."""
    from scipy.optimize import brentq

    if k == 1:
        return float(_st.t.isf(alpha / 2.0, df))
    # Between the one-at-a-time and the Bonferroni critical values.
    lo, hi = float(_st.t.isf(alpha / 2.0, df)), float(_st.t.isf(alpha / (2.0 * k), df))
    return float(brentq(lambda c: float(many_to_one_sf(c, k, df, rho)) - alpha, lo, hi * 1.001, xtol=1e-10))


def _crit(alpha: float, k: int, df: float) -> float:
    return many_to_one_isf(float(alpha), int(k), _df_key(df))


class ArmEffect(NamedTuple):
    """One change arm against the baseline; mIoU everywhere, differences arm minus baseline.

    ``index``: the arm's column in ``values``. ``n``: seeds it shares with the baseline.
    ``effect``: mean paired difference over them (NaN without a shared seed); ``sd``: sd of the
    paired differences (NaN below 2); ``arm_sd``: the arm's own run-to-run sd with seed effects
    removed (NaN where not estimable; it can read 0 when the estimate falls below zero).
    ``low``/``high``: the simultaneous interval (NaN while no noise estimate exists); ``se``: the
    effect's standard error from the variances in use; ``df``: its degrees of freedom (the
    pool's, or Welch-Satterthwaite's when a side uses its own variance); ``crit``: the interval's
    half-width in standard errors. ``own_noise``: the arm's own variance exceeded the pool and
    was used. ``p_adjusted``: Dunnett-adjusted two-sided p-value of "effect = 0" (for reference:
    verdicts read the interval). ``verdict``: one of :data:`ARM_VERDICTS`, ``""`` without a
    shared seed. ``seeds_to_decide``: for undecided arms, the seeds (for it and the baseline)
    that would likely decide it at the current effect and noise and a large df's critical value;
    ``inf`` beyond 1000 or on the ROPE's edge; NaN where decided or unknown. ``noisy``: arm_sd
    over twice the pooled sd.
    """

    index: int
    n: int
    effect: float
    sd: float
    arm_sd: float
    low: float
    high: float
    se: float
    df: float
    crit: float
    own_noise: bool
    p_adjusted: float
    verdict: str
    seeds_to_decide: float
    noisy: bool

    @property
    def single_seed(self) -> bool:
        return self.n == 1


class AblationResult(NamedTuple):
    """Every change arm against the baseline (:class:`ArmEffect`, in column order 1..k).

    ``baseline_n``: the baseline's finite runs; ``baseline_sd``, ``baseline_own_noise``,
    ``baseline_noisy``: its own run-to-run sd and whether it was used (above the pool) or is over
    twice the pool's, as for an arm; a noisy baseline widens every interval. ``k``: arms in the
    family (those sharing a seed with the baseline). ``sigma``: pooled run-to-run sd of one run
    (mIoU, two-way fit, seed effects removed), ``noise_df`` its degrees of freedom (0: no pooled
    noise yet); a difference's pooled sd is ``sqrt(2) * sigma``. ``crit``: the interval
    half-width in standard errors at the pooled df. ``rho``: the correlation the critical values
    assume.
    """

    arms: tuple[ArmEffect, ...]
    baseline_n: int
    baseline_sd: float
    baseline_own_noise: bool
    baseline_noisy: bool
    k: int
    sigma: float
    noise_df: int
    crit: float
    rho: float
    rope: float
    alpha: float
    procedure: str = ABLATION_PROCEDURE

    def count(self, verdict: str) -> int:
        return sum(a.verdict == verdict for a in self.arms)

    @property
    def verdicts(self) -> np.ndarray:
        return np.array([a.verdict for a in self.arms], dtype=object)


class _Noise(NamedTuple):
    s2: float  # pooled run-to-run variance of one run (mIoU^2); NaN when df is 0
    df: int
    side: np.ndarray  # per column: the column's own run-to-run variance, seed effects removed (NaN: none)
    side_df: np.ndarray


def _noise(x: np.ndarray, use: np.ndarray) -> _Noise:
    """The pool and each column's own variance, from the two-way fit ``value = seed + arm``
    over the cells ``use``.

    The pool is the residual variance (df = cells - seeds - arms + 1: the baseline is in every
    row used, so the design is connected). A column's own variance is the unbiased quadratic
    estimate from the residuals under independent per-arm noise (MINQUE; Shukla's stability
    variance on a complete table): ``E[r_c^2] = sum_l M_cl^2 sigma^2_arm(l)`` with ``M`` the
    residual projector, solved for the sigmas from each column's residual sum of squares. Its df
    is Satterthwaite's for that quadratic form, with the variances in use plugged in. It needs
    three columns of two or more seeds (with two, the split of a difference's noise between its
    sides is not identifiable); otherwise, and for a column of one seed, it is NaN.
    """
    k_all = x.shape[1]
    side, side_df = np.full(k_all, np.nan), np.full(k_all, np.nan)
    rows = np.flatnonzero(use.sum(axis=1) >= 2)
    sub = use[rows]
    cols = np.flatnonzero(sub.any(axis=0))
    sub = sub[:, cols]
    r_idx, c_idx = np.nonzero(sub)
    n_cells, n_rows, n_cols = r_idx.size, rows.size, cols.size
    df = n_cells - n_rows - n_cols + 1
    if df <= 0:
        return _Noise(math.nan, 0, side, side_df)
    y = x[rows][:, cols][r_idx, c_idx]
    design = np.zeros((n_cells, n_rows + n_cols - 1))
    design[np.arange(n_cells), r_idx] = 1.0
    arm = c_idx > 0  # column 0 of cols is the baseline: the reference level
    design[np.flatnonzero(arm), n_rows + c_idx[arm] - 1] = 1.0
    resid_proj = np.eye(n_cells) - design @ np.linalg.pinv(design)
    resid = resid_proj @ y
    s2 = float(resid @ resid) / df
    groups = np.zeros((n_cells, n_cols))
    groups[np.arange(n_cells), c_idx] = 1.0
    own = np.flatnonzero(groups.sum(axis=0) >= 2)  # a column of one cell fits exactly: no residual
    if own.size < 3 or not s2 > 0:
        return _Noise(s2, int(df), side, side_df)
    g = groups[:, own]
    coef = g.T @ (resid_proj * resid_proj) @ g
    try:
        inv = np.linalg.inv(coef)
    except np.linalg.LinAlgError:
        return _Noise(s2, int(df), side, side_df)
    est = inv @ (g.T @ (resid * resid))
    plug = np.full(n_cols, s2)
    plug[own] = np.maximum(est, s2)
    cov = resid_proj @ (plug[c_idx][:, None] * resid_proj)  # covariance of the residuals
    weights = g @ inv.T  # cell weights of each column's estimate
    mean = weights.T @ np.diag(cov)
    var = 2.0 * np.einsum("ci,cl,li->i", weights, cov * cov, weights)
    side[cols[own]] = est
    with np.errstate(invalid="ignore", divide="ignore"):
        side_df[cols[own]] = np.where(var > 0, 2.0 * mean * mean / var, math.nan)
    return _Noise(s2, int(df), side, side_df)


def compare_to_baseline(values: Any, *, rope: float = 0.01, alpha: float = 0.05) -> AblationResult:
    """Each change arm (columns 1..) of ``values`` against the baseline (column 0); see the
    module docstring. Only seeds an arm shares with the baseline count for that arm."""
    x = as_values(values)
    check_rope(rope)
    check_fraction("alpha", alpha)
    if x.shape[1] < 2:
        raise SweeperError(f"an ablation needs the baseline and at least one change arm (columns), got {x.shape[1]}")
    obs = np.isfinite(x)
    if not obs[:, 0].any():
        raise SweeperError("the baseline (column 0) has no finite run: nothing to compare against")
    shared = obs & obs[:, [0]]
    m = shared[:, 1:].sum(axis=0)
    d = np.where(shared[:, 1:], x[:, 1:] - x[:, [0]], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        effect = d.sum(axis=0) / m
        dev = np.where(shared[:, 1:], d - effect, 0.0)
        sd = np.sqrt((dev * dev).sum(axis=0) / (m - 1))
    effect[m == 0] = np.nan
    sd[m < 2] = np.nan
    have = m > 0
    k = int(have.sum())

    # The pool: every arm's shared cells, and the baseline's on the seeds some arm shares.
    use = shared.copy()
    use[:, 0] = obs[:, 0] & shared[:, 1:].any(axis=1)
    noise = _noise(x, use)
    s2, noise_df = noise.s2, noise.df
    own = np.isfinite(noise.side) & (noise.side > s2)
    side = np.where(own, noise.side, s2)
    side_df = np.where(own, noise.side_df, noise_df)
    a, b = side[1:], side[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        var = a + b  # of one paired difference
        se = np.sqrt(var / m)
        # Welch-Satterthwaite over the two sides; two pooled sides share one estimate: its df.
        ws = var**2 / (a**2 / side_df[1:] + b**2 / side_df[0])
    arm_df = np.where(own[1:] | own[0], ws, noise_df)
    known = have & (noise_df > 0) & np.isfinite(se) & np.isfinite(arm_df)

    crit_of = np.full(m.size, np.nan)
    p = np.full(m.size, np.nan)
    keys = np.array([_df_key(v) if ok else np.nan for v, ok in zip(arm_df, known)])
    for key in np.unique(keys[known]):
        at = known & (keys == key)
        crit_of[at] = many_to_one_isf(float(alpha), k, float(key))
        with np.errstate(divide="ignore", invalid="ignore"):
            tstat = np.where(se[at] > 0, np.abs(effect[at]) / se[at], np.where(effect[at] != 0, np.inf, 0.0))
        p[at] = many_to_one_sf(tstat, k, float(key))
    low, high = effect - crit_of * se, effect + crit_of * se

    verdict = np.full(m.size, UNDECIDED, dtype=object)
    verdict[~have] = ""
    with np.errstate(invalid="ignore"):
        verdict[known & (low > rope)] = BETTER
        verdict[known & (high < -rope)] = WORSE
        verdict[known & (low >= -rope) & (high <= rope)] = EQUIVALENT

    # Predicted with the critical value of a large df, as tune's: "the seeds that would likely
    # decide it", neither hopeful nor alarmist; at least one more than now (it is undecided now).
    crit_ahead = _crit(alpha, k, 1e4) if k else math.nan
    need = np.full(m.size, np.nan)
    for j in np.flatnonzero((verdict == UNDECIDED) & known):
        room = abs(effect[j]) - rope if abs(effect[j]) > rope else rope - abs(effect[j])
        if room <= 0:
            need[j] = math.inf
            continue
        seeds = max(int(m[j]) + 1, math.floor(var[j] * (crit_ahead / room) ** 2) + 1)
        need[j] = seeds if seeds <= MAX_SEEDS_TO_DECIDE else math.inf
    sigma = math.sqrt(s2) if noise_df > 0 else math.nan
    with np.errstate(invalid="ignore"):
        side_sd = np.sqrt(np.where(noise.side >= 0, noise.side, 0.0))
        noisy = np.isfinite(noise.side) & (side_sd > NOISY_RATIO * sigma)
    side_sd[~np.isfinite(noise.side)] = np.nan

    arms = tuple(
        ArmEffect(index=j + 1, n=int(m[j]), effect=float(effect[j]), sd=float(sd[j]), arm_sd=float(side_sd[j + 1]),
                  low=float(low[j]), high=float(high[j]), se=float(se[j]) if known[j] else math.nan,
                  df=float(arm_df[j]) if known[j] else math.nan, crit=float(crit_of[j]),
                  own_noise=bool(known[j] and own[j + 1]), p_adjusted=float(p[j]), verdict=str(verdict[j]),
                  seeds_to_decide=float(need[j]), noisy=bool(noisy[j + 1]))
        for j in range(m.size)
    )
    return AblationResult(arms=arms, baseline_n=int(obs[:, 0].sum()), baseline_sd=float(side_sd[0]),
                          baseline_own_noise=bool(own[0]), baseline_noisy=bool(noisy[0]), k=k, sigma=sigma,
                          noise_df=noise_df, crit=_crit(alpha, k, noise_df) if noise_df > 0 and k else math.nan,
                          rho=RHO, rope=float(rope), alpha=float(alpha))


def next_arms(values: Any, max_seeds: int, *, rope: float = 0.01, alpha: float = 0.05) -> np.ndarray:
    """Column indices (1..k) of the arms that should get another seed, first the most urgent.

    An arm gets seeds while its verdict is ``undecided``, it has fewer than ``max_seeds`` shared
    seeds, and it is not hopeless (with two or more seeds, a :attr:`ArmEffect.seeds_to_decide`
    over 1.3 times the budget, as tune's racing). Order: fewest seeds first (arms stay balanced,
    so one new baseline run serves them all and the correlation stays the assumed 0.5), then the
    closest to a decision (smallest ``seeds_to_decide``), then column order. The baseline is the
    caller's: it must run each seed before (or with) the arms that use it. Arms without a run are
    never listed (the first seeds are the plan's job).
    """
    if int(max_seeds) != max_seeds or max_seeds < 1:
        raise SweeperError(f"max_seeds must be a whole number >= 1, got {max_seeds!r}")
    res = compare_to_baseline(values, rope=rope, alpha=alpha)
    pick = [a for a in res.arms
            if a.verdict == UNDECIDED and a.n < max_seeds
            and not (a.n >= 2 and a.seeds_to_decide > HOPELESS_FACTOR * max_seeds)]
    pick.sort(key=lambda a: (a.n, a.seeds_to_decide if not math.isnan(a.seeds_to_decide) else -1.0, a.index))
    return np.array([a.index for a in pick], dtype=int)
