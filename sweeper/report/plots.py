"""Plots of a sweep: the ranking's forest plot (PNG or plotly) and the learning curves.

Each function draws plain data it is given (a :class:`~sweeper.stats.Ranking`, or
:class:`Curve` rows) and reads no study. matplotlib draws on its Agg canvas directly (no pyplot,
no global backend change), so it works on a headless machine and inside a notebook alike;
matplotlib and plotly are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from sweeper.report.ranking import format_number, format_p, gap_text, row_label, shown_rows, verdict_text
from sweeper.stats import BEST, EQUIVALENT, UNDECIDED, WORSE, Ranking, Row


class Curve(NamedTuple):
    """One run's validation mIoU per epoch (dataset level, in [0, 1]).

    ``epochs`` count from 0, as a trial's history records them; ``miou[i]`` belongs to
    ``epochs[i]`` (NaN or None where validation gave no number).
    """

    candidate: str
    seed: int
    epochs: list[int]
    miou: list[float]


#: Line styles that tell the seeds of one candidate apart (its colour is shared).
SEED_STYLES = ("-", "--", ":", "-.")


def plot_curves(curves: Iterable[Curve], path: str | Path) -> Path:
    """Write a PNG of validation mIoU per epoch: one colour per candidate, one line style per seed
    (solid for the first seed a candidate ran, dashed for the second...), the legend outside the data.

    Epochs are numbered as the records number them (0 first, as ``best_epoch`` and the
    dashboard's intermediate values do), on integer ticks. A run without epochs is left out.
    Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(9.6, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colours: dict[str, Any] = {}
    seeds: dict[str, list[int]] = {}
    palette = [f"C{i}" for i in range(10)]
    for curve in curves:
        if not curve.epochs:
            continue
        colour = colours.setdefault(curve.candidate, palette[len(colours) % len(palette)])
        order = seeds.setdefault(curve.candidate, [])
        if curve.seed not in order:
            order.append(curve.seed)
        style = SEED_STYLES[order.index(curve.seed) % len(SEED_STYLES)]
        ys = [float("nan") if m is None else m for m in curve.miou]
        ax.plot(list(curve.epochs), ys, color=colour, linestyle=style, alpha=0.8, linewidth=1.4)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (0 = first, as recorded)")
    ax.set_ylabel("validation mIoU (dataset level)")
    ax.set_title("learning curves (one line per run)")
    if colours:
        handles = [Line2D([], [], color=c, linewidth=2) for c in colours.values()]
        labels = list(colours)
        most = max(len(v) for v in seeds.values())
        for k in range(min(most, len(SEED_STYLES))):
            handles.append(Line2D([], [], color="gray", linestyle=SEED_STYLES[k]))
            labels.append(f"{k + 1}{('st', 'nd', 'rd')[k] if k < 3 else 'th'} seed run")
        ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def _plot_rows(ranking: Ranking, max_rows: int | None) -> list[Row]:
    return [row for row in shown_rows(ranking, max_rows) if row.n > 0]


#: Colours of the verdicts in both figures.
COLOURS = {BEST: "tab:green", EQUIVALENT: "tab:blue", WORSE: "tab:red", UNDECIDED: "tab:gray", "": "tab:gray"}
_PLOTLY = {"tab:green": "green", "tab:blue": "royalblue", "tab:red": "crimson", "tab:gray": "gray"}


def _interval(row: Row) -> tuple[float, float]:
    """The gap's simultaneous interval, or the point itself where none exists yet."""
    if math.isnan(row.gap_low):
        return row.gap, row.gap
    return row.gap_low, row.gap_high


def forest_plot(ranking: Ranking, path: str | Path, *, max_rows: int | None = 40) -> Path:
    """Write a PNG: each candidate's gap to the best with its simultaneous interval, the ±ROPE
    band around zero, and the verdict, which is where the interval lies against the band.

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend change), so it works on a
    headless machine and inside a notebook alike. Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = _plot_rows(ranking, max_rows)
    path = Path(path)
    fig = Figure(figsize=(9.0, 1.4 + 0.32 * max(len(rows), 1)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ys = list(range(len(rows)))[::-1]
    if ranking.rope > 0:
        ax.axvspan(-ranking.rope, ranking.rope, color="tab:blue", alpha=0.10, lw=0)
    ax.axvline(0.0, color="black", lw=0.8)
    for y, row in zip(ys, rows):
        colour = COLOURS[row.verdict]
        low, high = _interval(row)
        if row.verdict != BEST:
            ax.hlines(y, low, high, color=colour, lw=1.8)
        marker = "*" if row.verdict == BEST else "o"
        ax.plot(row.gap, y, marker, color=colour, ms=11 if row.verdict == BEST else 6,
                mfc="white" if row.single_run and row.verdict != BEST else colour)
        ax.annotate(verdict_text(row), (1.0, y), xycoords=("axes fraction", "data"), xytext=(6, 0),
                    textcoords="offset points", va="center", color=colour, fontsize=8)
    ax.set_yticks(ys, [row_label(row) for row in rows])
    for tick, row in zip(ax.get_yticklabels(), rows):
        if row.verdict == BEST:
            tick.set_fontweight("bold")
    xlabel = f"mIoU gap to the best, with simultaneous {1 - ranking.alpha:.0%} intervals; hollow = one run"
    if ranking.rope > 0:
        xlabel += f"; band = ±ROPE ({ranking.rope:.3f})"
    ax.set_xlabel(xlabel, fontsize=9)
    shown = len(rows)
    total = sum(1 for row in ranking.rows if row.n > 0)
    title = f"Verdicts against the best ({ranking.best_key}, mean {rows[0].mean:.4f})" if rows else "Verdicts"
    if shown < total:
        title += f", top {shown} of {total}"
    ax.set_title(title, loc="left", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.subplots_adjust(right=0.80)
    fig.savefig(path, dpi=150)
    return path


def plotly_figure(ranking: Ranking, *, max_rows: int | None = 40) -> Any:
    """A plotly Figure of the same plot (the dashboard's), with the figures in the hover text."""
    import plotly.graph_objects as go

    rows = _plot_rows(ranking, max_rows)[::-1]
    # The verdict rides in the axis label, clear of the bars however narrow the dashboard's panel.
    labels = [f"{row_label(row)}  {verdict_text(row)}" for row in rows]
    gaps = [row.gap for row in rows]
    plus = [_interval(row)[1] - row.gap for row in rows]
    minus = [row.gap - _interval(row)[0] for row in rows]
    hover = [
        f"{row.candidate.key}: {verdict_text(row)}<br>n={row.n}, mean={format_number(row.mean)}, "
        f"sd={format_number(row.sd)}<br>Δ to best={gap_text(row)}, Tukey p={format_p(row.p_tukey)}, "
        f"Holm p={format_p(row.p_holm)}<br>P(beats best)={format_number(row.p_improvement, 2)}"
        for row in rows
    ]
    colours = [_PLOTLY[COLOURS[row.verdict]] for row in rows]
    symbols = ["star" if row.verdict == BEST else ("circle-open" if row.single_run else "circle") for row in rows]
    fig = go.Figure(
        go.Scatter(
            x=gaps, y=labels, mode="markers",
            marker={"color": colours, "size": [14 if row.verdict == BEST else 9 for row in rows], "symbol": symbols,
                    "line": {"color": colours, "width": 2}},
            error_x={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus},
            hovertext=hover, hoverinfo="text", name="gap to the best",
        )
    )
    if ranking.rope > 0:
        fig.add_vrect(x0=-ranking.rope, x1=ranking.rope, fillcolor="royalblue", opacity=0.1, line_width=0)
        fig.add_annotation(x=0, y=1.0, yref="paper", yanchor="bottom", showarrow=False,
                           text=f"±ROPE {ranking.rope:.3f}", font={"size": 11})
    fig.add_vline(x=0, line_width=1, line_color="black")
    fig.update_layout(
        title=f"Verdicts against the best ({ranking.best_key})",
        xaxis_title=f"gap to the best (mIoU), {1 - ranking.alpha:.0%} simultaneous; hollow: 1 run",
        height=220 + 26 * max(len(rows), 1),
        showlegend=False,
    )
    return fig
