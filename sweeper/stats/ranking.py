"""The ranked table: every candidate's summary, verdict and reference comparisons, best first."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from sweeper.errors import SweeperError
from sweeper.stats.arrays import Label, as_values
from sweeper.stats.compare import compare_to_best
from sweeper.stats.power import min_detectable_effect, pooled_sd, seeds_needed
from sweeper.stats.summary import interval_method, summarize
from sweeper.stats.verdicts import NOISY_RATIO, PROCEDURE, decide


class Row(NamedTuple):
    """One candidate of a :class:`Ranking`; mIoU fields in [0, 1], differences candidate - best.

    ``rank`` starts at 1 (the best); ``index`` is the candidate's column in ``values`` and ``runs``
    its value per seed row (NaN = missing). ``n``, ``mean``, ``sd``, ``median``, ``ci_low``,
    ``ci_high``: see :class:`~sweeper.stats.summary.Summary`. ``gap``, ``gap_low``, ``gap_high``,
    ``verdict``, ``seeds_to_decide``, ``p_tukey``, ``noisy``: see
    :class:`~sweeper.stats.verdicts.Verdicts` (the gap is over the seeds shared with the best).
    ``diff``, ``diff_ci_low``, ``diff_ci_high``, ``test``, ``p_paired_t``, ``p_holm``,
    ``p_wilcoxon``, ``p_improvement``: one-at-a-time reference figures, see
    :class:`~sweeper.stats.compare.Comparison`.
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
    gap: float
    gap_low: float
    gap_high: float
    verdict: str
    seeds_to_decide: float
    p_tukey: float
    noisy: bool
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    test: str
    p_paired_t: float
    p_holm: float
    p_wilcoxon: float
    p_improvement: float
    runs: tuple[float, ...]

    @property
    def single_run(self) -> bool:
        return self.n == 1


class Stopped(NamedTuple):
    """A candidate a screen by rungs stopped before the full budget: its mean mIoU over ``n`` runs
    of ``epochs`` epochs (of ``full_epochs``), and its ``rank`` of ``of`` at that rung. Never a
    row of the ranking: a cheaper budget is not comparable with the full one."""

    key: str
    arch: str
    encoder: str
    epochs: int
    full_epochs: int | None
    mean: float
    n: int
    rank: int
    of: int


class Ranking(NamedTuple):
    """Everything a report draws: rows best first, plus the noise and the test's settings.

    ``noise_floor`` (mIoU) is the pooled within-candidate sd over ``noise_candidates`` candidates
    with >= 2 runs (``noise_df`` degrees of freedom): the sigma of the verdicts. ``crit`` is the
    half-width of a gap's interval in standard errors at that df, over ``n_family`` candidates.
    ``mde`` is the gap detectable with 80% power between two candidates with ``mde_seeds`` seeds
    each (the most seeds any candidate has), ``seeds_for_rope`` the seeds per candidate needed to
    detect a gap of ``rope`` (None when unknown or rope is 0). ``ci``, ``ci_method``,
    ``ci_method_text``, ``n_boot`` and ``seed`` say how the mean's intervals were made. ``noisy``:
    keys of candidates whose sd is over twice the pooled. ``baseline``: the mIoU of predicting the
    majority class everywhere (None when not known), and ``no_model_learned`` whether the best
    fails to beat it by more than the ROPE.
    """

    rows: tuple[Row, ...]
    best_key: str
    rope: float
    alpha: float
    ci: float
    ci_method: str
    ci_method_text: str
    n_boot: int
    seed: int
    procedure: str
    df: int
    n_family: int
    crit: float
    noise_floor: float
    noise_df: int
    noise_candidates: int
    mde: float
    mde_seeds: int
    seeds_for_rope: int | None
    noisy: tuple[str, ...]
    baseline: float | None
    no_model_learned: bool
    #: Candidates stopped at a cheaper rung (:class:`Stopped`), cheapest rung first.
    stopped: tuple[Stopped, ...] = ()

    def count(self, verdict: str) -> int:
        return sum(r.verdict == verdict for r in self.rows)


