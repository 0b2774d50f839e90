"""Draw a :class:`~sweeper.stats.Ranking` as text: a rich table, markdown, CSV and JSON.

Nothing here computes statistics or reads a study. To report a sweep, build ``values`` (runs x
candidates, NaN for a missing run; :func:`sweeper.stats.pivot_runs` turns ``(key, seed, mIoU)``
records into it) and one :class:`~sweeper.stats.Label` per column, call
:func:`sweeper.stats.rank_candidates`, and hand the ranking to the functions below (the plots
are in :mod:`sweeper.report.plots`). Every number is dataset-level mIoU in [0, 1]; ``params_m``
is millions of parameters.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import TYPE_CHECKING, Any

from sweeper.stats import (
    BEST,
    PROCEDURE_ONE_WAY,
    SINGLE,
    STARS,
    TIED,
    Ranking,
    Row,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

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
    "diff_ci_low",
    "diff_ci_high",
    "diff_adjusted",
    "test",
    "p_paired_t",
    "p_holm",
    "p_wilcoxon",
    "p_tukey",
    "p_improvement",
    "marker",
)
"""Flat columns of :func:`to_csv` (and of each JSON row); mIoU and differences in [0, 1] units."""

_INT_COLUMNS = {"rank", "n"}
_STR_COLUMNS = {"key", "arch", "encoder", "test", "marker"}


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
        "diff_to_best": _num(row.diff),
        "diff_ci_low": _num(row.diff_ci_low),
        "diff_ci_high": _num(row.diff_ci_high),
        "diff_adjusted": _num(row.diff_adjusted),
        "test": row.test,
        "p_paired_t": _num(row.p_paired_t),
        "p_holm": _num(row.p_holm),
        "p_wilcoxon": _num(row.p_wilcoxon),
        "p_tukey": _num(row.p_tukey),
        "p_improvement": _num(row.p_improvement),
        "marker": row.marker,
    }


# --------------------------------------------------------------------------- text pieces


def format_number(x: float, digits: int = 4, sign: bool = False) -> str:
    if x is None or math.isnan(x):
        return "—"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def format_p(p: float) -> str:
    if p is None or math.isnan(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _params(params: int | None) -> str:
    return "—" if params is None else f"{params / 1e6:.1f}"


def row_label(row: Row) -> str:
    c = row.candidate
    return f"{c.arch} / {c.encoder}" if c.arch and c.encoder else c.key


def noise_line(ranking: Ranking) -> str:
    """The noise floor, the effect that many seeds can detect, and the seeds the ROPE needs."""
    r = ranking
    if math.isnan(r.noise_floor):
        return (
            "Noise floor: unknown — no candidate has 2 runs, so no difference can be told from "
            "seed noise yet."
        )
    text = (
        f"Noise floor: σ = {r.noise_floor:.4f} mIoU (run-to-run sd within a candidate, pooled "
        f"over {r.noise_candidates} candidates with ≥ 2 runs, df {r.noise_df})."
    )
    if math.isfinite(r.mde):
        text += (
            f" With {r.mde_seeds} seeds per candidate a gap of {r.mde:.4f} is detected with 80% "
            f"power (two candidates, paired two-sided t-test at α = {r.alpha:g}, runs treated as "
            "independent)."
        )
    if r.rope > 0 and r.seeds_for_rope is not None:
        text += f" Resolving the ROPE ({r.rope:.3f}) needs {r.seeds_for_rope} seeds per candidate."
    elif r.rope > 0:
        text += f" Resolving the ROPE ({r.rope:.3f}) needs more seeds than is practical."
    return text


def legend(ranking: Ranking) -> list[str]:
    """Lines that explain the markers, which test decides them, and the p and CI columns."""
    r = ranking
    blocks = (
        "one-way Tukey-Kramer: the seeds run are not connected, so seed effects are not removed"
        if r.procedure == PROCEDURE_ONE_WAY
        else "seeds as blocks"
    )
    if r.ci_method == "t":
        ci_text = f"{r.ci:.0%} CI: Student-t interval of the mean over seeds."
    else:
        ci_text = (
            f"{r.ci:.0%} CI: percentile bootstrap of the mean over seeds ({r.n_boot} resamples, "
            f"seed {r.seed}); with few seeds it is too narrow."
        )
    return [
        f"{BEST} best mean (bold)   {TIED} not distinguishable from the best: Tukey p ≥ "
        f"{r.alpha:g} or gap ≤ ROPE {r.rope:.3f}   {' / '.join(STARS)} worse than the best by "
        f"more than the ROPE, Tukey p < .05 / .01 / .001   {SINGLE} one run: no noise estimate "
        "of its own (its Tukey p leans on the others' pooled noise)",
        f"Markers: Tukey HSD comparisons with the best (studentized range over {r.n_family} "
        f"candidates, {blocks}, df {r.df}). It keeps the chance of marking any candidate worse "
        f"when all are equal at {r.alpha:.0%}, although the best was picked after seeing the data.",
        "Δ to best: mean paired difference over shared seeds (difference of means where fewer "
        "than 2 are shared). Holm p: one-sided paired t-test against the best (Welch where no "
        "seeds are shared), Holm-adjusted; for reference only, since it ignores that the best "
        "was selected and flags equal candidates far more often than its level.",
        ci_text,
    ]


# --------------------------------------------------------------------------- tables


def _header(ranking: Ranking) -> list[str]:
    first = ["arch", "encoder"] if _has_models(ranking) else ["candidate"]
    return [
        "rank",
        *first,
        "params (M)",
        "n",
        "mean ± sd",
        f"{ranking.ci:.0%} CI",
        "Δ to best",
        "Tukey p",
        "Holm p",
        "marker",
    ]


def _has_models(ranking: Ranking) -> bool:
    return any(row.candidate.arch or row.candidate.encoder for row in ranking.rows)


def _cells(ranking: Ranking, row: Row) -> list[str]:
    c = row.candidate
    first = [c.arch or c.key, c.encoder] if _has_models(ranking) else [c.key]
    best = row.marker == BEST
    mean_sd = format_number(row.mean) if math.isnan(row.sd) else f"{row.mean:.4f} ± {row.sd:.4f}"
    ci = "—" if math.isnan(row.ci_low) else f"{row.ci_low:.4f}–{row.ci_high:.4f}"
    return [
        str(row.rank),
        *first,
        _params(c.params),
        str(row.n),
        mean_sd if row.n else "—",
        ci,
        "—" if best else format_number(row.diff, sign=True),
        "—" if best else format_p(row.p_tukey),
        "—" if best else format_p(row.p_holm),
        row.marker,
    ]


def shown_rows(ranking: Ranking, max_rows: int | None) -> tuple[Row, ...]:
    return ranking.rows if max_rows is None else ranking.rows[:max_rows]


_NAME_COLUMNS = ("arch", "encoder", "candidate")
_DROP_WHEN_NARROW = ("Holm p", "params (M)", "CI", "Tukey p")
"""Columns a narrow terminal hides, in this order, rather than cutting the marker off."""


def render_table(
    ranking: Ranking, console: Console | None = None, *, max_rows: int | None = None
) -> Table:
    """Print the ranked table, the noise-floor line and the legend; return the rich Table.

    ``console`` defaults to sweeper's stdout console; ``max_rows`` shows only the top rows (the
    notes still describe every candidate). On a terminal too narrow for every column, the name
    columns are shortened first, then the Holm p, params, CI and Tukey p columns are hidden
    (and a note says so): numbers are never cut.
    """
    from rich import box
    from rich.cells import cell_len
    from rich.table import Table

    if console is None:
        from sweeper.console import out as console

    shown = shown_rows(ranking, max_rows)
    header = _header(ranking)
    cells = [_cells(ranking, row) for row in shown]
    widths = [max([cell_len(h)] + [cell_len(c[j]) for c in cells]) for j, h in enumerate(header)]
    keep = list(range(len(header)))

    def needed(cols: list[int]) -> int:
        slack = sum(max(0, widths[j] - 10) for j in cols if header[j] in _NAME_COLUMNS)
        return sum(widths[j] for j in cols) + 2 * (len(cols) - 1) - slack

    hidden = []
    for name in _DROP_WHEN_NARROW:
        if needed(keep) <= console.width:
            break
        j = next(j for j in keep if header[j] == name or header[j].endswith(f" {name}"))
        keep.remove(j)
        hidden.append(header[j])

    table = Table(title="Ranking by mean mIoU", title_justify="left", box=box.SIMPLE_HEAD,
                  collapse_padding=True, pad_edge=False, show_edge=False)
    numeric = {"rank", "params (M)", "n", "mean ± sd", "Δ to best", "Tukey p", "Holm p"}
    for j in keep:
        name = header[j]
        if name in _NAME_COLUMNS:  # the only columns rich may shorten (with an ellipsis)
            table.add_column(name, overflow="ellipsis")
        else:
            table.add_column(name, justify="right" if name in numeric else "left", no_wrap=True,
                             min_width=widths[j])
    for row, row_cells in zip(shown, cells):
        table.add_row(*(row_cells[j] for j in keep),
                      style="bold" if row.marker == BEST else None)
    console.print(table)
    more = len(ranking.rows) - len(shown)
    if more:
        console.print(f"… {more} more candidates not shown")
    if hidden:
        console.print(f"(terminal too narrow: hidden columns {', '.join(hidden)}; "
                      "the CSV and JSON exports have every column)")
    console.print(noise_line(ranking))
    for line in legend(ranking):
        console.print(line, style="dim")
    return table


def to_markdown(ranking: Ranking, *, max_rows: int | None = None) -> str:
    """The same table as :func:`render_table` in GitHub markdown, best row in bold."""
    header = _header(ranking)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in shown_rows(ranking, max_rows):
        cells = [c.replace("|", "\\|") for c in _cells(ranking, row)]
        if row.marker == BEST:
            cells = [f"**{c}**" if c and c != "—" else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    hidden = len(ranking.rows) - len(shown_rows(ranking, max_rows))
    if hidden:
        lines.append(f"\n… {hidden} more candidates not shown")
    lines.append("")
    lines.append(noise_line(ranking))
    lines.append("")
    lines.extend(f"- {line}" for line in legend(ranking))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- CSV and JSON


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
            elif cell == "":
                parsed[key] = None
            elif key in _INT_COLUMNS:
                parsed[key] = int(cell)
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
        "n_boot": r.n_boot,
        "seed": r.seed,
        "procedure": r.procedure,
        "design": r.design,
        "df": r.df,
        "n_family": r.n_family,
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
    }


def to_json(ranking: Ranking, *, indent: int | None = 2) -> str:
    """:func:`to_dict` as strict JSON (no NaN: missing values are null)."""
    return json.dumps(to_dict(ranking), indent=indent, ensure_ascii=False, allow_nan=False,
                      default=str)


def from_json(text: str) -> dict[str, Any]:
    """Parse :func:`to_json` output (the inverse of :func:`to_dict` for plain values)."""
    return json.loads(text)
