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
from sweeper.space import parse_space
from sweeper.study import collect_runs, dashboard_command, mask_url, open_storage, run_sweep, storage_url

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
    import optuna

    return optuna.load_study(study_name=name, storage=open_storage(storage)).get_trials()


def _complete_units(trials):
    from optuna.trial import TrialState

    return Counter(t.user_attrs["unit"] for t in trials if t.state == TrialState.COMPLETE)


def test_sweep_ranks_resumes_and_uses_common_seeds(tmp_path):
    storage = str(tmp_path / "s.db")
    first = run_sweep(tiny_space(), storage=storage)
    trials = _trials(storage)
    assert first.trained == len(trials) >= 3
    assert first.ranking is not None
    assert {row.candidate.key for row in first.ranking.rows} == {"pspnet/mobilenet_v2", "linknet/mobilenet_v2", "pspnet/resnet18"}
    # Grouping: every finished trial lands in its candidate's column, seeds as rows.
    records, meta = collect_runs(trials)
    assert Counter(c for c, _, _ in records) == Counter(t.user_attrs["candidate"] for t in trials)
    assert meta["pspnet/resnet18"]["params"] > meta["pspnet/mobilenet_v2"]["params"]
    # Common random numbers: a candidate with k seeds has exactly the first k of the list.
    seeds = {}
    for t in trials:
        seeds.setdefault(t.user_attrs["candidate"], []).append(t.user_attrs["seed"])
    for got in seeds.values():
        assert sorted(got) == [0, 1, 2][: len(got)]
    assert max(_complete_units(trials).values()) == 1
    for t in trials:  # what the dashboard shows of a run
        for key in ("config", "history", "per_class_iou", "params_count", "wall_time_s", "images_per_s", "versions", "seed", "fold"):
            assert key in t.user_attrs, key
    # Resume: the same command trains nothing new and keeps every trial.
    again = run_sweep(tiny_space(), storage=storage)
    assert again.trained == 0
    assert [(t.number, t.value) for t in _trials(storage)] == [(t.number, t.value) for t in trials]


def test_uniform_repeats_give_the_leaders_every_seed(tmp_path):
    storage = str(tmp_path / "u.db")
    run_sweep(tiny_space(racing=False, seeds=[0, 1]), storage=storage)
    seeds = {}
    for t in _trials(storage):
        seeds.setdefault(t.user_attrs["candidate"], set()).add(t.user_attrs["seed"])
    assert all(s == {0, 1} for s in seeds.values())  # top 3 of 3 candidates, both seeds


@pytest.mark.parametrize("fault, needle", [("nan", "loss"), ("oom", "out of memory"), ("build", "build"), ("worker", "DataLoader worker")])
def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch, fault, needle):
    from optuna.trial import TrialState

    monkeypatch.setenv("SWEEPER_FAULT", f"{fault}@linknet/*")
    storage = str(tmp_path / "f.db")
    summary = run_sweep(tiny_space(seeds=[0]), storage=storage)
    trials = _trials(storage)
    states = {t.user_attrs["candidate"]: t.state for t in trials}
    assert states["linknet/mobilenet_v2"] == TrialState.FAIL
    failed = [t for t in trials if t.state == TrialState.FAIL][0]
    assert failed.user_attrs["fail_kind"] == {"worker": "dataloader"}.get(fault, fault)
    assert needle in failed.user_attrs["fail_reason"]
    assert states["pspnet/mobilenet_v2"] == states["pspnet/resnet18"] == TrialState.COMPLETE
    assert summary.failed == 1 and len(summary.ranking.rows) == 2
    # A run that failed by itself is not retried: it would fail the same way.
    monkeypatch.delenv("SWEEPER_FAULT")
    assert run_sweep(tiny_space(seeds=[0]), storage=storage).trained == 0


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
    assert sorted(t.user_attrs["seed"] for t in trials) == [0, 1, 2]
    assert {t.user_attrs["phase"] for t in trials} == {"noise"}


def test_hyperparameter_space_samples_and_repeats_the_same_values(tmp_path):
    space = tiny_space(
        architectures={"pairs": ["pspnet/mobilenet_v2"]},
        hparams={"lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True}, "loss": ["ce", "dice"]},
        seeds=[0, 1],
    )
    storage = str(tmp_path / "h.db")
    run_sweep(space, storage=storage)
    trials = _trials(storage)
    screened = [t for t in trials if t.user_attrs["phase"] == "screen"]
    assert len(screened) == 3 and all(set(t.params) == {"lr", "loss"} for t in screened)
    for t in trials:
        if t.user_attrs["phase"] == "repeat":
            twin = [s for s in screened if s.user_attrs["candidate"] == t.user_attrs["candidate"]][0]
            assert t.params == twin.params and t.user_attrs["config"]["lr"] == twin.params["lr"]


def test_a_resumed_study_must_use_the_same_split(tmp_path):
    storage = str(tmp_path / "split.db")
    run_sweep(tiny_space(seeds=[0], architectures={"pairs": ["pspnet/mobilenet_v2"]}), storage=storage)
    other = tiny_space(seeds=[0], architectures={"pairs": ["pspnet/mobilenet_v2"]}, split={"seed": 5})
    with pytest.raises(SweeperError, match="different data split"):
        run_sweep(other, storage=storage)


def test_storage_urls_and_masking(tmp_path):
    assert storage_url(None).startswith("sqlite:///") and storage_url(None).endswith("sweeper.db")
    assert storage_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"
    assert storage_url(str(tmp_path / "x.log")) == str(tmp_path / "x.log")
    assert mask_url("postgresql+psycopg2://bob:secret@db:5432/s") == "postgresql+psycopg2://bob:***@db:5432/s"
    assert "secret" not in mask_url("postgresql://u:secret@h/d")
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
    cmd = [sys.executable, "-m", "sweeper.cli", "tune", "--space", str(space), "--storage", str(journal), "--debug", "--format", "csv"]
    workers = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, err
    trials = _trials(str(journal), name="tiny-debug")
    units = _complete_units(trials)
    assert units and max(units.values()) == 1
    screened = {t.user_attrs["candidate"] for t in trials if t.state == TrialState.COMPLETE and t.user_attrs["seed"] == 0}
    assert len(screened) == 3
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert all(t.user_attrs.get("duplicate_of") is not None or t.user_attrs.get("empty")
               for t in trials if t.state == TrialState.PRUNED)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_study_over_http(tmp_path):
    storage = str(tmp_path / "d.db")
    run_sweep(tiny_space(seeds=[0], architectures={"pairs": ["pspnet/mobilenet_v2"]}), storage=storage)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "dashboard", "--storage", storage, "--port", str(port)],
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
        assert len(t.user_attrs["history"]) == 1  # stopped after its first epoch of three
        assert t.user_attrs["pruned_at_epoch"] == t.user_attrs["history"][0]["epoch"]
        assert t.user_attrs["phase"] == "screen"  # pruned candidates are not repeated
    assert not summary.ranking or not summary.ranking.rows
    # A pruned unit is a finished unit: resuming does not train it again.
    again = run_sweep(space, storage=storage)
    assert again.trained == 0 and again.pruned == 0 and len(_trials(storage)) == 3
