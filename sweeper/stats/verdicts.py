"""Verdicts: the one decision rule of the table and of racing.

"A gap under 0.01 mIoU is noise", made formal. Every candidate's gap to the best (its mean minus
the best's mean, mIoU) gets an interval, and all the intervals hold together with probability at
least ``1 - alpha`` (simultaneous, so a table of 40 rows is not 40 chances to be wrong, and the
best being picked after seeing the data is accounted for). Then, against the region of practical
equivalence ``±rope``:

- ``best``: the highest mean;
- ``equivalent``: the interval lies inside ``[-rope, +rope]``;
- ``worse``: the interval lies below ``-rope``: worse than the best by more than the ROPE;
- ``undecided``: neither; :attr:`Verdicts.seeds_to_decide` says how many seeds each (and the
  best) would likely need.

The intervals are Tukey-Kramer's, one-way: ``gap ± q(1-alpha; k, df) / sqrt(2) * se``, with q the
studentized range quantile over the ``k`` candidates that have runs. Tukey's family covers every
pairwise difference, so it covers the comparisons with a best chosen from the data. The standard
error uses each side's variance floored at the pooled within-candidate one, ``se = sqrt(max(s2,
s2_i) / n_i + max(s2, s2_best) / n_best)`` ("max-var"), and ``df`` is the Welch-Satterthwaite
combination of the variances used (the pooled df for a pooled side, ``n - 1`` for a side's own):
a candidate much noisier than the rest widens its own intervals instead of borrowing the others'
precision (plain pooling marks a 3x noisier equal candidate worse in ~16% of studies; see
``benchmarks/stats_sim.py`` for what this rule holds). A candidate with one run has no variance
of its own and uses the pooled one: its verdict reads ``worse (1 run)``.

Seeds are not treated as blocks: when racing chose which candidates got more seeds, a seed-block
fit absorbs the selection into the screening seed's effect and is no longer calibrated. Shared
seed effects only make these intervals conservative.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from sweeper.errors import SweeperError
from sweeper.stats.arrays import as_values, check_fraction, check_rope, column_stats
from sweeper.stats.srange import studentized_range_isf, studentized_range_sf

BEST, EQUIVALENT, WORSE, UNDECIDED = "best", "equivalent", "worse", "undecided"
VERDICTS = (BEST, EQUIVALENT, WORSE, UNDECIDED)
PROCEDURE = "Tukey-Kramer simultaneous intervals vs the best, one-way, max-var"
#: A candidate whose sd is over this many times the pooled sd is called out in the table.
NOISY_RATIO = 2.0
#: Racing stops giving seeds to a candidate whose seeds_to_decide exceeds this many times the budget.
HOPELESS_FACTOR = 1.3
#: seeds_to_decide beyond this reads "more than" (infinity).
MAX_SEEDS_TO_DECIDE = 1000


class Verdicts(NamedTuple):
    """One entry per candidate (column); mIoU everywhere, gaps candidate minus best.

    ``verdict``: one of :data:`VERDICTS`, or ``""`` for a candidate without runs. ``gap``,
    ``gap_low``, ``gap_high``: the gap and its simultaneous interval (NaN for the best, and for
    everyone while no noise estimate exists). ``se``: the gap's standard error; ``p_tukey``: the
    Tukey-adjusted two-sided p-value of gap != 0 (for reference: verdicts read the interval).
    ``gap_df``: the gap's degrees of freedom (Welch-Satterthwaite over the two variances used).
    ``seeds_to_decide``: for undecided candidates, the seeds per candidate (this one and the best)
    that would likely decide it, at the current gap and noise and the critical value of a large
    df; ``inf`` beyond 1000 or when the gap sits on the ROPE's edge; NaN where decided or unknown
    (no noise estimate yet). ``noisy``: sd over twice the pooled.
    ``crit``: the interval half-width in standard errors at the pooled df; ``sigma``/``df``: pooled
    within-candidate sd (mIoU) and its degrees of freedom; ``k``: candidates with runs.
    """

    best: int
    verdict: np.ndarray
    gap: np.ndarray
    gap_low: np.ndarray
    gap_high: np.ndarray
    se: np.ndarray
    gap_df: np.ndarray
    p_tukey: np.ndarray
    seeds_to_decide: np.ndarray
    noisy: np.ndarray
    n: np.ndarray
    crit: float
    sigma: float
    df: int
    k: int
    rope: float
    alpha: float


def decide(values: Any, *, rope: float = 0.01, alpha: float = 0.05, p_values: bool = True) -> Verdicts:
    """The verdict of every candidate of ``values`` (runs x candidates); see the module docstring.

    ``p_values=False`` leaves ``p_tukey`` NaN: the table shows them, racing never reads them."""
    x = as_values(values)
    check_rope(rope)
    check_fraction("alpha", alpha)
    n, mean, sd = column_stats(x)
    if not (n > 0).any():
        raise SweeperError("no candidate has a finite run: nothing to compare")
    best = int(np.nanargmax(np.where(n > 0, mean, -np.inf)))
    k_all = x.shape[1]
    have = n > 0
    k = int(have.sum())
    multi = n >= 2
    df = int((n[multi] - 1).sum())
    s2 = float(((n[multi] - 1) * sd[multi] ** 2).sum() / df) if df > 0 else math.nan
    sigma = math.sqrt(s2) if df > 0 else math.nan

    # The gap on the seeds both ran (common random numbers): under racing, a candidate's few runs
    # are compared with the best's runs on the same seeds, not with the best's later, luckier or
    # unluckier ones. Without a shared seed, the difference of means.
    obs = np.isfinite(x)
    shared = obs & obs[:, [best]]
    m = shared.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        paired = np.where(shared, x - x[:, [best]], 0.0).sum(axis=0) / m
    gap = np.where(m > 0, paired, mean - mean[best])
    gap[~have] = np.nan
    gap[best] = 0.0
    n_side = np.where(m > 0, m, n).astype(float)  # runs behind the candidate's side of the gap
    n_best = np.where(m > 0, m, n[best]).astype(float)  # ... and behind the best's side
    own = multi & (sd**2 > s2)  # the side's own variance is the larger: it carries its own df
    var = np.where(own, sd**2, s2)
    var_df = np.where(own, n - 1, df).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        a, b = var / n_side, var[best] / n_best
        se = np.sqrt(a + b)
        # Welch-Satterthwaite: each variance with its own degrees of freedom.
        gap_df = (a + b) ** 2 / (a**2 / var_df + b**2 / var_df[best])
    # Two pooled sides share one estimate: its df, not twice it.
    gap_df = np.where(own | own[best], gap_df, df)
    gap_df[~np.isfinite(gap_df)] = df
    se[best] = np.nan
    se[~have] = np.nan
    crit_of = np.full(k_all, np.nan)
    if df > 0 and k >= 2:
        for i in np.flatnonzero(np.isfinite(se)):
            crit_of[i] = _crit(alpha, k, gap_df[i])
    crit = _crit(alpha, k, df) if df > 0 and k >= 2 else math.nan
    low, high = gap - crit_of * se, gap + crit_of * se
    low[best] = high[best] = np.nan

    verdict = np.full(k_all, UNDECIDED, dtype=object)
    verdict[~have] = ""
    with np.errstate(invalid="ignore"):
        verdict[have & (high < -rope)] = WORSE
        verdict[have & (low >= -rope) & (high <= rope)] = EQUIVALENT
    verdict[best] = BEST

    p = np.full(k_all, np.nan)
    if p_values and df > 0 and k >= 2:
        ok = np.flatnonzero(np.isfinite(se))
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(se[ok] > 0, math.sqrt(2.0) * np.abs(gap[ok]) / se[ok], np.where(gap[ok] != 0, np.inf, 0.0))
        rounded = np.floor(np.minimum(gap_df[ok], 1e6) * 10) / 10
        for d in np.unique(rounded):  # one vectorised call per distinct df
            at = rounded == d
            p[ok[at]] = studentized_range_sf(q[at], k, float(d))

    # Predicted with the critical value the comparison will have once runs accumulate (df -> a
    # large number): "the seeds that would likely decide it", neither hopeful nor alarmist.
    crit_ahead = np.where(np.isfinite(crit_of), _crit(alpha, k, 1e4), np.nan) if k >= 2 else crit_of
    need = _seeds_to_decide(gap, var, n_side, n_best, crit_ahead, rope, verdict)
    with np.errstate(invalid="ignore"):
        noisy = multi & (sd > NOISY_RATIO * sigma) if df > 0 else np.zeros(k_all, dtype=bool)
    return Verdicts(best=best, verdict=verdict, gap=gap, gap_low=low, gap_high=high, se=se, gap_df=gap_df, p_tukey=p,
                    seeds_to_decide=need, noisy=noisy, n=n, crit=float(crit), sigma=sigma, df=df, k=k,
                    rope=float(rope), alpha=float(alpha))


def _seeds_to_decide(gap, var, n_side, n_best, crit: np.ndarray, rope, verdict) -> np.ndarray:
    """Seeds per candidate m (for it and the best) with ``crit * se(m) < room``, where room is
    the distance from the gap to the nearer edge it must clear: ``-rope - gap`` for "worse",
    ``rope - |gap|`` for "equivalent". The noise and gap are taken as they are now."""
    out = np.full(gap.shape, np.nan)
    best = np.flatnonzero(verdict == BEST)
    if not best.size:
        return out
    best_var = var[int(best[0])]
    for i in np.flatnonzero((verdict == UNDECIDED) & np.isfinite(crit)):
        room = -rope - gap[i] if gap[i] < -rope else rope - abs(gap[i])
        # From m = max(current runs of the two sides) on, se(m)^2 = (var_i + var_best) / m.
        total = var[i] + best_var
        if room <= 0 or not math.isfinite(total):
            out[i] = math.inf
            continue
        m = max(int(max(n_side[i], n_best[i])), math.floor(total * (crit[i] / room) ** 2) + 1)
        out[i] = m if m <= MAX_SEEDS_TO_DECIDE else math.inf
    return out


def _crit(alpha: float, k: int, df: float) -> float:
    """Half-width of a Tukey interval in standard errors (cached).

    df is rounded down (a slightly wider interval, never a narrower one): to a tenth up to 100,
    to three significant digits above. Racing's pooled df grows by one with every run, and at
    thousands of runs each new value would cost a root-finding of its own for a change in the
    fifth digit (from 1,000 to 1,009 degrees of freedom the 5% critical value of 100 means moves
    by 3e-5 of itself)."""
    return studentized_range_isf(alpha, k, _df_grid(df)) / math.sqrt(2.0)


def _df_grid(df: float) -> float:
    df = min(df, 1e6)
    if df < 100:
        return math.floor(df * 10) / 10
    step = 10.0 ** (math.floor(math.log10(df)) - 2)
    return math.floor(df / step) * step


# --------------------------------------------------------------------------- racing


def needs_more_seeds(values: Any, max_seeds: int, *, rope: float = 0.01, alpha: float = 0.05) -> np.ndarray:
    """Which candidates racing should give another seed: a boolean array, one per candidate.

    The same rule as the table: a candidate gets seeds while its verdict is ``undecided``, it has
    fewer than ``max_seeds`` runs, and it is not hopeless (a candidate with two or more runs whose
    :attr:`Verdicts.seeds_to_decide` exceeds 1.3 times the budget stops); the
    best gets seeds while anyone is flagged (its noise is half of every comparison). Candidates
    without runs are never flagged (screening and retries are the caller's job). When nothing is
    flagged, the undecided rows are those the seed budget could not resolve, and their
    ``seeds_to_decide`` says what would.
    """
    if int(max_seeds) != max_seeds or max_seeds < 1:
        raise SweeperError(f"max_seeds must be a whole number >= 1, got {max_seeds!r}")
    v = decide(values, rope=rope, alpha=alpha, p_values=False)
    # A candidate with runs of its own that 1.3 times the budget would still not
    # decide (at its present gap and noise) gets no more: its seeds would be spent on an
    # "undecided" anyway. The margin absorbs the noise of that forecast; with one run the gap is
    # too rough a guide, so it keeps its chance. (benchmarks/stats_sim.py measures the trade.)
    hopeless = (v.seeds_to_decide > HOPELESS_FACTOR * max_seeds) & (v.n >= 2)
    open_ = (v.verdict == UNDECIDED) & ~hopeless
    flag = open_ & (v.n < max_seeds)
    flag[v.best] = bool(open_.any()) and v.n[v.best] < max_seeds
    return flag


def next_candidates(values: Any, max_seeds: int, *, slots: int | None = None, rope: float = 0.01,
                    alpha: float = 0.05) -> np.ndarray:
    """Column indices to run next: flagged by :func:`needs_more_seeds`, highest mean first.

    ``slots`` caps how many (free workers); None returns every flagged candidate (a "round").
    Filling a few slots and asking again is what saves runs: after screening nobody has a noise
    estimate, so a round would give every candidate a second seed, while the top few alone
    already give the pooled noise that decides the rest.
    """
    x = as_values(values)
    idx = np.flatnonzero(needs_more_seeds(x, max_seeds, rope=rope, alpha=alpha))
    _, mean, _ = column_stats(x)
    idx = idx[np.argsort(-mean[idx], kind="stable")]
    if slots is not None:
        if int(slots) != slots or slots < 1:
            raise SweeperError(f"slots must be a whole number >= 1, got {slots!r}")
        idx = idx[:slots]
    return idx
