"""Renders what stats computed and what the zoo counted: terminal, markdown, csv, json, plots.

The ranking's renderers are re-exported here (:mod:`sweeper.report.ranking`,
:mod:`sweeper.report.plots`); the zoo's are in :mod:`sweeper.report.zoo`. matplotlib and plotly
are imported inside the plotting functions, so importing this package stays cheap.
"""

from __future__ import annotations

from sweeper.report.exports import CSV_COLUMNS, from_csv, from_json, row_record, to_csv, to_dict, to_json
from sweeper.report.plots import Curve, forest_plot, plot_curves, plotly_figure
from sweeper.report.ranking import (
    legend,
    noise_line,
    notes,
    render_table,
    to_markdown,
    verdict_text,
)

__all__ = [
    "CSV_COLUMNS",
    "Curve",
    "forest_plot",
    "from_csv",
    "from_json",
    "legend",
    "noise_line",
    "notes",
    "plot_curves",
    "plotly_figure",
    "render_table",
    "row_record",
    "to_csv",
    "to_dict",
    "to_json",
    "to_markdown",
    "verdict_text",
]
