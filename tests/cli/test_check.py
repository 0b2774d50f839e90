"""`sweeper check` and `sweeper demo-data` through the real command."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sweeper.cli import app

runner = CliRunner()


def test_check_passes_on_the_demo_data():
    result = runner.invoke(app, ["check", "--n-images", "16", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(lines) == 6 and all(line.startswith("PASS") for line in lines)


def test_check_fails_with_exit_1_on_all_background_masks(tmp_path):
    runner.invoke(app, ["demo-data", str(tmp_path / "demo"), "--n-images", "20", "--size", "64"])
    ann = json.loads((tmp_path / "demo" / "annotations.json").read_text())
    ann["annotations"] = []
    empty = tmp_path / "demo" / "empty.json"
    empty.write_text(json.dumps(ann))
    result = runner.invoke(app, ["check", "--train-json", str(empty), "--image-root", str(tmp_path / "demo" / "images"),
                                 "--n-images", "16"])
    assert result.exit_code == 1, result.output
    assert "FAIL masks are valid" in result.stdout and "background" in result.stdout


def test_check_bad_input_is_one_line(tmp_path):
    result = runner.invoke(app, ["check", "--train-json", str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error:") and "nope.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = runner.invoke(app, ["check", "--encoder", "resnet19"])
    assert result.exit_code == 2 and "did you mean 'resnet18'" in result.stderr


def test_demo_data_writes_a_loadable_dataset_and_refuses_a_full_folder(tmp_path):
    result = runner.invoke(app, ["demo-data", str(tmp_path / "d"), "--n-images", "12", "--size", "64"])
    assert result.exit_code == 0, result.output
    ann = json.loads((tmp_path / "d" / "annotations.json").read_text())
    assert len(ann["images"]) == 12
    again = runner.invoke(app, ["demo-data", str(tmp_path / "d")])
    assert again.exit_code == 2 and "not empty" in again.stderr
