"""`sweeper zoo` through the real command: exit codes, one-line errors, clean machine output, light --help."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sweeper.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--max-params", "50MB"], "--max-params"),
        (["--max-params", "-1"], "--max-params"),
        (["--max-params", "abc"], "--max-params"),
        (["--max-params", "0"], "--max-params"),
        (["--arch", "unte"], "did you mean 'unet'"),
        (["--encoder", "resnett*"], "matches no encoder"),
        (["--limit", "0"], "--limit"),
        (["--classes", "0"], "--classes"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle):
    result = runner.invoke(app, ["zoo", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_csv_on_stdout_is_clean_and_diagnostics_go_to_stderr():
    result = runner.invoke(app, ["zoo", "--arch", "unet,dpt", "--encoder", "resnet18", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["arch"], r["encoder"]) for r in rows] == [("unet", "resnet18")]
    assert "cannot be built" in result.stderr  # dpt/resnet18, said on stderr only


def test_json_limit_and_sort():
    pairs = ["--arch", "unet,fpn,linknet", "--encoder", "resnet18"]
    result = runner.invoke(app, ["zoo", *pairs, "--sort", "flops", "--limit", "2", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 2 and rows[0]["gflops"] <= rows[1]["gflops"]
    assert rows[0]["arch"] == "linknet"


def test_table_and_show_invalid():
    result = runner.invoke(
        app, ["zoo", "--max-params", "20M", "--arch", "unet,dpt", "--encoder", "resnet18", "--show-invalid"]
    )
    assert result.exit_code == 0
    assert "unet" in result.stdout and "resnet18" in result.stdout and "14.33" in result.stdout
    assert "Only Timm encoders" in result.stderr


HEAVY = "('torch', 'timm', 'segmentation_models_pytorch', 'albumentations', 'optuna')"


@pytest.mark.parametrize("command", [[], ["zoo"], ["tune"], ["report"], ["check"], ["ensemble"]])
def test_help_does_not_import_heavy_libraries(command):
    argv = [*command, "--help"]
    code = (
        "import sys\nfrom sweeper.cli import app\n"
        f"try:\n    app({argv!r})\nexcept SystemExit:\n    pass\n"
        f"heavy = [m for m in {HEAVY} if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=120)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr
    assert "Usage" in proc.stdout
