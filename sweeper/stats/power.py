"""Noise and power: the run-to-run sd, the smallest gap a number of seeds detects, and the seeds a
gap needs. Two candidates, paired by seed, two-sided at ``alpha``: the design the README's
"with N seeds a gap of X is detected with 80% power" line speaks of."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as _st

from sweeper.errors import SweeperError
from sweeper.stats.arrays import as_values, check_fraction, column_stats


def pooled_sd(x: np.ndarray) -> tuple[float, int, int]:
    n, _, sd = column_stats(x)
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
    return pooled_sd(as_values(values))[0]


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
    check_fraction("alpha", alpha)
    check_fraction("power", power)
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
