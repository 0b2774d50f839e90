"""`sweeper plan` (= `tune --dry-run`): the screening order, the runs of each phase, what is
done in a real study, and a storage left exactly as it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sweeper.cli import app

runner = CliRunner()
ENV = {"COLUMNS": "200", "SWEEPER_STORAGE": None}


def write_space(folder, name="tiny", **changes) -> str:
    raw = {"name": name, "recipe": {"epochs": 4, "batch_size": 4, "image_size": 64},
           "architectures": {"pairs": ["pspnet/mobilenet_v2", "pspnet/resnet18"]}, "seeds": [0, 1], "trials": 2,
           "pruner": "none"}
    raw.update(changes)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def plan_json(*args) -> dict:
    result = runner.invoke(app, ["plan", *args, "--format", "json"], env=ENV)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_candidates_come_in_resolve_candidates_order_and_the_first_are_screened(tmp_path, monkeypatch):
    from sweeper.sweep.candidates import resolve_candidates
    from sweeper.sweep.space import load_space
    from sweeper.training import prepare_data

    monkeypatch.chdir(tmp_path)
    space = write_space(tmp_path, architectures={"archs": ["unet", "fpn"],
                                                 "encoders": ["resnet18", "mobilenet_v2"]}, trials=3)
    got = plan_json("--space", space, "--estimate", "none")
    spec = load_space(space)
    expected = resolve_candidates(spec, prepare_data(spec.base).num_classes)
    assert [(c["arch"], c["encoder"]) for c in got["candidates"]] == [(c.arch, c.encoder) for c in expected]
    assert [c["params"] for c in got["candidates"]] == [c.params for c in expected]
    assert [c["gflops"] for c in got["candidates"]] == [round(c.gflops, 3) for c in expected]
    assert [c["screened"] for c in got["candidates"]] == [True] * 3 + [False] * (len(expected) - 3)
    assert [c["order"] for c in got["candidates"]] == list(range(1, len(expected) + 1))
    assert got["estimate_method"] == "none" and got["seconds_best"] is None and got["screened"] == 3
    assert got["storage"].endswith("sweeper.db") and not got["study_exists"]
    assert not (tmp_path / "sweeper.db").exists()  # the default storage is looked at, not created


FIVE = ["pspnet/mobilenet_v2", "pspnet/resnet18", "fpn/mobilenet_v2", "fpn/resnet18", "unet/mobilenet_v2"]


@pytest.mark.parametrize("trials, racing, sizes, repeats", [
    (10, True, [5, 3, 2], (0, 2 * 2 * 2)),  # keep 0.5: ceil(2.5) = 3, ceil(1.5) = 2; 2 further seeds x 2 folds
    (4, True, [2, 1, 1], (0, 1 * 2 * 2)),  # trials counts every fold's run: 4 // 2 folds = 2 screened
    (10, False, [5, 3, 2], (2 * 2 * 2, 2 * 2 * 2)),  # racing off: the three best (here both) get every seed
])
def test_runs_of_each_phase_with_rungs_and_folds(tmp_path, trials, racing, sizes, repeats):
    space = write_space(tmp_path, architectures={"pairs": FIVE}, split={"scheme": "kfold", "n_splits": 2},
                        folds=[0, 1], seeds=[0, 1, 2], trials=trials, racing=racing,
                        screening={"rungs": [1, 2], "keep": 0.5})
    got = plan_json("--space", space, "--estimate", "none", "--storage", str(tmp_path / "none.db"))
    phases = got["phases"]
    assert [p["phase"] for p in phases] == ["rung", "rung", "screen", "repeat"]
    assert [p["epochs"] for p in phases] == [1, 2, 4, 4]
    assert [p["candidates"] for p in phases[:3]] == sizes
    assert [(p["runs_best"], p["runs_worst"]) for p in phases[:3]] == [(2 * n, 2 * n) for n in sizes]
    assert (phases[3]["runs_best"], phases[3]["runs_worst"]) == repeats
    screen_runs = 2 * sum(sizes)
    assert (got["runs_best"], got["runs_worst"]) == (screen_runs + repeats[0], screen_runs + repeats[1])
    # The worst case: every candidate at the full budget gets every seed on every fold.
    if racing:
        assert got["runs_worst"] - 2 * sum(sizes[:-1]) == sizes[-1] * 3 * 2
    assert got["screened"] == sizes[0] and got["rungs"] == {"epochs": [1, 2], "keep": 0.5, "continued": True}
    # The disk the first rung's states may take: every screened candidate on both folds, Adam.
    from sweeper.sweep.rungs import state_bytes

    assert state_bytes(1_000_000, "adam") == 16_000_000 and state_bytes(10, "sgd") == 80
    assert any("saved states take up to" in note for note in got["notes"])
    assert not (tmp_path / "none.db").exists()


def test_a_space_with_one_seed_has_no_racing_and_a_table_by_default(tmp_path):
    space = write_space(tmp_path, seeds=[0])
    got = plan_json("--space", space, "--estimate", "none", "--storage", str(tmp_path / "none.db"))
    assert [p["phase"] for p in got["phases"]] == ["screen"] and got["runs_best"] == got["runs_worst"] == 2
    result = runner.invoke(app, ["plan", "--space", space, "--estimate", "none", "--storage",
                                 str(tmp_path / "none.db")], env=ENV)
    assert result.exit_code == 0, result.output
    assert "pspnet" in result.stdout and "screening (4 epochs)" in result.stdout and "nothing done yet" in result.stdout


@pytest.fixture(scope="module")
def real_study(tmp_path_factory):
    """A real study of two pairs with one cheaper rung, trained for real (tune --debug: 32 images
    at 64 px, 1 and 2 epochs): 2 rung runs, 1 screening run, and racing's repeats."""
    from sweeper.sweep.space import apply_overrides, load_space
    from sweeper.sweep.study import run_sweep

    folder = tmp_path_factory.mktemp("real")
    space = write_space(folder, recipe={"epochs": 2, "batch_size": 4, "image_size": 64},
                        screening={"rungs": [1], "keep": 0.5})
    storage = str(folder / "study.db")
    run_sweep(apply_overrides(load_space(space), debug=True), storage=storage, study_name="tiny-debug")
    return space, storage


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_real_study_shows_what_is_done_and_stays_byte_identical(real_study):
    import optuna

    from sweeper.sweep.records import read_records
    from sweeper.sweep.storage import open_storage

    space, storage = real_study
    folder = Path(storage).parent
    # The database and its write-ahead log (the fixture's open connection keeps one) stay as they
    # were, and no file appears; SQLite's shared-memory index is its readers' scratch space.
    before = {p.name: _digest(p) for p in folder.iterdir() if not p.name.endswith("-shm")}
    stamp = Path(storage).stat().st_mtime_ns
    got = plan_json("--space", space, "--debug", "--storage", storage, "--estimate", "none")
    assert {p.name: _digest(p) for p in folder.iterdir() if not p.name.endswith("-shm")} == before
    assert Path(storage).stat().st_mtime_ns == stamp

    records = read_records(optuna.load_study(study_name="tiny-debug", storage=open_storage(storage)))
    settled = [r for r in records if r.holds_unit and not r.is_running]
    by_phase = {}
    for r in settled:
        by_phase[r.unit.phase] = by_phase.get(r.unit.phase, 0) + 1
    assert got["study_exists"] and got["study"] == "tiny-debug"
    rung, screen, repeat = got["phases"]
    assert (rung["done"], rung["runs_worst"]) == (by_phase["rung"], 2) == (2, 2)
    assert (screen["done"], screen["candidates"], screen["candidates_known"]) == (by_phase["screen"], 1, True)
    assert repeat["done"] == by_phase.get("repeat", 0) <= 1 and repeat["runs_worst"] == 1
    assert got["done"] == len(settled) and got["complete"]
    promoted = [r.unit.candidate.pair for r in settled if r.unit.phase == "screen"]
    assert len(promoted) == 1  # the rung promoted one of two (keep 0.5), and the plan knows which


