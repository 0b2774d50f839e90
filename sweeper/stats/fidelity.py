"""Fidelity of cheap rungs: does a short run order candidates the way the full budget does?

Convention: ``full`` is a (seeds x candidates) array of full-budget validation mIoU and each
cheap rung's array has the same shape, with the same seed in each row and the same candidate in
each column (NaN: a failed or missing run). Columns are in the screening order, which breaks
ties when a rung promotes.

Two figures per cheap rung:

- **Kendall's tau** (tau-b) between the rung's and the full budget's mIoU over the candidates,
  computed within each seed and averaged over the seeds; 1 means the rung orders candidates
  exactly as the full budget does, 0 no better than chance, -1 reversed. Its interval is a
  percentile bootstrap over candidates (the candidates are the sample; seeds stay paired).
- **Survival of the full-budget best**: the candidate with the best mean full-budget mIoU is
  followed up the rungs as a screen promotes (:func:`sweeper.sweep.rungs.promote`, the best
  ``keep`` of a rung by its mIoU with one seed); survival at a rung is whether it is still
  there after that rung's promotion, i.e. would have reached the next rung. The bootstrap
  figure is the share of resamples (over candidates, and over seeds within a resample) in which
  the resample's own full-budget best survives; the sample's figure is the share of its seeds.

Statistics only: numpy and scipy, nothing of Optuna or torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from sweeper.errors import SweeperError

#: Bootstrap resamples by default: the percentile ends of tau move by about 0.01 between seeds.
N_BOOT = 2000


class RungFidelity(NamedTuple):
    """One cheap rung against the full budget."""

    epochs: int  # the rung's budget in epochs
    tau: float  # mean over seeds of Kendall's tau-b, rung vs full-budget mIoU across candidates
    tau_low: float  # percentile bootstrap interval of ``tau`` (resampled candidates)
    tau_high: float
    survival: float  # share of bootstrap resamples whose full-budget best survives up to this rung
    survived: float  # share of the sample's seeds in which its full-budget best survived (0 or 1 with one seed)
    promoted: int  # how many of the candidates this rung passes on


class Fidelity(NamedTuple):
    """Every cheap rung of a fidelity study, cheapest first."""

    full_epochs: int
    keep: float
    candidates: int  # columns
    seeds: int  # rows
    best: int  # column of the full-budget best (best mean over seeds)
    confidence: float
    n_boot: int
    rungs: tuple[RungFidelity, ...]


def kendall_tau(cheap: np.ndarray, full: np.ndarray) -> float:
    """Kendall's tau-b between two (seeds x candidates) arrays, within each seed over the
    candidates with a value in both, averaged over the seeds where it is defined (NaN if none:
    fewer than two candidates, or one side constant)."""
    from scipy import stats

    cheap, full = np.atleast_2d(np.asarray(cheap, float)), np.atleast_2d(np.asarray(full, float))
    taus = []
    for a, b in zip(cheap, full):
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 2 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
            continue
        tau = stats.kendalltau(a[ok], b[ok]).statistic
        if math.isfinite(tau):
            taus.append(tau)
    return float(np.mean(taus)) if taus else math.nan


def full_best(full: np.ndarray) -> int:
    """The column with the best mean full-budget mIoU over its seeds (the first on a tie)."""
    full = np.atleast_2d(np.asarray(full, float))
    ok = np.isfinite(full)
    counts = ok.sum(axis=0)
    if not counts.any():
        raise SweeperError("no candidate has a full-budget run")
    means = np.where(counts > 0, np.where(ok, full, 0.0).sum(axis=0) / np.maximum(counts, 1), -np.inf)
    return int(np.argmax(means))


def survives(levels: Sequence[Sequence[float]], best: int, keep: float, *, same: Sequence[int] | None = None
             ) -> list[bool]:
    """Whether column ``best`` is still promoted after each rung, as a screen climbs them.

    ``levels`` holds one row of mIoU per cheap rung (one seed), over the columns; every column
    starts at the first rung, and each rung passes on the best ``keep`` of the columns still
    there. ``same`` maps columns to candidates when a candidate appears in several columns (a
    bootstrap resample): the best survives while any of its copies does.
    """
    from sweeper.sweep.rungs import promote

    same = list(range(len(levels[0]))) if same is None else list(same)
    target = same[best]
    alive = list(range(len(same)))
    out = []
    for row in levels:
        alive = promote(alive, {c: float(row[c]) for c in alive}, keep)
        out.append(any(same[c] == target for c in alive))
    return out


def _survival(cheap: np.ndarray, full: np.ndarray, keep: float, same: Sequence[int] | None = None) -> np.ndarray:
    """Per rung, the share of seeds in which the full-budget best survives: (rungs,) array."""
    best = full_best(full)
    per_seed = [survives(cheap[:, s, :], best, keep, same=same) for s in range(cheap.shape[1])]
    return np.mean(np.array(per_seed, dtype=float), axis=0)


def check_fidelity_arrays(cheap, full) -> tuple[np.ndarray, np.ndarray]:
    """``(cheap, full)`` as a (rungs, seeds, candidates) and a (seeds, candidates) float array."""
    full = np.asarray(full, float)
    cheap = np.asarray(cheap, float)
    if full.ndim != 2:
        raise SweeperError(f"full must be a (seeds, candidates) array, got shape {full.shape}")
    if cheap.ndim == 2:
        cheap = cheap[None]
    if cheap.ndim != 3 or cheap.shape[1:] != full.shape:
        raise SweeperError(f"each cheap rung must be a (seeds, candidates) array like full {full.shape}, "
                           f"got {cheap.shape}")
    if full.shape[1] < 2:
        raise SweeperError(f"fidelity needs at least 2 candidates, got {full.shape[1]}")
    return cheap, full


def rung_fidelity(cheap, full, *, epochs: Sequence[int], full_epochs: int, keep: float, n_boot: int = N_BOOT,
                  confidence: float = 0.95, seed: int = 0) -> Fidelity:
    """Tau with its bootstrap interval and the survival of the best, for every cheap rung.

    ``cheap``: (rungs, seeds, candidates), the rungs in the order a screen climbs them, with
    ``epochs`` their budgets; ``full``: (seeds, candidates). The bootstrap draws ``n_boot``
    resamples of the candidates (with replacement, seeded by ``seed``); resamples in which tau
    is undefined (every draw the same candidate) are left out of its interval.
    """
    cheap, full = check_fidelity_arrays(cheap, full)
    if len(epochs) != cheap.shape[0]:
        raise SweeperError(f"{len(epochs)} rung budgets for {cheap.shape[0]} cheap rungs")
    if not 0 < keep < 1:
        raise SweeperError(f"keep must be strictly between 0 and 1, got {keep}")
    if n_boot < 1:
        raise SweeperError(f"n_boot must be >= 1, got {n_boot}")
    from sweeper.sweep.rungs import promoted_count

    k = full.shape[1]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(n_boot, k))
    taus = np.full((n_boot, cheap.shape[0]), np.nan)
    kept = np.zeros((n_boot, cheap.shape[0]))
    for b, idx in enumerate(draws):
        for r in range(cheap.shape[0]):
            taus[b, r] = kendall_tau(cheap[r][:, idx], full[:, idx])
        kept[b] = _survival(cheap[:, :, idx], full[:, idx], keep, same=idx)
    actual = _survival(cheap, full, keep)
    tail = 100 * (1 - confidence) / 2
    sizes = [k]
    rows = []
    for r, e in enumerate(epochs):
        sizes.append(promoted_count(sizes[-1], keep))
        finite = taus[:, r][np.isfinite(taus[:, r])]
        low, high = (np.percentile(finite, [tail, 100 - tail]) if finite.size else (math.nan, math.nan))
        rows.append(RungFidelity(int(e), kendall_tau(cheap[r], full), float(low), float(high),
                                 float(kept[:, r].mean()), float(actual[r]), sizes[-1]))
    return Fidelity(int(full_epochs), float(keep), k, full.shape[0], full_best(full), confidence, n_boot,
                    tuple(rows))
