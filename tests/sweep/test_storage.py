"""Storage URLs, masking, and failing trials of dead workers through Optuna's public API."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from optuna.trial import TrialState

from sweeper.errors import SweeperError
from sweeper.sweep import records
from sweeper.sweep.storage import artifact_dir, mask_url, open_storage, storage_url, study_names
from sweeper.sweep.workers import fail_dead_local_trials, fail_trial


def test_storage_urls_and_masking(tmp_path):
    assert storage_url(None).startswith("sqlite:///") and storage_url(None).endswith("sweeper.db")
    assert storage_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"
    assert storage_url(str(tmp_path / "x.log")) == str(tmp_path / "x.log")
    assert mask_url("postgresql+psycopg2://bob:secret@db:5432/s") == "postgresql+psycopg2://bob:***@db:5432/s"
    assert "secret" not in mask_url("postgresql://u:secret@h/d")
    assert artifact_dir(str(tmp_path / "s.db")) == tmp_path / "s-artifacts"
    with pytest.raises(SweeperError, match="name a folder"):
        artifact_dir("postgresql://u@h/d")
    with pytest.raises(SweeperError, match="does not exist"):
        open_storage(str(tmp_path / "missing" / "x.db"))
    with pytest.raises(SweeperError, match="does not exist"):
        open_storage(str(tmp_path / "none.db"), must_exist=True)
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_workers_failing_one_dead_trial_is_not_an_error(tmp_path, kind):
    import optuna

    storage = str(tmp_path / ("s.db" if kind == "sqlite" else "s.log"))
    study = optuna.create_study(study_name="s", storage=open_storage(storage))
    trial = study.ask()
    stale_view = optuna.load_study(study_name="s", storage=open_storage(storage))
    assert stale_view.trials[0].state == TrialState.RUNNING
    assert fail_trial(study, trial.number) is True
    assert fail_trial(stale_view, trial.number) is False  # the other worker got there first
    assert [t.state for t in study.trials] == [TrialState.FAIL]
    assert study_names(open_storage(storage), storage) == ["s"]


def test_a_dead_local_worker_s_trial_is_failed_and_a_live_one_s_is_kept(tmp_path):
    import optuna

    study = optuna.create_study(study_name="d", storage=open_storage(str(tmp_path / "d.log")))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    for pid in (dead.pid, os.getppid()):
        trial = study.ask()
        records.write(trial, worker={"host": socket.gethostname(), "pid": pid})
    assert fail_dead_local_trials(study) == 1
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.RUNNING]


def test_passwords_are_masked_in_the_query_string_and_in_driver_messages():
    assert mask_url("postgresql+psycopg2://user@host/db?password=s3cret") == \
        "postgresql+psycopg2://user@host/db?password=***"
    assert mask_url("postgresql://h/d?sslmode=require&password=zz&x=1") == "postgresql://h/d?sslmode=require&password=***&x=1"
    text = mask_url("could not connect to postgresql://u:pw@h:1/d (password=hunter2)")
    assert "pw@" not in text and "hunter2" not in text and "u:***@h:1/d" in text


def test_a_foreign_sqlite_database_is_refused_and_left_unchanged(tmp_path):
    import sqlite3

    path = tmp_path / "inventory.db"
    with sqlite3.connect(path) as db:
        db.execute("create table parts (id integer primary key)")
    before = path.read_bytes()
    with pytest.raises(SweeperError, match="something else .*parts"):
        open_storage(str(path))
    assert path.read_bytes() == before


def test_a_trial_that_never_sent_a_heartbeat_is_failed_after_the_grace_period(tmp_path, monkeypatch):
    """Optuna's own rule needs a first heartbeat, so a worker of another host killed before it
    sent one held its trial for ever (the 240 s stall); sweeper fails it after the grace period."""
    import time

    import optuna

    from sweeper.sweep.workers import fail_stale_trials

    monkeypatch.setenv("SWEEPER_GRACE_S", "1")
    storage = str(tmp_path / "h.db")
    study = optuna.create_study(study_name="h", storage=open_storage(storage))
    trial = study.ask()  # RUNNING, no heartbeat row
    records.write(trial, worker={"host": "elsewhere", "pid": 1})
    optuna.storages.fail_stale_trials(study)
    assert study.trials[0].state == TrialState.RUNNING  # Optuna alone: for ever
    assert fail_stale_trials(study) == 0  # still inside the grace period
    time.sleep(1.6)
    start = time.monotonic()
    assert fail_stale_trials(study) == 1
    assert time.monotonic() - start < 1.0
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]  # retried as a copy


def test_journal_dead_workers_with_a_reused_pid_or_no_worker_record(tmp_path, monkeypatch):
    import socket
    import time

    import optuna

    monkeypatch.setenv("SWEEPER_GRACE_S", "1")
    study = optuna.create_study(study_name="j", storage=open_storage(str(tmp_path / "j.log")))
    reused = study.ask()  # a live pid, but another process than the one that wrote the record
    records.write(reused, worker={"host": socket.gethostname(), "pid": os.getppid(), "started": 1})
    study.ask()  # killed before its worker record was written
    live = study.ask()
    from sweeper.sweep.workers import this_worker

    records.write(live, worker=dict(this_worker(), pid=os.getppid(), started=this_worker_start(os.getppid())))
    assert fail_dead_local_trials(study) == 1
    time.sleep(1.2)
    assert fail_dead_local_trials(study) == 1
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.RUNNING]


def this_worker_start(pid):
    from sweeper.sweep.workers import _process_start

    return _process_start(pid)


def test_workers_opening_an_empty_sqlite_file_together_all_succeed(tmp_path):
    code = ("import sys; from sweeper.sweep.storage import open_storage; import optuna; "
            "optuna.create_study(study_name='r', storage=open_storage(sys.argv[1]), load_if_exists=True)")
    for round_ in range(4):
        path = tmp_path / f"race{round_}.db"
        path.touch()
        procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err


def test_the_dashboard_gets_a_password_through_a_pipe_not_its_command_line():
    import tomllib

    from sweeper.sweep.dashboard import dashboard_command

    url = "postgresql+psycopg2://bob:s3cret@db:5432/sweeps"
    command = dashboard_command(url)
    assert not any("s3cret" in part for part in command)
    config = command[command.index("--from-config") + 1]
    assert config.startswith("/dev/fd/")
    with open(config, "rb") as handle:
        assert tomllib.load(handle) == {"optuna_dashboard": {"storage": url}}
