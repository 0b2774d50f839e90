"""`sweeper fidelity` on the demo data at a tiny size: a real study that resumes without training
again, the CLI's table and JSON, and its one-line errors."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from typer.testing import CliRunner

from sweeper.cli import app
from sweeper.errors import SweeperError
from sweeper.sweep.fidelity import fidelity_seeds, parse_rungs, run_fidelity, sample_candidates
from sweeper.sweep.records import RUNG, SCREEN
from sweeper.sweep.space import parse_space

PAIRS = ["pspnet/mobilenet_v2", "linknet/mobilenet_v2", "pspnet/resnet18"]
TINY = {"name": "tiny", "recipe": {"epochs": 2, "batch_size": 4, "image_size": 64, "lr": 3.0e-3},
        "architectures": {"pairs": PAIRS}, "seeds": [0, 1], "pruner": "none", "trials": 3,
        "screening": {"rungs": [{"epochs": 1}, {"epochs": 2}], "keep": 0.34}}


def tiny_space(**changes):
    raw = json.loads(json.dumps(TINY))
    raw.update(changes)
    space = parse_space(raw, source="tiny.yaml")
    space.base.data.subsample = 24
    return space


def _records(storage, name):
    import optuna

    from sweeper.sweep.records import read_records
    from sweeper.sweep.storage import open_storage

    return read_records(optuna.load_study(study_name=name, storage=open_storage(storage)))


def test_fidelity_trains_every_budget_once_and_resumes_without_training(tmp_path):
    storage = str(tmp_path / "f.db")
    first = run_fidelity(tiny_space(), n_candidates=3, storage=storage, n_boot=200)
    assert first.study_name == "tiny-fidelity" and first.trained == 6 and first.failed == 0
    assert set(first.candidates) == set(PAIRS) and first.seeds == (0,)  # one seed: the screening seed
    assert first.rungs == (1,) and first.full_epochs == 2
    records = _records(storage, "tiny-fidelity")
    runs = [r for r in records if r.is_run]
    assert sorted((r.unit.phase, r.unit.rung, r.config["epochs"]) for r in runs) == \
        [(RUNG, 1, 1)] * 3 + [(SCREEN, None, 2)] * 3  # each budget a run with its own epochs...
    rung_of = {r.unit.candidate: r.number for r in runs if r.unit.rung == 1}
    # ...the full budget going on from its rung under the constant learning rate (epoch 1 carried)
    assert {(r.continued_from, r.resumed_epochs) for r in runs if r.unit.rung is None} == \
        {(rung_of[r.unit.candidate], 1) for r in runs if r.unit.rung is None}
    assert all(len(r.history) == r.config["epochs"] for r in runs)
    assert first.cost_share == pytest.approx((3 * 1 + 2 * 1) / (3 * 2))  # 2 of 3 promoted, adding 1 epoch each
    (row,) = first.fidelity.rungs
    assert -1 <= row.tau <= 1 and math.isfinite(row.tau)
    assert -1 <= row.tau_low <= row.tau_high <= 1
    assert 0 <= row.survival <= 1 and row.survived in (0.0, 1.0) and row.promoted == 2
    # Epoch 1 of the full runs, read from their histories, is the rung-1 run itself: same figures.
    (epoch1,) = first.by_epoch
    assert epoch1 == row and first.values[1] == [[{str(r.unit.candidate): r.value for r in runs
                                                    if r.unit.rung == 1}[c] for c in first.candidates]]
    assert first.values[2] == [[{str(r.unit.candidate): r.value for r in runs if r.unit.rung is None}[c]
                                for c in first.candidates]]
    assert first.best == max(first.candidates, key=lambda c: first.values[2][0][first.candidates.index(c)])
    # Resume: nothing is trained again, the same figures come back.
    again = run_fidelity(tiny_space(), n_candidates=3, storage=storage, n_boot=200)
    assert again.trained == 0
    assert again.fidelity == first.fidelity
    assert [(r.number, r.value) for r in _records(storage, "tiny-fidelity")] == [(r.number, r.value) for r in records]


def test_cli_prints_tau_and_its_interval_and_resumes(tmp_path):
    space = tmp_path / "tiny.yaml"
    raw = json.loads(json.dumps(TINY))
    raw["screening"] = None
    space.write_text(yaml.safe_dump(raw))
    storage = str(tmp_path / "c.db")
    runner = CliRunner()
    args = ["fidelity", "--space", str(space), "--candidates", "3", "--rungs", "1", "--debug", "--storage", storage,
            "--boot", "200"]
    done = runner.invoke(app, [*args, "--format", "json"])
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    assert out["study"] == "tiny-fidelity-debug" and out["full_epochs"] == 2
    (rung,) = out["rungs"]
    assert rung["epochs"] == 1 and {"kendall_tau", "tau_ci_low", "tau_ci_high", "best_survival_boot",
                                    "best_survived"} <= set(rung)
    assert len(out["runs"]) == 6 and all(r["miou"] is not None for r in out["runs"])
    assert "6 new run(s) trained" in done.stderr
    (epoch1,) = out["by_epoch"]  # the full runs' first epoch: the rung-1 runs, bit for bit
    assert epoch1["epochs"] == 1 and epoch1["kendall_tau"] == rung["kendall_tau"]
    table = runner.invoke(app, [*args, "--format", "table"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "0 new run(s) trained" in table.stderr
    assert "Kendall tau" in table.stdout and "95% interval" in table.stdout
    assert f"{rung['kendall_tau']:+.2f}" in table.stdout
    assert "every epoch of the full runs as a single rung" in table.stdout


def test_cli_without_rungs_names_the_option(tmp_path):
    space = tmp_path / "plain.yaml"
    raw = json.loads(json.dumps(TINY))
    raw["screening"] = None
    space.write_text(yaml.safe_dump(raw))
    done = CliRunner().invoke(app, ["fidelity", "--space", str(space), "--storage", str(tmp_path / "x.db")])
    assert done.exit_code == 2
    assert "error: --rungs:" in done.stderr and "declares no screening rungs" in done.stderr
    assert not (tmp_path / "x.db").exists()  # refused before the storage is touched


@pytest.mark.parametrize(("text", "message"), [
    ("3,1", "--rungs[1]: rungs must increase; 1 epochs comes after 3"),
    ("1,x", "--rungs: expected epochs separated by commas"),
    ("0", "--rungs[0]: epochs must be a positive integer"),
    ("9", "--rungs: a rung of 9 epochs is above the recipe's 2 epochs"),
    ("2", "--rungs: no rung is below the recipe's 2 epochs"),
    (",", "--rungs: expected epochs"),
])
def test_rungs_option_is_checked_like_a_space(text, message):
    with pytest.raises(SweeperError) as err:
        parse_rungs(text, tiny_space(screening=None))
    assert message in str(err.value)


def test_rungs_option_overrides_the_space_and_keeps_its_keep():
    assert parse_rungs(None, tiny_space()).epochs == (1,)  # the space's: 2 is the full budget
    rungs = parse_rungs("1", tiny_space())
    assert rungs.epochs == (1,) and rungs.keep == 0.34
    assert parse_rungs("1", tiny_space(screening=None)).keep == pytest.approx(1 / 3)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_candidates": 2}, "--candidates: need at least 3"),
    ({"n_candidates": 3, "keep": 1.5}, "--keep: 1.5 must be a fraction"),
    ({"n_candidates": 3, "n_seeds": 0}, "--seeds: need at least one seed"),
])
def test_bad_options_fail_before_the_storage(tmp_path, kwargs, message):
    with pytest.raises(SweeperError, match=message):
        run_fidelity(tiny_space(), storage=str(tmp_path / "y.db"), **kwargs)
    assert not (tmp_path / "y.db").exists()


def test_seeds_and_the_candidate_sample_are_stable():
    assert fidelity_seeds((0, 1, 2, 3, 4), 3) == (0, 1, 2)
    assert fidelity_seeds((7, 3), 4) == (7, 3, 0, 1)
    items = list(range(20))
    small, large = sample_candidates(items, 5), sample_candidates(items, 12)
    assert set(small) <= set(large) and small == sorted(small) and len(large) == 12
    assert sample_candidates(items, 5) == small and sample_candidates(items, 99) == items


def test_under_a_schedule_every_budget_trains_from_scratch_and_no_epoch_is_read_as_a_rung(tmp_path):
    space = tiny_space(recipe=dict(TINY["recipe"], scheduler="cosine"))
    report = run_fidelity(space, n_candidates=3, storage=str(tmp_path / "c.db"), n_boot=50)
    runs = [r for r in _records(str(tmp_path / "c.db"), "tiny-fidelity") if r.is_run]
    assert report.trained == 6 and report.by_epoch == ()
    assert all(r.continued_from is None and len(r.history) == r.config["epochs"] for r in runs)
    assert any("schedule (cosine) depends on the epochs" in m for m in report.messages)
    assert report.cost_share == pytest.approx((3 * 1 + 2 * 2) / (3 * 2))  # from scratch: 2 promoted x 2 epochs
