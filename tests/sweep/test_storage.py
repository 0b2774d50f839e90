"""Storage URLs, masking, and failing trials of dead workers through Optuna's public API."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from optuna.trial import TrialState

from sweeper.errors import SweeperError
from sweeper.sweep import records
from sweeper.sweep.storage import (
    artifact_dir,
    fail_dead_local_trials,
    fail_trial,
    mask_url,
    open_storage,
    storage_url,
    study_names,
)


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
