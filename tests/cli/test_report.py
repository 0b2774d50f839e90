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


def _notes(db) -> list[str]:
    study = optuna.load_study(study_name="synthetic", storage=f"sqlite:///{db}")
    system_attrs = study._storage.get_study_system_attrs(study._study_id)
    return [str(v) for k, v in system_attrs.items() if "note" in k]


def test_report_writes_plots_and_the_note_only_with_save_note(tmp_path):
    db = tmp_path / "p.db"
    _make_study(db)
    plot, curves = tmp_path / "forest.png", tmp_path / "curves.svg"
    result = runner.invoke(app, ["report", "--storage", str(db), "--plot", str(plot), "--curves", str(curves)])
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert curves.read_text().lstrip().startswith("<?xml") and f"wrote {curves}" in result.stderr
    assert not _notes(db)  # report only reads
    alone = tmp_path / "alone.png"  # --curves without --plot is not ignored
    result = runner.invoke(app, ["report", "--storage", str(db), "--curves", str(alone)])
    assert result.exit_code == 0, result.output
    assert alone.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = runner.invoke(app, ["report", "--storage", str(db), "--save-note"])
    assert result.exit_code == 0 and "dashboard note" in result.stderr, result.output
    assert any("sweeper ranking" in v for v in _notes(db))
    # The note says plainly that the dashboard's "Best Trial" is one run, and names sweeper's best.
    assert any("single best *run* (one seed)" in v and "**unet/resnet18**" in v for v in _notes(db))


def test_the_old_note_flags_still_work(tmp_path):
    db = tmp_path / "o.db"
    _make_study(db)
    assert runner.invoke(app, ["report", "--storage", str(db), "--no-dashboard-note"]).exit_code == 0
    assert not _notes(db)
    assert runner.invoke(app, ["report", "--storage", str(db), "--dashboard-note"]).exit_code == 0
    assert any("sweeper ranking" in v for v in _notes(db))
    assert "--dashboard-note" not in runner.invoke(app, ["report", "--help"]).stdout  # hidden


@pytest.mark.parametrize("args, needle", [
    (["--curves", "curves.txt"], "--curves: curves.txt should end in .png, .pdf or .svg"),
    (["--curves", "nowhere/c.png"], "--curves: folder nowhere does not exist"),
])
def test_bad_curves_paths_are_one_line(tmp_path, args, needle, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _make_study(tmp_path / "c.db")
    result = runner.invoke(app, ["report", "--storage", "c.db", *args])
    assert result.exit_code == 2 and needle in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1


def _without_file_permission_override(argv: list[str]) -> list[str]:
    """``argv`` as a root process that file permissions bind (no CAP_DAC_OVERRIDE): root ignores
    a read-only mode otherwise."""
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", *argv]


def test_report_leaves_a_read_only_storage_byte_for_byte(tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "shared"
    folder.mkdir()
    db = folder / "team.db"
    _make_study(db)
    before, mtime = db.read_bytes(), db.stat().st_mtime_ns
    db.chmod(0o444)
    folder.chmod(0o555)
    try:
        figures = ["--plot", str(tmp_path / "f.png"), "--curves", str(tmp_path / "c.png")]
        for args in ([], ["--format", "json"], figures):
            result = runner.invoke(app, ["report", "--storage", str(db), *args])
            assert result.exit_code == 0, result.output
        assert "★ best" in runner.invoke(app, ["report", "--storage", str(db)]).stdout
        # Bytes, time stamp and folder unchanged: nothing was written, not even by root (whom the
        # file's mode does not stop).
        assert db.read_bytes() == before and db.stat().st_mtime_ns == mtime
        assert sorted(p.name for p in folder.iterdir()) == ["team.db"]
        argv = [sys.executable, "-m", "sweeper.cli", "report", "--storage", str(db)]
        if os.geteuid() != 0:  # the file's mode binds this process: writing the note must fail, in one line
            refused = runner.invoke(app, ["report", "--storage", str(db), "--save-note"])
            assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.output
        elif shutil.which("setpriv"):  # as root: the same in a process that the file's mode binds
            done = subprocess.run(_without_file_permission_override(argv), capture_output=True, text=True,
                                  timeout=120, cwd=tmp_path)
            assert done.returncode == 0 and "★ best" in done.stdout, done.stderr
            done = subprocess.run(_without_file_permission_override([*argv, "--save-note"]), capture_output=True,
                                  text=True, timeout=120, cwd=tmp_path)
            assert done.returncode == 2 and done.stderr.count("error:") == 1, done.stderr
            assert "Traceback" not in done.stderr
        assert db.read_bytes() == before and db.stat().st_mtime_ns == mtime
    finally:
        folder.chmod(0o755)
        db.chmod(0o644)


def test_report_on_an_empty_sqlite_file_is_one_line_and_writes_nothing(tmp_path):
    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    result = runner.invoke(app, ["report", "--storage", str(db)])
    assert result.exit_code == 2 and "empty" in result.stderr, result.output
    assert db.read_bytes() == b""


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


def test_the_trivial_baseline_is_shown_and_warns_when_no_model_beats_it(tmp_path):
    from sweeper.sweep.records import write_study

    db = tmp_path / "b.db"
    study = _make_study(db)
    write_study(study, baseline_miou=0.20)
    shown = runner.invoke(app, ["report", "--storage", str(db)])
    assert shown.exit_code == 0, shown.output
    assert "Trivial baseline: predicting the majority class everywhere scores mIoU 0.2000" in shown.stdout
    assert "no model learned" not in shown.output
    write_study(study, baseline_miou=0.595)  # the best (about 0.60) is within the ROPE of it
    warned = runner.invoke(app, ["report", "--storage", str(db), "--format", "json"])
    data = json.loads(warned.stdout)
    assert data["baseline_miou"] == 0.595 and data["no_model_learned"] is True
    assert any("no model learned the task" in w for w in data["warnings"])
