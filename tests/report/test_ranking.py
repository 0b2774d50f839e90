"""sweeper.report.ranking: what the table, markdown, CSV and JSON show; exports parse back."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from rich.console import Console

from sweeper import report as R
from sweeper import stats as S


def test_table_shows_columns_verdicts_noise_floor_and_legend(ranking):
    console = Console(record=True, width=220)
    table = R.render_table(ranking, console)
    text = console.export_text()
    for header in ("rank", "arch", "encoder", "params (M)", "mean ± sd", "95% CI", "Δ to best [interval]",
                   "Tukey p", "Holm p", "verdict"):
        assert header in text
    assert "★ best" in text and "▼ worse (1 run)" in text and "? undecided (~" in text
    assert "Verdicts: 1 best, 3 worse, 2 undecided" in text
    assert "Noise floor: σ = " in text and "pooled over 5 candidates" in text
    legend = [line for line in text.splitlines() if line[:1] in R.ranking.SYMBOLS.values()]
    assert len(legend) == 4  # one line per verdict
    assert "Tukey-Kramer over 6 candidates" in text and "95% CI: t interval" in text
    fpn = ranking.rows[1]
    assert f"{fpn.gap:+.4f} [{fpn.gap_low:+.4f}, {fpn.gap_high:+.4f}]" in text
    assert "24.4" in text  # params in millions
    assert table.rows[0].style == "bold"
    assert all(row.style is None for row in table.rows[1:])


def test_table_with_bare_names_has_a_candidate_column():
    x = np.array([[0.70, 0.60], [0.71, 0.61], [0.69, 0.62]])
    ranking = S.rank_candidates(x, ["first", "second"])
    console = Console(record=True, width=200)
    R.render_table(ranking, console)
    text = console.export_text()
    assert "candidate" in text and "first" in text and "arch" not in text


def test_max_rows_hides_the_tail_but_says_so(ranking):
    console = Console(record=True, width=220)
    table = R.render_table(ranking, console, max_rows=2)
    assert table.row_count == 2
    assert "4 more candidates not shown" in console.export_text()


def test_narrow_terminal_hides_optional_columns_but_keeps_verdicts(ranking):
    console = Console(record=True, width=100)
    table = R.render_table(ranking, console)
    headers = [str(col.header) for col in table.columns]
    assert "verdict" in headers and any(h.startswith("Δ to best") for h in headers) and "Holm p" not in headers
    text = console.export_text()
    assert "hidden columns Holm p" in text
    assert "▼ worse" in text and "-0.0" in text  # verdicts and gaps are printed in full
    assert all(len(line) <= 100 for line in text.splitlines())


def test_markdown_has_bold_best_and_the_legend(ranking):
    md = R.to_markdown(ranking)
    lines = md.splitlines()
    assert lines[0].startswith("| rank | arch | encoder |")
    assert lines[2].startswith("| **1** | **unet** | **resnet34** |")
    assert "★" in lines[2]
    assert len([line for line in lines if line.startswith("| ")]) == 1 + len(ranking.rows)
    assert "- ≈ equivalent: the gap's interval lies inside ±ROPE" in md and "Noise floor" in md
    assert "Verdicts: 1 best" in md


def test_csv_round_trip_gives_back_the_same_rows(ranking):
    text = R.to_csv(ranking)
    assert text.splitlines()[0] == ",".join(R.CSV_COLUMNS)
    back = R.from_csv(text)
    assert back == [R.row_record(row) for row in ranking.rows]
    first, single = back[0], back[-1]
    assert first["verdict"] == "best" and first["params_m"] == pytest.approx(24.436369)
    assert single["verdict"] == "worse" and single["single_run"] is True
    assert single["n"] == 1 and single["miou_sd"] is None and single["p_holm"] is None
    assert back[1]["miou_mean"] == ranking.rows[1].mean  # full precision, not rounded


def test_json_round_trip_has_runs_and_probability_of_improvement(ranking):
    text = R.to_json(ranking)
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert data == R.from_json(text)
    assert data["best"] == "unet/resnet34" and data["procedure"] == ranking.procedure
    assert data["noise_floor"]["sigma"] == pytest.approx(ranking.noise_floor)
    for row, rec in zip(ranking.rows, data["rows"]):
        assert rec["runs"] == [None if math.isnan(v) else v for v in row.runs]
        assert rec["p_improvement"] == pytest.approx(row.p_improvement)
        flat = {k: rec[k] for k in R.CSV_COLUMNS}
        assert flat == R.row_record(row)
    assert data["rows"][0]["extra"] == {"lr": 1e-3}
    assert data["rows"][0]["p_improvement"] == 0.5


def test_importing_report_does_not_import_plotting_libraries():
    code = (
        "import sys, sweeper.report; "
        "print(any(m in sys.modules for m in ('matplotlib', 'plotly')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