def test_a_timed_plan_of_a_finished_study_has_nothing_left(real_study):
    space, storage = real_study
    got = plan_json("--space", space, "--debug", "--storage", storage)
    assert got["estimate_method"] == "flops" and got["device"] == "cpu" and "screened pair(s) timed" in got["estimate"]
    rung, screen, repeat = got["phases"]
    assert rung["seconds_worst"] > 0 and screen["seconds_worst"] > 0
    assert rung["remaining_seconds_worst"] == screen["remaining_seconds_worst"] == 0
    # The sweep ran to its end: the plan (racing included) has nothing left, whatever the worst case was.
    assert got["complete"] and repeat["remaining_seconds_worst"] == got["remaining_seconds_worst"] == 0
    assert all(c["run_s"] > 0 for c in got["candidates"])
    assert got["seconds_worst"] == pytest.approx(sum(p["seconds_worst"] for p in got["phases"]), abs=0.5)


def test_no_storage_is_created_sqlite_journal_or_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = write_space(tmp_path)
    for target in ("missing.db", "missing.log"):
        got = plan_json("--space", space, "--estimate", "none", "--storage", str(tmp_path / target))
        assert not got["study_exists"] and got["done"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


def test_an_empty_file_and_another_study_are_nothing_done(tmp_path, real_study):
    space, storage = real_study
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert not plan_json("--space", space, "--estimate", "none", "--storage", str(empty))["study_exists"]
    assert empty.read_bytes() == b""
    other = plan_json("--space", space, "--estimate", "none", "--storage", storage, "--study", "other")
    assert not other["study_exists"] and other["done"] == 0


def test_tune_dry_run_prints_the_same_plan(tmp_path):
    space = write_space(tmp_path, recipe={"epochs": 1, "batch_size": 4, "image_size": 64})
    storage = str(tmp_path / "dry.db")
    result = runner.invoke(app, ["tune", "--space", space, "--debug", "--dry-run", "--format", "json", "--storage",
                                 storage], env=ENV)
    assert result.exit_code == 0, result.output
    dry = json.loads(result.stdout)
    planned = plan_json("--space", space, "--debug", "--estimate", "none", "--storage", storage)
    assert [(c["arch"], c["encoder"], c["params"]) for c in dry["candidates"]] == [
        (c["arch"], c["encoder"], c["params"]) for c in planned["candidates"]]
    assert [(p["label"], p["runs_best"], p["runs_worst"]) for p in dry["phases"]] == [
        (p["label"], p["runs_best"], p["runs_worst"]) for p in planned["phases"]]
    assert (dry["study"], dry["runs_best"], dry["runs_worst"]) == ("tiny-debug", planned["runs_best"],
                                                                   planned["runs_worst"])
    assert dry["estimate_method"] == "flops" and dry["seconds_worst"] > 0
    assert not (tmp_path / "dry.db").exists()
    bad = runner.invoke(app, ["tune", "--space", space, "--dry-run", "--format", "csv"], env=ENV)
    assert bad.exit_code == 2 and "table or json" in bad.output


def test_bad_space_keys_fail_as_everywhere(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("recipe: {epochs: 2}\ntrails: 3\n")
    result = runner.invoke(app, ["plan", "--space", str(path)], env=ENV)
    assert result.exit_code == 2 and "error:" in result.output and "trials" in result.output


@pytest.mark.parametrize("scheduler, added", [("none", 3), ("cosine", 4)])
def test_a_half_done_ladder_costs_the_very_candidates_it_promoted(scheduler, added):
    """Pure preview logic on hand-made records: once a rung has settled, the plan knows which
    candidates go on and costs exactly those; what is done is subtracted. Under a constant
    learning rate a promoted run goes on from its rung and costs only the epochs it adds (3 of
    4); under a schedule it trains all 4 again."""
    from optuna.trial import TrialState

    from sweeper.sweep.estimate import CostModel
    from sweeper.sweep.preview import preview_tune
    from sweeper.sweep.records import RUNG, SCREEN, CandidateKey, TrialRecord, Unit
    from sweeper.sweep.space import parse_space
    from sweeper.zoo import Candidate

    pairs = ["pspnet/mobilenet_v2", "pspnet/resnet18", "fpn/resnet18"]
    recipe = {"epochs": 4, "batch_size": 4, "image_size": 64, "scheduler": scheduler}
    space = parse_space({"name": "h", "recipe": recipe,
                         "architectures": {"pairs": pairs}, "seeds": [0, 1], "trials": 3, "pruner": "none",
                         "screening": {"rungs": [1], "keep": 0.5}}, source="h.yaml")
    candidates = [Candidate(a, e, params=1, encoder_params=1, decoder_params=0, gflops=1.0)
                  for a, e in (p.split("/") for p in pairs)]
    # One second per image of training for the first pair, two for the second, four for the third.
    cost = CostModel(method="flops", device="cpu", batch_size=4, images={0: (4, 0)}, setup_s=0.0,
                     unit_overhead_s=0.0, pair_k={p: (2.0 ** i, 0.0) for i, p in enumerate(pairs)})
    per_epoch = [cost.epoch_s(c, 0) for c in candidates]
    assert per_epoch == [4.0, 8.0, 16.0]
    keys = [CandidateKey.of(c.arch, c.encoder) for c in candidates]

    def record(n, key, phase, rung, value):
        return TrialRecord(number=n, state=TrialState.COMPLETE, value=value, unit=Unit(key, 0, 0, phase, rung))

    empty = preview_tune(space, candidates, study="h", cost=cost)
    rung, screen, repeat = empty.phases
    assert (rung.seconds_worst, rung.known, screen.known, screen.candidates) == (28.0, True, False, 2)
    assert screen.seconds_worst == pytest.approx(2 * added * 28.0 / 3)  # two of three, at the mean
    assert empty.rungs_continue is (scheduler == "none")
    rungs_done = [record(i, k, RUNG, 1, v) for i, (k, v) in enumerate(zip(keys, (0.5, 0.3, 0.4)))]
    half = preview_tune(space, candidates, study="h", cost=cost, records=rungs_done + [
        record(3, keys[0], SCREEN, None, 0.6)])
    rung, screen, repeat = half.phases
    assert rung.done == 3 and rung.remaining_worst_s == 0.0
    assert (screen.known, screen.candidates, screen.done) == (True, 2, 1)  # the first and the third go on
    assert screen.seconds_worst == added * (4.0 + 16.0) and screen.remaining_worst_s == added * 16.0
    assert (repeat.runs_best, repeat.runs_worst) == (0, 2) and repeat.seconds_worst == 4 * (4.0 + 16.0)
    assert half.done == 4 and not half.complete and half.remaining_worst_s == added * 16.0 + 4 * (4.0 + 16.0)
