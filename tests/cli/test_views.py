"""What a sweep shows while it runs: the live panel on a terminal, one line per epoch in a log."""

from __future__ import annotations

import io
import json

from rich.console import Console

from sweeper import console
from sweeper.cli.views import TuneView, _clock
from sweeper.sweep.records import REPEAT, SCREEN, CandidateKey, Unit
from sweeper.sweep.space import parse_space
from sweeper.training.loop import EpochMetrics


def _space():
    return parse_space(json.loads('{"name": "v", "architectures": {"pairs": ["unet/resnet18"]}, "pruner": "none"}'),
                       source="v.yaml")


def _feed(view):
    a, b = CandidateKey.of("unet", "resnet18"), CandidateKey.of("fpn", "resnet18")
    for trial, (key, seed, value, phase) in enumerate([(a, 0, 0.50, SCREEN), (b, 0, 0.56, SCREEN),
                                                        (a, 1, 0.58, REPEAT)]):
        unit = Unit(key, seed, 0, phase)
        view.event("start", {"unit": unit, "trial": trial, "epochs": 2, "progress": ("screening", trial, 2)})
        for epoch in range(2):
            for step in range(3):
                view.event("step", {"unit": unit, "step": step, "steps": 3})
            view.event("epoch", {"unit": unit, "metrics": EpochMetrics(epoch, 1.0, 1.0, value, 0.9, [value], 1.5)})
        if trial == 2:
            return view, unit  # the third unit is still running
        view.event("end", {"unit": unit, "trial": trial, "state": "complete", "value": value, "seconds": 10.0})
    return view, None


def test_the_live_panel_shows_progress_bars_eta_and_the_best_by_mean(monkeypatch):
    screen = Console(record=True, width=120, force_terminal=True, file=io.StringIO())
    monkeypatch.setattr(console, "err", screen)
    view, running = _feed(TuneView(_space()))
    screen.print(view._render())
    text = screen.export_text()
    assert "screening" in text and "2/2 units" in text  # done/total of the phase
    assert "#2 unet/resnet18 seed 1 fold 0 (repeat)" in text
    assert "2/2  val mIoU 0.5800" in text and "step 3/3" in text  # the epoch bar and the step bar
    assert "elapsed 0:0" in text
    # The best single run was fpn's 0.56 after two trials, but by mean it is fpn (0.56) over unet (0.50).
    assert "best by mean" in text and "fpn/resnet18  mIoU 0.5600 over 1 run(s)" in text
    # Finished trials stay in the scrollback, one line each, on a terminal too.
    assert text.count("[screen] complete mIoU") == 2


def test_the_eta_comes_from_measured_run_times_and_racing_has_none():
    view = TuneView(_space())
    view.phase, view.durations = ("screening", 2, 6), [10.0, 20.0]
    assert view.eta_s() == 3 * 15.0  # three units left after the running one, 15 s each
    view.phase = ("racing repeats", 4, None)
    assert view.eta_s() is None
    assert _clock(65) == "1:05" and _clock(3725) == "1:02:05"


def test_without_a_terminal_every_epoch_is_one_unwrapped_line(monkeypatch):
    log = Console(record=True, width=40, force_terminal=False, file=io.StringIO())
    monkeypatch.setattr(console, "err", log)
    view, _ = _feed(TuneView(_space()))
    assert not view.interactive
    lines = log.export_text().splitlines()
    epochs = [line for line in lines if " epoch " in line]
    assert len(epochs) == 6 and epochs[0].startswith("#0 unet/resnet18 seed 0 fold 0 (screen) epoch 1/2")
    assert all(len(line) > 40 for line in epochs)  # not hard-wrapped at the console's width