def _as_candidates(candidates: Sequence[str | Label], k: int) -> list[Label]:
    out = [c if isinstance(c, Label) else Label(key=str(c)) for c in candidates]
    if len(out) != k:
        raise SweeperError(f"got {len(out)} candidate names for {k} columns of values (one per candidate)")
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
    method: str = "auto",
    n_boot: int = 2000,
    seed: int = 0,
    baseline: float | None = None,
) -> Ranking:
    """Rank candidates by mean mIoU, each with its verdict against the best: the input of every report.

    ``values`` is (runs, candidates) as in :mod:`sweeper.stats.arrays`; ``candidates`` are keys
    or :class:`Label` labels, one per column. Candidates without any finite run rank last.
    ``baseline`` is the trivial (majority class) mIoU of the validation set, if known.
    """
    x = as_values(values)
    cands = _as_candidates(candidates, x.shape[1])
    summ = summarize(x, ci=ci, method=method, n_boot=n_boot, seed=seed)
    comp = compare_to_best(x, ci=ci, method=method, n_boot=n_boot, seed=seed)
    v = decide(x, rope=rope, alpha=alpha)
    order = sorted(
        range(x.shape[1]),
        key=lambda i: (i != v.best, summ.n[i] == 0, -np.nan_to_num(summ.mean[i], nan=0.0), i),
    )
    rows = tuple(
        Row(
            rank=rank, index=i, candidate=cands[i], n=int(summ.n[i]), mean=float(summ.mean[i]),
            sd=float(summ.sd[i]), median=float(summ.median[i]), ci_low=float(summ.ci_low[i]),
            ci_high=float(summ.ci_high[i]), gap=float(v.gap[i]), gap_low=float(v.gap_low[i]),
            gap_high=float(v.gap_high[i]), verdict=str(v.verdict[i]), seeds_to_decide=float(v.seeds_to_decide[i]),
            p_tukey=float(v.p_tukey[i]), noisy=bool(v.noisy[i]), diff=float(comp.diff[i]),
            diff_ci_low=float(comp.diff_ci_low[i]), diff_ci_high=float(comp.diff_ci_high[i]),
            test=str(comp.test[i]), p_paired_t=float(comp.p_paired_t[i]), p_holm=float(comp.p_holm[i]),
            p_wilcoxon=float(comp.p_wilcoxon[i]), p_improvement=float(comp.p_improvement[i]),
            runs=tuple(float(r) for r in x[:, i]),
        )
        for rank, i in enumerate(order, start=1)
    )
    sigma, noise_df, noise_k = pooled_sd(x)
    mde_seeds = int(summ.n.max()) if x.size else 0
    mde = min_detectable_effect(sigma, mde_seeds, alpha=alpha) if np.isfinite(sigma) else math.nan
    seeds_rope = seeds_needed(sigma, rope, alpha=alpha) if np.isfinite(sigma) and rope > 0 else None
    best_mean = float(summ.mean[v.best])
    return Ranking(
        rows=rows, best_key=cands[v.best].key, rope=float(rope), alpha=float(alpha), ci=float(ci),
        ci_method=method, ci_method_text=interval_method(method, summ.n[summ.n >= 2]), n_boot=int(n_boot),
        seed=int(seed), procedure=PROCEDURE, df=v.df, n_family=v.k, crit=v.crit, noise_floor=sigma,
        noise_df=noise_df, noise_candidates=noise_k, mde=mde, mde_seeds=mde_seeds, seeds_for_rope=seeds_rope,
        noisy=tuple(cands[i].key for i in np.flatnonzero(v.noisy)),
        baseline=None if baseline is None else float(baseline),
        no_model_learned=baseline is not None and not best_mean - float(baseline) > rope,
    )


__all__ = ["NOISY_RATIO", "Ranking", "Row", "rank_candidates"]
