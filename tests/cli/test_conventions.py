"""The command line's conventions: -h, --version, completion, help on every option, environment
variables in the help, and every --format of ensemble."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import optuna
import pytest
import typer.main
from typer.testing import CliRunner

from sweeper.cli import app
from sweeper.cli._app import ENVIRONMENT

runner = CliRunner()
COMMANDS = ["zoo", "check", "demo-data", "plan", "tune", "fidelity", "report", "noise", "ablate", "runs", "ensemble",
            "dashboard"]
WIDE = {"COLUMNS": "200"}


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_h_is_help_everywhere(command):
    short = runner.invoke(app, [*command, "-h"], env=WIDE)
    long = runner.invoke(app, [*command, "--help"], env=WIDE)
    assert short.exit_code == long.exit_code == 0, short.output
    assert short.stdout == long.stdout and "Usage" in short.stdout


def test_every_option_and_argument_has_help():
    root = typer.main.get_command(app)
    missing = [f"{name or 'sweeper'} {param.name}" for name, command in [("", root), *root.commands.items()]
               for param in command.params if not (getattr(param, "help", None) or "").strip()]
    assert not missing


def test_version_prints_the_stack_without_importing_it():
    code = ("import sys\nfrom sweeper.cli import app\n"
            "try:\n    app(['--version'])\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "print('HEAVY', [m for m in ('torch', 'segmentation_models_pytorch', 'optuna') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    from importlib import metadata

    import sweeper

    assert lines[0] == f"sweeper {sweeper.__version__}" == f"sweeper {metadata.version('sweeper')}"
    for dist in ("torch", "segmentation-models-pytorch", "optuna"):
        assert f"{dist} {metadata.version(dist)}" in lines
    assert "HEAVY []" in done.stdout


def test_shell_completion_is_on(monkeypatch):
    """Typer's completion options are there and print the script for the user's shell. Typer finds
    that shell by walking the process tree (shellingham), which a test cannot rely on: after
    some other tests in one process it found none ("Shell  not supported"), so the shell found
    is fixed here."""
    import typer.completion

    help_text = runner.invoke(app, ["--help"], env=WIDE).stdout
    assert "--install-completion" in help_text and "--show-completion" in help_text
    monkeypatch.setattr(typer.completion, "_get_shell_name", lambda: "bash")
    script = runner.invoke(app, ["--show-completion"])
    assert script.exit_code == 0, (script.output, script.exception)
    assert "complete -o default -F _sweeper_completion sweeper" in script.stdout


def test_environment_variables_are_in_the_help():
    root = runner.invoke(app, ["--help"], env=WIDE).stdout
    for name in ("SWEEPER_CACHE_DIR", "SWEEPER_HEARTBEAT_S", "SWEEPER_GRACE_S", "SWEEPER_WORKER_HOST",
                 "HF_HUB_OFFLINE", "SWEEPER_STORAGE", "SWEEPER_DEVICE"):
        assert name in root
    assert len({name for name, _ in ENVIRONMENT}) == len(ENVIRONMENT)
    for command in ("tune", "noise", "ensemble"):
        text = runner.invoke(app, [command, "--help"], env=WIDE).stdout
        assert "SWEEPER_STORAGE" in text and "SWEEPER_DEVICE" in text, command
    for command in ("report", "dashboard"):
        assert "SWEEPER_STORAGE" in runner.invoke(app, [command, "--help"], env=WIDE).stdout
    assert "SWEEPER_DEVICE" in runner.invoke(app, ["check", "--help"], env=WIDE).stdout


def _study(path, name="env"):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{path}", direction="maximize")
    return study


def test_sweeper_storage_is_the_default_storage(tmp_path):
    _study(tmp_path / "from-env.db")
    result = runner.invoke(app, ["report", "--study", "env"], env={"SWEEPER_STORAGE": str(tmp_path / "from-env.db")})
    assert result.exit_code == 2 and "no completed run" in result.stderr, result.output  # it found the study
    result = runner.invoke(app, ["report", "--study", "env", "--storage", str(tmp_path / "other.db")],
                           env={"SWEEPER_STORAGE": str(tmp_path / "from-env.db")})
    assert result.exit_code == 2 and "other.db does not exist" in result.stderr  # the flag wins


def _ensemble_result():
    from sweeper.ensemble import EnsembleResult, Member

    members = [Member(trial=3, candidate="unet/resnet18", seed=0, fold=0, recorded_miou=0.61, miou=0.61),
               Member(trial=7, candidate="fpn/resnet18", seed=0, fold=0, recorded_miou=0.59, miou=0.59)]
    return EnsembleResult(members=members, miou=0.625, pixel_accuracy=0.9, iou=[0.9, 0.35], class_names=["bg", "a"],
                          images=48)


@pytest.mark.parametrize("fmt", ["csv", "markdown", "json", "table"])
def test_ensemble_prints_every_format_it_lists(tmp_path, monkeypatch, fmt):
    import sweeper.ensemble

    _study(tmp_path / "e.db")
    monkeypatch.setattr(sweeper.ensemble, "choose_members", lambda *a, **k: [])
    monkeypatch.setattr(sweeper.ensemble, "evaluate_ensemble", lambda *a, **k: _ensemble_result())
    result = runner.invoke(app, ["ensemble", "--storage", str(tmp_path / "e.db"), "--format", fmt], env=WIDE)
    assert result.exit_code == 0, result.output
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert [r["role"] for r in rows] == ["member", "member", "ensemble"]
        assert [r["trial"] for r in rows] == ["3", "7", ""]
        assert float(rows[2]["miou"]) == 0.625 and float(rows[2]["gain_vs_best_member"]) == pytest.approx(0.015)
        assert float(rows[0]["miou_recorded"]) == 0.61
    elif fmt == "markdown":
        lines = result.stdout.splitlines()
        assert lines[0].startswith("| role | trial |") and len(lines) == 5 and "| 0.6250 |" in lines[-1]
    elif fmt == "json":
        assert '"gain_vs_best_member"' in result.stdout
    else:
        assert "ensemble" in result.stdout and "gain" in result.stdout


def test_help_lists_no_heavy_import_with_completion_on():
    done = subprocess.run([sys.executable, "-c", "import sys\nfrom sweeper.cli import app\n"
                           "try:\n    app(['-h'])\nexcept SystemExit:\n    pass\n"
                           "print('HEAVY', [m for m in ('torch', 'optuna') if m in sys.modules])"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **WIDE})
    assert "HEAVY []" in done.stdout and "Environment" in done.stdout, done.stdout + done.stderr
