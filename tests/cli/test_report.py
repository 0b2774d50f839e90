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


def test_report_table_verdicts_and_exports(tmp_path):
    db = tmp_path / "r.db"
    _make_study(db)
    table = runner.invoke(app, ["report", "--storage", str(db), "--study", "synthetic"])
    assert table.exit_code == 0, table.output
    assert "Noise floor" in table.stdout and "★ best" in table.stdout and "≈ equivalent" in table.stdout
    assert "▼ worse" in table.stdout and "Verdicts: 1 best, 1 equivalent, 1 worse." in table.stdout
    data = json.loads(runner.invoke(app, ["report", "--storage", str(db), "--format", "json",
                                          "--no-dashboard-note"]).stdout)
    rows = {r["key"]: r for r in data["rows"]}
    assert rows["unet/resnet18"]["verdict"] == "best"
    assert rows["fpn/resnet18"]["verdict"] == "equivalent"  # 0.002 behind, interval inside ±0.01
    low, high = rows["fpn/resnet18"]["diff_simultaneous_low"], rows["fpn/resnet18"]["diff_simultaneous_high"]
    assert -0.01 <= low < rows["fpn/resnet18"]["diff_to_best"] < high <= 0.01
    loser = rows["pspnet/mobilenet_v2"]
    assert loser["verdict"] == "worse" and loser["diff_simultaneous_high"] < -0.01
    assert data["verdicts"] == {"best": 1, "equivalent": 1, "worse": 1, "undecided": 0}
    assert rows["fpn/resnet18"]["n"] == 5 and len(rows["fpn/resnet18"]["runs"]) == 5
    assert 0 <= rows["pspnet/mobilenet_v2"]["p_improvement"] <= 0.05
    parsed = list(csv.DictReader(io.StringIO(runner.invoke(app, ["report", "--storage", str(db),
                                                                  "--format", "csv"]).stdout)))
    assert [r["key"] for r in parsed] == ["unet/resnet18", "fpn/resnet18", "pspnet/mobilenet_v2"]
    assert [r["verdict"] for r in parsed] == ["best", "equivalent", "worse"]


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


def _runs_csv(path, text):
    path.write_text(text)
    return str(path)


def test_report_ranks_a_csv_of_runs_made_with_any_tool(tmp_path):
    rng = np.random.default_rng(1)
    lines = ["candidate,seed,fold,value,arch,encoder,notes"]
    for name, mean in (("A", 0.70), ("B", 0.699), ("C", 0.60)):
        for seed in range(4):
            for fold in range(2):
                value = mean + rng.normal(0, 0.001)
                lines.append(f"{name},{seed},{fold},{value!r},unet,enc-{name},run by hand")
    path = _runs_csv(tmp_path / "runs.csv", "\n".join(lines) + "\n")
    result = runner.invoke(app, ["report", "--runs", path, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {r["key"]: r for r in data["rows"]}
    assert [r["verdict"] for r in data["rows"]] == ["best", "equivalent", "worse"]
    assert rows["C"]["n"] == 4 and rows["C"]["encoder"] == "enc-C" and rows["C"]["extra"] == {"notes": "run by hand"}
    table = runner.invoke(app, ["report", "--runs", path, "--rope", "0.0005"])
    assert table.exit_code == 0 and "▼ worse" in table.stdout


def test_report_runs_imports_no_torch(tmp_path):
    import subprocess
    import sys

    path = _runs_csv(tmp_path / "r.csv", "candidate,seed,value\nA,0,0.7\nA,1,0.71\nB,0,0.5\nB,1,0.52\n")
    code = ("import sys; from sweeper.cli import app; "
            f"sys.argv = ['sweeper', 'report', '--runs', {path!r}, '--format', 'csv']\n"
            "try:\n    app()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "assert 'torch' not in sys.modules and 'optuna' not in sys.modules, 'heavy import'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("rank,key,")


@pytest.mark.parametrize("text, needle", [
    ("", "empty"),
    ("candidate,value\nA,0.7\n", "missing column(s) seed"),
    ("candidate,seed,value\n", "no rows"),
    ("candidate,seed,value\nA,0,0.7\nA,1,abc\n", "row 3: value 'abc' is not a number"),
    ("candidate,seed,value\nA,0,nan\n", "row 2: value 'nan' is not finite"),
    ("candidate,seed,value\nA,0,inf\n", "row 2: value 'inf' is not finite"),
    ("candidate,seed,value\nA,0,0.7\nB,0,0.6\nA,0,0.71\n", "row 4: candidate 'A' seed 0 repeats row 2"),
    ("candidate,seed,fold,value\nA,0,1,0.7\nA,0,1,0.7\n", "row 3: candidate 'A' seed 0 fold 1 repeats row 2"),
    ("candidate,seed,value\nA,x,0.7\n", "row 2: seed 'x' is not a whole number"),
    ("candidate,seed,value\n,0,0.7\n", "row 2: candidate is empty"),
    ("candidate,seed,value\nA,0,0.7,9\n", "row 2: more cells"),
])
def test_a_bad_runs_csv_is_one_line_naming_the_row(tmp_path, text, needle):
    path = _runs_csv(tmp_path / "bad.csv", text)
    result = runner.invoke(app, ["report", "--runs", path])
    assert result.exit_code == 2, result.output
    assert needle in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    missing = runner.invoke(app, ["report", "--runs", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
