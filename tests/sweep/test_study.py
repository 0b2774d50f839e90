"""`tune` on real Optuna storages at a tiny size: resume, grouping, common seeds, faults, workers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import yaml

from sweeper.errors import SweeperError
from sweeper.sweep.dashboard import dashboard_command
from sweeper.sweep.records import REPEAT, SCREEN, TrialRecord, completed_runs
from sweeper.sweep.space import parse_space
from sweeper.sweep.storage import open_storage
from sweeper.sweep.study import run_sweep

TINY = {
    "name": "tiny",
    "recipe": {"epochs": 1, "batch_size": 4, "image_size": 64, "lr": 3.0e-3},
    "architectures": {"pairs": ["pspnet/mobilenet_v2", "linknet/mobilenet_v2", "pspnet/resnet18"]},
    "seeds": [0, 1, 2],
    "pruner": "none",
    "trials": 3,
}


def tiny_space(**changes):
    raw = json.loads(json.dumps(TINY))
    raw.update(changes)
    space = parse_space(raw, source="tiny.yaml")
    space.base.data.subsample = 24
    return space


def _trials(storage, name="tiny"):
    """The study's trials, as records."""
    import optuna

    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    return [TrialRecord.from_trial(t) for t in study.get_trials()]


def _complete_units(trials):
    return Counter(t.unit.key for t in trials if t.is_run)


def test_sweep_ranks_resumes_and_uses_common_seeds(tmp_path):
    storage = str(tmp_path / "s.db")
    first = run_sweep(tiny_space(), storage=storage)
    trials = _trials(storage)
    assert first.trained == len(trials) >= 3
    assert first.ranking is not None
    assert {row.candidate.key for row in first.ranking.rows} == {"pspnet/mobilenet_v2", "linknet/mobilenet_v2",
                                                                 "pspnet/resnet18"}
    # Grouping: every finished trial lands in its candidate's column, seeds as rows.
    runs = {str(k): c for k, c in completed_runs(trials).items()}
    assert Counter({k: len(c.runs) for k, c in runs.items()}) == Counter(str(t.unit.candidate) for t in trials)
    assert runs["pspnet/resnet18"].params > runs["pspnet/mobilenet_v2"].params
    # Common random numbers: a candidate with k seeds has exactly the first k of the list.
    seeds = {}
    for t in trials:
        seeds.setdefault(t.unit.candidate, []).append(t.unit.seed)
    for got in seeds.values():
        assert sorted(got) == [0, 1, 2][: len(got)]
    assert max(_complete_units(trials).values()) == 1
    for t in trials:  # what the dashboard shows of a run
        for key in ("config", "history", "per_class_iou", "params_count", "wall_time_s", "images_per_s", "versions"):
            assert getattr(t, key) is not None, key
    # The trivial baseline is recorded with the study and shown under the table.
    import optuna

    from sweeper.sweep.records import StudyRecord
    from sweeper.sweep.study import trivial_miou
    from sweeper.training import prepare_data

    space = tiny_space()
    stored = StudyRecord.from_study(optuna.load_study(study_name="tiny", storage=open_storage(storage))).baseline_miou
    assert stored == pytest.approx(trivial_miou(prepare_data(space.base))) and 0 < stored < 1
    assert first.ranking.baseline == stored
    opened = optuna.load_study(study_name="tiny", storage=open_storage(storage))
    assert opened.metric_names == ["mIoU"]  # the dashboard's axis and `optuna trials` say what the value is
    best = StudyRecord.from_study(opened).ranked_best  # sweeper's answer, for anyone reading the storage
    assert best["candidate"] == first.ranking.best_key and best["n"] == first.ranking.rows[0].n
    assert sum(best["verdicts"].values()) == len(first.ranking.rows)
    # Optuna's own views see the candidate: arch and encoder are the trials' params.
    assert [t.params for t in opened.get_trials()] == [
        {"arch": t.unit.candidate.arch, "encoder": t.unit.candidate.encoder} for t in trials]
    importances = optuna.importance.get_param_importances(opened)
    assert set(importances) == {"arch", "encoder"}
    # One epoch on 24 images learns little: the warning says so exactly when the best is within the ROPE.
    assert first.ranking.no_model_learned == (first.ranking.rows[0].mean - stored <= 0.01)
    # Resume: the same command trains nothing new and keeps every trial.
    again = run_sweep(tiny_space(), storage=storage)
    assert again.trained == 0
    assert [(t.number, t.value) for t in _trials(storage)] == [(t.number, t.value) for t in trials]


