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

from sweeper.report.ranking import format_number, format_p, row_label, shown_rows
from sweeper.stats import BEST, SINGLE, TIED, Ranking, Row


class Curve(NamedTuple):
    """One run's validation mIoU per epoch (dataset level, in [0, 1]).

    ``epochs`` count from 0, as a trial's history records them; ``miou[i]`` belongs to
    ``epochs[i]`` (NaN or None where validation gave no number).
    """

    candidate: str
    seed: int
    epochs: list[int]
    miou: list[float]


def plot_curves(curves: Iterable[Curve], path: str | Path) -> Path:
    """Write a PNG of validation mIoU per epoch, one line per run and one colour per candidate.

    The x axis shows ``epoch + 1`` (the first epoch is 1); a run without epochs is left out.
    Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colours: dict[str, Any] = {}
    palette = [f"C{i}" for i in range(10)]
    for curve in curves:
        if not curve.epochs:
            continue
        first = curve.candidate not in colours
        colour = colours.setdefault(curve.candidate, palette[len(colours) % len(palette)])
        xs = [epoch + 1 for epoch in curve.epochs]
        ys = [float("nan") if m is None else m for m in curve.miou]
        ax.plot(xs, ys, color=colour, alpha=0.8, linewidth=1.2, label=curve.candidate if first else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation mIoU (dataset level)")
    ax.set_title("learning curves (one line per run)")
    if colours:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def _plot_rows(ranking: Ranking, max_rows: int | None) -> list[Row]:
    return [row for row in shown_rows(ranking, max_rows) if row.n > 0]


def forest_plot(ranking: Ranking, path: str | Path, *, max_rows: int | None = 40) -> Path:
    """Write a PNG forest plot: each candidate's mean and CI, the best's ROPE band, markers.

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend change), so it works on a
    headless machine and inside a notebook alike. Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = _plot_rows(ranking, max_rows)
    path = Path(path)
    fig = Figure(figsize=(8.0, 1.2 + 0.32 * max(len(rows), 1)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ys = list(range(len(rows)))[::-1]
    best = next((row for row in ranking.rows if row.marker == BEST), None)
    if best is not None and ranking.rope > 0:
        ax.axvspan(best.mean - ranking.rope, best.mean, color="tab:green", alpha=0.12)
    for y, row in zip(ys, rows):
        is_best = row.marker == BEST
        color = "tab:green" if is_best else ("tab:gray" if row.marker in (TIED, SINGLE)
                                            else "tab:red")
        if not math.isnan(row.ci_low):
            ax.hlines(y, row.ci_low, row.ci_high, color=color, lw=2.5 if is_best else 1.5)
        ax.plot(row.mean, y, "o", color=color, mfc=color if row.n > 1 else "white")
        ax.annotate(row.marker, (1.0, y), xycoords=("axes fraction", "data"),
                    xytext=(4, 0), textcoords="offset points", va="center",
                    fontweight="bold" if is_best else "normal")
    ax.set_yticks(ys, [row_label(row) for row in rows])
    for tick, row in zip(ax.get_yticklabels(), rows):
        if row.marker == BEST:
            tick.set_fontweight("bold")
    xlabel = f"mIoU: mean and {ranking.ci:.0%} CI; hollow = one run"
    if best is not None and ranking.rope > 0:
        xlabel += f"; shaded = ROPE ({ranking.rope:.3f}) below the best"
    ax.set_xlabel(xlabel)
    shown = len(rows)
    total = sum(1 for row in ranking.rows if row.n > 0)
    title = "Candidates ranked by mean mIoU"
    if shown < total:
        title += f" (top {shown} of {total})"
    ax.set_title(title, loc="left")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    return path


def plotly_figure(ranking: Ranking, *, max_rows: int | None = 40) -> Any:
    """A plotly Figure of the same forest plot, with p-values and runs in the hover text."""
    import plotly.graph_objects as go

    rows = _plot_rows(ranking, max_rows)[::-1]
    labels = [f"{row_label(row)} {row.marker}".strip() for row in rows]
    means = [row.mean for row in rows]
    plus = [0.0 if math.isnan(row.ci_high) else row.ci_high - row.mean for row in rows]
    minus = [0.0 if math.isnan(row.ci_low) else row.mean - row.ci_low for row in rows]
    hover = [
        f"{row.candidate.key}<br>n={row.n}, mean={format_number(row.mean)}, sd={format_number(row.sd)}"
        f"<br>Δ to best={format_number(row.diff, sign=True)}, Tukey p={format_p(row.p_tukey)}, "
        f"Holm p={format_p(row.p_holm)}<br>P(beats best)={format_number(row.p_improvement, 2)}"
        for row in rows
    ]
    colors = [
        "green" if row.marker == BEST else ("gray" if row.marker in (TIED, SINGLE) else "crimson")
        for row in rows
    ]
    fig = go.Figure(
        go.Scatter(
            x=means,
            y=labels,
            mode="markers",
            marker={"color": colors, "size": 9},
            error_x={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus},
            hovertext=hover,
            hoverinfo="text",
            name="mean and CI",
        )
    )
    best = next((row for row in ranking.rows if row.marker == BEST), None)
    if best is not None and ranking.rope > 0:
        fig.add_vrect(x0=best.mean - ranking.rope, x1=best.mean, fillcolor="green", opacity=0.1,
                      line_width=0, annotation_text="ROPE", annotation_position="top left")
    fig.update_layout(
        title="Candidates ranked by mean mIoU",
        xaxis_title=f"mIoU (mean and {ranking.ci:.0%} CI)",
        height=200 + 26 * max(len(rows), 1),
        showlegend=False,
    )
    return fig
