"""The studentized range distribution: its survival function and quantile, fast and vectorised.

Tukey's procedure needs P(Q > q) for the range of ``k`` means over ``df`` degrees of freedom;
scipy integrates it adaptively (~6 ms a value), too slow for a thousand candidates or a
simulation of thousands of studies. Tests check both functions against scipy.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import special
from scipy import stats as _st

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



@lru_cache(maxsize=1024)
def studentized_range_isf(alpha: float, k: int, df: float) -> float:
    """The ``q`` with P(Q > q) = ``alpha``: the critical value of Tukey's procedure at level alpha."""
    from scipy.optimize import brentq

    if k == 2:
        return math.sqrt(2.0) * float(_st.t.isf(alpha / 2.0, df))
    hi = 8.0
    while float(studentized_range_sf(hi, k, df)) > alpha:
        hi *= 2.0
    return float(brentq(lambda q: float(studentized_range_sf(q, k, df)) - alpha, 0.0, hi, xtol=1e-10))
