"""A :class:`~sweeper.stats.Ranking` as data: flat CSV rows and JSON, and both parsed back.

Every number is dataset-level mIoU in [0, 1]; ``params_m`` is millions of parameters. Empty CSV
cells (JSON null) mean "not applicable": no p-value for the best, no sd for one run.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from sweeper.report.ranking import legend, warnings_of
from sweeper.stats import BEST, EQUIVALENT, UNDECIDED, WORSE, Ranking, Row

CSV_COLUMNS = (
    "rank",
    "key",
    "arch",
    "encoder",
    "params_m",
    "n",
    "miou_mean",
    "miou_sd",
    "miou_median",
    "miou_ci_low",
    "miou_ci_high",
    "diff_to_best",
    "diff_simultaneous_low",
    "diff_simultaneous_high",
    "verdict",
    "single_run",
    "seeds_to_decide",
    "noisy",
    "p_tukey",
    "diff_paired",
    "diff_ci_low",
    "diff_ci_high",
    "test",
    "p_paired_t",
    "p_holm",
    "p_wilcoxon",
    "p_improvement",
)
"""Flat columns of :func:`to_csv` (and of each JSON row); mIoU and differences in [0, 1] units.

``diff_to_best`` is the gap the verdict reads (over the seeds shared with the best) and
``diff_simultaneous_low/high`` its simultaneous interval; ``diff_paired`` and ``diff_ci_*`` are
the one-at-a-time reference figures. ``seeds_to_decide`` is empty (null) where decided or unknown,
and the string ``inf`` when no practical number of seeds would decide it (JSON has no infinity)."""

_INT_COLUMNS = {"rank", "n"}
_STR_COLUMNS = {"key", "arch", "encoder", "test", "verdict"}
_BOOL_COLUMNS = {"single_run", "noisy"}


def _num(x: float | None) -> float | None:
    """NaN (not computed / not applicable) becomes None, so CSV cells are empty and JSON null."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def row_record(row: Row) -> dict[str, Any]:
    """One row as a flat dict keyed by :data:`CSV_COLUMNS` (None where a value does not apply)."""
    cand = row.candidate
    return {
        "rank": row.rank,
        "key": cand.key,
        "arch": cand.arch,
        "encoder": cand.encoder,
        "params_m": None if cand.params is None else cand.params / 1e6,
        "n": row.n,
        "miou_mean": _num(row.mean),
        "miou_sd": _num(row.sd),
        "miou_median": _num(row.median),
        "miou_ci_low": _num(row.ci_low),
        "miou_ci_high": _num(row.ci_high),
        "diff_to_best": _num(row.gap),
        "diff_simultaneous_low": _num(row.gap_low),
        "diff_simultaneous_high": _num(row.gap_high),
        "verdict": row.verdict,
        "single_run": row.single_run,
        "seeds_to_decide": "inf" if math.isinf(row.seeds_to_decide) else _num(row.seeds_to_decide),
        "noisy": row.noisy,
        "p_tukey": _num(row.p_tukey),
        "diff_paired": _num(row.diff),
        "diff_ci_low": _num(row.diff_ci_low),
        "diff_ci_high": _num(row.diff_ci_high),
        "test": row.test,
        "p_paired_t": _num(row.p_paired_t),
        "p_holm": _num(row.p_holm),
        "p_wilcoxon": _num(row.p_wilcoxon),
        "p_improvement": _num(row.p_improvement),
    }


def to_csv(ranking: Ranking) -> str:
    """Flat CSV, one row per candidate in rank order, columns :data:`CSV_COLUMNS`.

    Floats are written at full precision; empty cells mean "not applicable" (e.g. no p-value for
    the best, no sd for one run).
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in ranking.rows:
        rec = row_record(row)
        writer.writerow({k: "" if v is None else (repr(v) if isinstance(v, float) else v)
                         for k, v in rec.items()})
    return buf.getvalue()


def from_csv(text: str) -> list[dict[str, Any]]:
    """Parse :func:`to_csv` output back into :func:`row_record` dicts (empty cells become None)."""
    out = []
    for rec in csv.DictReader(io.StringIO(text)):
        parsed: dict[str, Any] = {}
        for key in CSV_COLUMNS:
            cell = rec.get(key, "")
            if key in _STR_COLUMNS:
                parsed[key] = cell
            elif key in _BOOL_COLUMNS:
                parsed[key] = cell == "True"
            elif cell == "":
                parsed[key] = None
            elif key in _INT_COLUMNS:
                parsed[key] = int(cell)
            elif key == "seeds_to_decide" and cell == "inf":
                parsed[key] = cell
            else:
                parsed[key] = float(cell)
        out.append(parsed)
    return out


def to_dict(ranking: Ranking) -> dict[str, Any]:
    """Everything in the ranking as JSON-ready data: settings, noise floor and one dict per row.

    Each row is its :func:`row_record` plus ``params`` (count), ``extra`` metadata and ``runs``
    (mIoU per seed row, None where missing). ``p_improvement`` is P(a run of this candidate beats
    a run of the best), ties counted 1/2.
    """
    r = ranking
    rows = []
    for row in r.rows:
        rec = row_record(row)
        rec["params"] = row.candidate.params
        rec["extra"] = dict(row.candidate.extra)
        rec["runs"] = [_num(v) for v in row.runs]
        rows.append(rec)
    return {
        "metric": "miou",
        "best": r.best_key,
        "rope": r.rope,
        "alpha": r.alpha,
        "ci": r.ci,
        "ci_method": r.ci_method,
        "ci_method_text": r.ci_method_text,
        "n_boot": r.n_boot,
        "seed": r.seed,
        "procedure": r.procedure,
        "df": r.df,
        "n_family": r.n_family,
        "crit": _num(r.crit),
        "verdicts": {v: r.count(v) for v in (BEST, EQUIVALENT, WORSE, UNDECIDED)},
        "noisy": list(r.noisy),
        "baseline_miou": _num(r.baseline),
        "no_model_learned": r.no_model_learned,
        "warnings": warnings_of(r),
        "noise_floor": {
            "sigma": _num(r.noise_floor),
            "df": r.noise_df,
            "candidates": r.noise_candidates,
        },
        "mde": {
            "miou": _num(r.mde) if r.mde != math.inf else None,
            "seeds": r.mde_seeds,
            "alpha": r.alpha,
            "power": 0.8,
            "design": "two candidates, paired two-sided t-test, runs treated as independent",
        },
        "seeds_for_rope": r.seeds_for_rope,
        "legend": legend(r),
        "rows": rows,
        "stopped": [{"key": s.key, "arch": s.arch, "encoder": s.encoder, "rung_epochs": s.epochs,
                     "full_epochs": s.full_epochs, "miou_mean": _num(s.mean), "n": s.n, "rank_at_rung": s.rank,
                     "of": s.of} for s in r.stopped],
    }


def to_json(ranking: Ranking, *, indent: int | None = 2) -> str:
    """:func:`to_dict` as strict JSON (no NaN: missing values are null)."""
    return json.dumps(to_dict(ranking), indent=indent, ensure_ascii=False, allow_nan=False,
                      default=str)


def from_json(text: str) -> dict[str, Any]:
    """Parse :func:`to_json` output (the inverse of :func:`to_dict` for plain values)."""
    return json.loads(text)