def test_candidate_params_keep_the_study_choices_when_the_space_grows(tmp_path):
    """A categorical's choices are fixed for a study: resuming with a wider pair list reuses the
    stored ones, and a value outside them is left out of that trial's params, not refused."""
    import optuna

    storage = str(tmp_path / "s.db")
    pairs = ["pspnet/mobilenet_v2", "linknet/mobilenet_v2"]
    run_sweep(tiny_space(architectures={"pairs": pairs}, seeds=[0], trials=2), storage=storage)
    wider = pairs + ["pspnet/resnet18"]
    again = run_sweep(tiny_space(architectures={"pairs": wider}, seeds=[0], trials=3), storage=storage)
    assert again.trained == 1 and again.failed == 0
    study = optuna.load_study(study_name="tiny", storage=open_storage(storage))
    done = study.get_trials()
    assert sorted(map(str, [t.params for t in done[:2]])) == sorted(map(str, [
        {"arch": "pspnet", "encoder": "mobilenet_v2"}, {"arch": "linknet", "encoder": "mobilenet_v2"}]))
    assert done[2].params == {"arch": "pspnet"}  # resnet18 was not among the study's encoders
    assert done[0].distributions["arch"].choices == ("linknet", "pspnet")


def test_uniform_repeats_give_the_leaders_every_seed(tmp_path):
    storage = str(tmp_path / "u.db")
    # Four candidates: the three best by their screening run get both seeds, the fourth none.
    four = {"pairs": TINY["architectures"]["pairs"] + ["fpn/mobilenet_v2"]}
    run_sweep(tiny_space(racing=False, seeds=[0, 1], trials=4, architectures=four), storage=storage)
    trials = _trials(storage)
    seeds = {}
    for t in trials:
        seeds.setdefault(str(t.unit.candidate), set()).add(t.unit.seed)
    screening = {str(t.unit.candidate): t.value for t in trials if t.unit.phase == SCREEN}
    top3 = sorted(screening, key=screening.get, reverse=True)[:3]
    assert len(seeds) == 4 and {c for c, s in seeds.items() if s == {0, 1}} == set(top3)
    assert [s for c, s in seeds.items() if c not in top3] == [{0}]


@pytest.mark.parametrize("fault, needle", [("nan", "loss"), ("oom", "out of memory"), ("build", "build"),
                                           ("worker", "DataLoader worker")])
def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch, fault, needle):
    from optuna.trial import TrialState

    monkeypatch.setenv("SWEEPER_FAULT", f"{fault}@linknet/*")
    storage = str(tmp_path / "f.db")
    summary = run_sweep(tiny_space(seeds=[0]), storage=storage)
    trials = _trials(storage)
    states = {str(t.unit.candidate): t.state for t in trials}
    assert states["linknet/mobilenet_v2"] == TrialState.FAIL
    failed = [t for t in trials if t.state == TrialState.FAIL][0]
    assert failed.fail_kind == {"worker": "dataloader"}.get(fault, fault)
    assert needle in failed.fail_reason
    assert states["pspnet/mobilenet_v2"] == states["pspnet/resnet18"] == TrialState.COMPLETE
    assert summary.failed == 1 and len(summary.ranking.rows) == 2
    # A run that failed by itself is not retried: it would fail the same way.
    monkeypatch.delenv("SWEEPER_FAULT")
    assert run_sweep(tiny_space(seeds=[0]), storage=storage).trained == 0


