"""`sweeper report` on a small SQLite study of synthetic trials (no training)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

from sweeper.cli import app
from sweeper.sweep.records import REPEAT, SCREEN, CandidateKey, TrialRecord, Unit

runner = CliRunner()


def _record(arch, encoder, seed, **fields):
    """The user attributes sweeper writes for a run of ``arch/encoder`` with ``seed``."""
    unit = Unit(CandidateKey.of(arch, encoder), seed, 0, SCREEN if seed == 0 else REPEAT)
    return TrialRecord(number=0, state=None, unit=unit, **fields).user_attrs()


def _make_study(path, *, name="synthetic"):
    """Three candidates x five seeds: a clear winner, a tie with it, a clear loser."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{path}", direction="maximize")
    rng = np.random.default_rng(0)
    means = {"unet/resnet18": 0.60, "fpn/resnet18": 0.598, "pspnet/mobilenet_v2": 0.50}
    for seed in range(5):
        shared = rng.normal(0, 0.003)  # a seed effect common to all candidates
        for key, mean in means.items():
            arch, encoder = key.split("/")
            value = float(mean + shared + rng.normal(0, 0.002))
            history = [{"epoch": e, "miou": value * (e + 1) / 3, "train_loss": 1.0 / (e + 1)} for e in range(3)]
            study.add_trial(optuna.trial.create_trial(
                value=value, intermediate_values={e: h["miou"] for e, h in enumerate(history)},
                user_attrs=_record(arch, encoder, seed, params_count=14_000_000, history=history),
            ))
    # A failed and a duplicate trial must not count.
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs=_record(
        "fpn", "resnet18", 9, fail_kind="nan")))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, user_attrs=_record(
        "fpn", "resnet18", 0, duplicate_of=1)))
    return study


def test_report_table_markers_and_exports(tmp_path):
    db = tmp_path / "r.db"
    _make_study(db)
    table = runner.invoke(app, ["report", "--storage", str(db), "--study", "synthetic"])
    assert table.exit_code == 0, table.output
    assert "Noise floor" in table.stdout and "★" in table.stdout
    data = json.loads(runner.invoke(app, ["report", "--storage", str(db), "--format", "json",
                                          "--no-dashboard-note"]).stdout)
    rows = {r["key"]: r for r in data["rows"]}
    assert rows["unet/resnet18"]["marker"] == "★"
    assert rows["fpn/resnet18"]["marker"] == "≈"  # 0.002 behind: inside the ROPE
    assert rows["pspnet/mobilenet_v2"]["marker"] == "***"
    assert rows["fpn/resnet18"]["n"] == 5 and len(rows["fpn/resnet18"]["runs"]) == 5
    assert 0 <= rows["pspnet/mobilenet_v2"]["p_improvement"] <= 0.05
    parsed = list(csv.DictReader(io.StringIO(runner.invoke(app, ["report", "--storage", str(db),
                                                                  "--format", "csv"]).stdout)))
    assert [r["key"] for r in parsed] == ["unet/resnet18", "fpn/resnet18", "pspnet/mobilenet_v2"]


def test_report_writes_plots_and_a_dashboard_note(tmp_path):
    db = tmp_path / "p.db"
    _make_study(db)
    plot = tmp_path / "forest.png"
    result = runner.invoke(app, ["report", "--storage", str(db), "--plot", str(plot), "--curves"])
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "forest-curves.png").stat().st_size > 1000
    study = optuna.load_study(study_name="synthetic", storage=f"sqlite:///{db}")
    system_attrs = study._storage.get_study_system_attrs(study._study_id)
    notes = [v for k, v in system_attrs.items() if "note" in k]
    assert any("sweeper ranking" in str(v) for v in notes)


def test_report_errors_are_one_line(tmp_path):
    db = tmp_path / "e.db"
    _make_study(db)
    result = runner.invoke(app, ["report", "--storage", str(db), "--study", "synthetc"])
    assert result.exit_code == 2 and "did you mean 'synthetic'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    optuna.create_study(study_name="empty", storage=f"sqlite:///{db}")
    result = runner.invoke(app, ["report", "--storage", str(db), "--study", "empty"])
    assert result.exit_code == 2 and "no completed run" in result.stderr and "run sweeper tune first" in result.stderr
    pruned = optuna.create_study(study_name="all-pruned", storage=f"sqlite:///{db}")
    for _ in range(2):
        trial = pruned.ask()
        pruned.tell(trial, state=optuna.trial.TrialState.PRUNED)
    result = runner.invoke(app, ["report", "--storage", str(db), "--study", "all-pruned"])
    assert result.exit_code == 2 and "(2 pruned)" in result.stderr and "pruner" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("storage", ["postgresql://u:pw@127.0.0.1:1/x"])
def test_unreachable_storage_is_masked_and_one_line(storage):
    result = runner.invoke(app, ["report", "--storage", storage, "--study", "s"])
    assert result.exit_code == 2, result.output
    assert "pw" not in result.stderr and "***" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
