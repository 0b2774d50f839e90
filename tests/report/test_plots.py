"""sweeper.report.plots: the forest plot (PNG and plotly) and the learning curves."""

from __future__ import annotations

import numpy as np
import pytest

from sweeper import report as R


def test_forest_plot_writes_a_png(ranking, tmp_path):
    path = R.forest_plot(ranking, tmp_path / "forest.png")
    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) > 5000


def test_plotly_figure_draws_every_gap_with_its_interval_and_verdict(ranking):
    fig = R.plotly_figure(ranking)
    trace = fig.data[0]
    rows = [row for row in ranking.rows if row.n > 0][::-1]
    assert list(trace.x) == [row.gap for row in rows]
    assert trace.y[-1] == "unet / resnet34  ★ best" and trace.x[-1] == 0.0
    second = rows[-2]
    assert trace.error_x.array[-2] == pytest.approx(second.gap_high - second.gap)
    assert trace.error_x.arrayminus[-2] == pytest.approx(second.gap - second.gap_low)
    assert [label.split("  ", 1)[1] for label in trace.y] == [R.verdict_text(row) for row in rows]
    assert trace.marker.symbol[0] == "circle-open" and rows[0].single_run  # one run: hollow
    assert trace.marker.symbol[-1] == "star"


def _drawn(pixels, colour: str) -> int:
    """Pixels of a line drawn in ``colour`` at alpha 0.8 over the white background (within 2/255)."""
    from matplotlib.colors import to_rgb

    expected = 0.8 * np.array(to_rgb(colour)) + 0.2
    return int((np.abs(pixels[..., :3] - expected) <= 2 / 255).all(axis=-1).sum())


def test_plot_curves_draws_one_colour_per_candidate_into_a_png(tmp_path):
    from matplotlib.image import imread

    nan = float("nan")
    curves = [
        R.Curve("unet/resnet18", 0, [0, 1, 2, 3, 4], [0.20, 0.35, 0.45, 0.50, 0.52]),
        R.Curve("unet/resnet18", 1, [0, 1, 2, 3, 4], [0.18, 0.33, nan, 0.49, 0.53]),
        R.Curve("fpn/mobilenet_v2", 0, [0, 1, 2], [0.10, 0.25, 0.30]),
        R.Curve("fpn/mobilenet_v2", 1, [], []),  # a run without epochs draws nothing
    ]
    path = R.plot_curves(curves, tmp_path / "curves.png")
    assert path == tmp_path / "curves.png"
    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) > 5000
    pixels = imread(path)
    assert pixels.shape[:2] == (600, 1152)  # 9.6 x 5 inches at 120 dpi
    first, second, third = (_drawn(pixels, c) for c in ("C0", "C1", "C2"))
    assert first > second > 200  # two runs of the first candidate, one (shorter) of the second
    assert third == 0  # two candidates, two colours


def test_plot_curves_numbers_epochs_as_recorded_and_tells_seeds_apart(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    figures = []
    real_savefig = Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return real_savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    curves = [R.Curve("a", 0, [0, 1], [0.1, 0.2]), R.Curve("a", 3, [0, 1], [0.15, None]), R.Curve("b", 0, [0], [0.3])]
    R.plot_curves(curves, tmp_path / "curves.png")
    (ax,) = figures[0].axes
    assert [line.get_xdata().tolist() for line in ax.lines] == [[0, 1], [0, 1], [0]]  # 0-based, as best_epoch
    assert [line.get_color() for line in ax.lines] == ["C0", "C0", "C1"]
    assert [line.get_linestyle() for line in ax.lines] == ["-", "--", "-"]  # seeds of one candidate differ
    assert all(float(t).is_integer() for t in ax.get_xticks())
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b", "1st seed run", "2nd seed run"]
    box = legend.get_window_extent(figures[0].canvas.get_renderer())
    assert box.x0 >= ax.get_window_extent(figures[0].canvas.get_renderer()).x1  # outside the data
    assert ax.get_xlabel().startswith("epoch") and ax.get_ylabel() == "validation mIoU (dataset level)"
    assert ax.get_title() == "learning curves (one line per run)"