def test_rungs_on_the_demo_data_train_the_cheap_rung_then_the_promoted_at_full_budget(tmp_path):
    """A real screen by rungs: 3 candidates at 1 epoch, the best 2 at 2 epochs; the table ranks
    only the full-budget runs and lists the third apart, ranked at its rung."""
    from typer.testing import CliRunner

    from sweeper.cli import app

    raw = dict(TINY, recipe=dict(TINY["recipe"], epochs=2), seeds=[0], screening={"rungs": [1], "keep": 0.5})
    path = tmp_path / "rungs.yaml"
    path.write_text(yaml.safe_dump(raw))
    storage = str(tmp_path / "r.db")
    result = CliRunner().invoke(app, ["tune", "--space", str(path), "--storage", storage, "--debug"])
    assert result.exit_code == 0, result.output
    trials = _trials(storage, name="tiny-debug")
    rung = [t for t in trials if t.unit.rung == 1]
    full = [t for t in trials if t.unit.rung is None]
    assert len(rung) == 3 and len(full) == 2 and len(trials) == 5
    assert all(t.config["epochs"] == 1 and len(t.history) == 1 for t in rung)
    assert all(t.config["epochs"] == 2 and len(t.history) == 2 for t in full)
    best_two = sorted(rung, key=lambda t: -t.value)[:2]
    assert {t.unit.candidate for t in full} == {t.unit.candidate for t in best_two}
    stopped = next(t for t in rung if t.unit.candidate not in {f.unit.candidate for f in full})
    report = CliRunner().invoke(app, ["report", "--storage", storage, "--study", "tiny-debug", "--format", "json"])
    assert report.exit_code == 0, report.output
    data = json.loads(report.stdout)
    assert {row["key"] for row in data["rows"]} == {str(t.unit.candidate) for t in full}
    assert [(s["key"], s["rung_epochs"], s["full_epochs"], s["rank_at_rung"], s["of"]) for s in data["stopped"]] \
        == [(str(stopped.unit.candidate), 1, 2, 3, 3)]
    table = CliRunner().invoke(app, ["report", "--storage", storage, "--study", "tiny-debug"])
    assert "stopped at epoch 1 of 2: rank 3 of 3 at that rung" in table.stdout
    assert CliRunner().invoke(app, ["tune", "--space", str(path), "--storage", storage, "--debug"]).exit_code == 0
    assert len(_trials(storage, name="tiny-debug")) == 5  # resumed: nothing trained again
    # A keep that would promote all three, after the screen: the study keeps the one it began with.
    path.write_text(yaml.safe_dump(dict(raw, screening={"rungs": [1], "keep": 0.9})))
    again = CliRunner().invoke(app, ["tune", "--space", str(path), "--storage", storage, "--debug"])
    assert again.exit_code == 0 and "screens as it began (rungs 1 epochs, keep 0.5)" in " ".join(again.output.split())
    assert len(_trials(storage, name="tiny-debug")) == 5


def test_noise_runs_one_baseline_with_n_seeds(tmp_path):
    from typer.testing import CliRunner

    from sweeper.cli import app

    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(TINY))
    storage = str(tmp_path / "n.db")
    result = CliRunner().invoke(app, ["noise", "--space", str(space), "--arch", "pspnet", "--encoder", "mobilenet_v2",
                                      "--n-seeds", "3", "--storage", storage])
    assert result.exit_code == 0, result.output
    assert "sd (sigma)" in result.stdout and "5 seeds each" in result.stdout and "ROPE" in result.stdout
    trials = _trials(storage, name="tiny-noise")
    assert sorted(t.unit.seed for t in trials) == [0, 1, 2]
    assert {t.unit.phase for t in trials} == {"noise"}


def test_hyperparameter_space_samples_and_repeats_the_same_values(tmp_path):
    space = tiny_space(
        architectures={"pairs": ["pspnet/mobilenet_v2"]},
        hparams={"lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True}, "loss": ["ce", "dice"]},
        seeds=[0, 1],
    )
    storage = str(tmp_path / "h.db")
    run_sweep(space, storage=storage)
    import optuna

    trials = optuna.load_study(study_name="tiny", storage=open_storage(storage)).get_trials()
    screened = [t for t in trials if TrialRecord.from_trial(t).unit.phase == SCREEN]
    assert len(screened) == 3 and all(set(t.params) == {"lr", "loss"} for t in screened)
    repeats = [t for t in trials if TrialRecord.from_trial(t).unit.phase == REPEAT]
    assert repeats
    for t in repeats:
        twin = [s for s in screened
                if TrialRecord.from_trial(s).unit.candidate == TrialRecord.from_trial(t).unit.candidate]
        assert t.params == twin[0].params and TrialRecord.from_trial(t).config["lr"] == twin[0].params["lr"]


def test_a_resumed_study_must_use_the_same_split(tmp_path):
    storage = str(tmp_path / "split.db")
    run_sweep(tiny_space(seeds=[0], architectures={"pairs": ["pspnet/mobilenet_v2"]}), storage=storage)
    other = tiny_space(seeds=[0], architectures={"pairs": ["pspnet/mobilenet_v2"]}, split={"seed": 5})
    with pytest.raises(SweeperError, match="different data split"):
        run_sweep(other, storage=storage)


def test_a_missing_storage_folder_is_refused_before_training(tmp_path):
    with pytest.raises(SweeperError, match="does not exist"):
        run_sweep(tiny_space(), storage=str(tmp_path / "missing" / "x.db"))


def _write_space(tmp_path: Path, **changes) -> Path:
    raw = json.loads(json.dumps(TINY))
    raw.update(changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_two_workers_on_one_journal_file_run_no_unit_twice(tmp_path):
    from optuna.trial import TrialState

    space = _write_space(tmp_path, seeds=[0, 1], recipe={**TINY["recipe"], "epochs": 1})
    journal = tmp_path / "journal.log"
    cmd = [sys.executable, "-m", "sweeper.cli", "tune", "--space", str(space), "--storage", str(journal), "--debug",
           "--format", "csv"]
    workers = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, err
    trials = _trials(str(journal), name="tiny-debug")
    units = _complete_units(trials)
    assert units and max(units.values()) == 1
    screened = {t.unit.candidate for t in trials if t.is_run and t.unit.seed == 0}
    assert len(screened) == 3
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert all(t.is_duplicate for t in trials if t.state == TrialState.PRUNED)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_study_over_http(tmp_path):
    storage = str(tmp_path / "d.db")
    run_sweep(tiny_space(seeds=[0], architectures={"pairs": ["pspnet/mobilenet_v2"]}), storage=storage)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "dashboard", "--storage", storage,
                             "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                studies = json.load(urllib.request.urlopen(f"{base}/api/studies", timeout=5))
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.5)
        study = [s for s in studies["study_summaries"] if s["study_name"] == "tiny"][0]
        detail = json.load(urllib.request.urlopen(f"{base}/api/studies/{study['study_id']}?after=0", timeout=10))
        trial = detail["trials"][0]
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert attrs["candidate"] == "pspnet/mobilenet_v2" and "history" in attrs
        assert len(trial["intermediate_values"]) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_dashboard_command_binds_loopback_and_knows_journals(tmp_path):
    journal = tmp_path / "j.log"
    journal.write_text("")
    command = dashboard_command(str(journal))
    assert command[command.index("--host") + 1] == "127.0.0.1" and "JournalFileStorage" in command
    with pytest.raises(SweeperError, match="run sweeper tune first"):
        dashboard_command(str(tmp_path / "none.db"))


def test_pruned_screening_runs_stop_early_get_no_repeats_and_stay_pruned(tmp_path):
    from optuna.trial import TrialState

    storage = str(tmp_path / "p.db")
    # No run reaches 0.99 mIoU after one epoch: every screening run is pruned right there.
    space = tiny_space(recipe=dict(TINY["recipe"], epochs=3), pruner={"type": "threshold", "lower": 0.99})
    summary = run_sweep(space, storage=storage)
    trials = _trials(storage)
    assert summary.pruned == 3 and summary.trained == 0
    assert [t.state for t in trials] == [TrialState.PRUNED] * 3
    for t in trials:
        assert len(t.history) == 1  # stopped after its first epoch of three
        assert t.pruned_at_epoch == t.history[0]["epoch"]
        assert t.unit.phase == SCREEN  # pruned candidates are not repeated
    assert summary.ranking is None  # nothing finished, nothing to rank
    # A pruned unit is a finished unit: resuming does not train it again.
    again = run_sweep(space, storage=storage)
    assert again.trained == 0 and again.pruned == 0 and len(_trials(storage)) == 3


def test_a_resumed_study_refuses_an_edited_recipe_and_names_the_keys(tmp_path):
    """Screening at 1 epoch, repeats at 2 after an edit, averaged together: refused, with the keys."""
    from dataclasses import replace as _replace

    from sweeper.errors import SweeperError as _Error
    from sweeper.sweep.space import parse_space
    from sweeper.sweep.study import check_same_split, open_study
    from sweeper.training import prepare_data

    space = parse_space({"recipe": {"epochs": 1, "image_size": 64, "lr": 3.0e-3},
                         "architectures": {"pairs": ["pspnet/mobilenet_v2"]}}, default_name="r")
    space.base.data.subsample = 24
    data = prepare_data(space.base)
    storage = str(tmp_path / "r.db")
    check_same_split(open_study(space, storage, "r"), space, data)
    check_same_split(open_study(space, storage, "r"), _replace(space, base=_replace(space.base, device="cpu")), data)
    edited = _replace(space, base=_replace(space.base, epochs=2, lr=1.0e-3))
    with pytest.raises(_Error, match=r"another recipe: epochs \(1 -> 2\), lr \(0.003 -> 0.001\).*--study"):
        check_same_split(open_study(edited, storage, "r"), edited, data)


def test_a_study_keeps_the_catalogue_order_it_began_with(tmp_path):
    """--trials on a resumed study extends its own list: a new study stores the space's order, a
    study of a version before the spread order (trials, no stored order) screens smallest first."""
    import optuna

    from sweeper.sweep.records import StudyRecord
    from sweeper.sweep.study import _study_order

    space = tiny_space(architectures={"max_params": "5M", "archs": ["pspnet"]})
    store = open_storage(str(tmp_path / "o.db"))
    fresh = optuna.create_study(study_name="fresh", storage=store)
    assert _study_order(fresh, space) == "spread" and StudyRecord.from_study(fresh).order == "spread"
    older = optuna.create_study(study_name="older", storage=store)
    older.enqueue_trial({})
    assert _study_order(older, space) == "params"
    assert _study_order(older, space) == "params"  # stored: the same answer on every resume
    renamed = tiny_space(architectures={"max_params": "5M", "archs": ["pspnet"], "order": "name"})
    assert _study_order(fresh, renamed) == "spread"


def test_each_rung_goes_on_from_the_one_before_to_the_same_runs_as_from_scratch(tmp_path, monkeypatch):
    """Under a constant learning rate a promoted candidate loads its shorter run's saved state and
    trains only the epochs it adds: every value and epoch is the same as when every rung trains
    from scratch, each continued trial names the trial it went on from, and no state is left
    once the screen is over."""
    import sweeper.sweep.study as study_module
    from sweeper.sweep.states import StateFolder
    from sweeper.sweep.storage import artifact_dir

    space = tiny_space(recipe=dict(TINY["recipe"], epochs=3, scheduler="none"), seeds=[0],
                       screening={"rungs": [1, 2], "keep": 0.5})
    went_on = run_sweep(space, storage=str(tmp_path / "on.db"))
    monkeypatch.setattr(study_module, "rung_states", lambda *a, **k: (None, None))
    scratch = run_sweep(space, storage=str(tmp_path / "scratch.db"))
    assert went_on.trained == scratch.trained == 3 + 2 + 1
    # Rung 2 carries 1 epoch for 2 candidates, the full budget 2 epochs for 1.
    assert "3 run(s) went on from their previous rung's saved state: 4 epoch(s) not trained again" in went_on.messages
    assert not any("went on" in m for m in scratch.messages)

    def runs(name):
        trials = _trials(str(tmp_path / name))
        return {t.unit.key: t for t in trials if t.is_run}

    on, off = runs("on.db"), runs("scratch.db")
    assert on.keys() == off.keys()
    for key, t in on.items():
        assert t.value == off[key].value
        assert [h["miou"] for h in t.history] == [h["miou"] for h in off[key].history]
        assert [h["train_loss"] for h in t.history] == [h["train_loss"] for h in off[key].history]
        assert off[key].continued_from is None
        budget = t.unit.rung or 3
        if budget == 1:
            assert t.continued_from is None and t.resumed_epochs is None
        else:  # rung 2 goes on from rung 1, the full budget from rung 2
            source = next(s for s in on.values() if s.unit.candidate == t.unit.candidate and
                          s.unit.rung == (1 if budget == 2 else 2))
            assert (t.continued_from, t.resumed_epochs) == (source.number, source.unit.rung)
    folder = StateFolder(artifact_dir(str(tmp_path / "on.db")), "tiny")
    assert folder.held() == 0 and not artifact_dir(str(tmp_path / "on.db")).exists()  # nothing left behind


def test_rungs_train_from_scratch_under_a_schedule_or_without_a_folder_and_say_why(tmp_path):
    from sweeper.sweep.study import rung_states

    rungs = {"rungs": [1], "keep": 0.5}
    cosine = tiny_space(recipe=dict(TINY["recipe"], epochs=2, scheduler="cosine"), screening=rungs)
    assert rung_states(tiny_space(), str(tmp_path / "a.db"), None, "s") == (None, None)  # no rungs
    folder, why = rung_states(cosine, str(tmp_path / "a.db"), None, "s")
    assert folder is None and "schedule (cosine) depends on the epochs" in why
    constant = tiny_space(recipe=dict(TINY["recipe"], epochs=2, scheduler="none"), screening=rungs)
    folder, why = rung_states(constant, "postgresql://u@db.example/x", None, "s")
    assert folder is None and "give --artifacts" in why
    folder, why = rung_states(constant, "postgresql://u@db.example/x", tmp_path, "s")
    assert why is None and folder.folder.parent == tmp_path / "rung-states"
    with pytest.raises(SweeperError, match="--artifacts: folder .* does not exist"):
        rung_states(constant, None, tmp_path / "no" / "such", "s")
    spared = tiny_space(recipe=dict(TINY["recipe"], epochs=2, scheduler="none"), screening={**rungs, "continue": False})
    assert rung_states(spared, str(tmp_path / "a.db"), None, "s") == (None, None)
