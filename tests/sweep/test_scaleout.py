"""Several `sweeper tune` processes on one storage, and workers killed at awkward moments.

Every worker here is a real process running the real command against a real storage: a SQLite
file, a journal file, or a private PostgreSQL server on 127.0.0.1 (the ``postgres_url``
fixture). Runs are tiny (32 images at 64 px, one or three epochs) and use one torch thread each.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from sweeper.sweep.records import REPEAT, TrialRecord
from sweeper.sweep.storage import open_storage

PAIRS = ["pspnet/mobilenet_v2", "linknet/mobilenet_v2", "pspnet/resnet18", "fpn/mobilenet_v2"]


def write_space(tmp_path: Path, *, epochs: int = 1, pairs=PAIRS) -> Path:
    space = {
        "name": "scale",
        "recipe": {"epochs": epochs, "batch_size": 4, "image_size": 64, "lr": 3.0e-3},
        "architectures": {"pairs": pairs},
        "seeds": [0, 1],
        "racing": False,  # uniform repeats of the top three: the requested runs are known
        "pruner": "none",
        "trials": len(pairs),
    }
    path = tmp_path / "scale.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def expected_units(pairs=PAIRS) -> int:
    return len(pairs) + min(3, len(pairs))  # screening + the top three's second seed


def worker(space: Path, storage: str, **env: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "sweeper.cli", "tune", "--space", str(space), "--storage", storage,
               "--debug", "--format", "csv"]
    full_env = dict(os.environ, OMP_NUM_THREADS="1", **env)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert "error" not in err.lower() and "Traceback" not in err, err
    return out, err


def trials_of(storage: str):
    import optuna

    return optuna.load_study(study_name="scale-debug", storage=open_storage(storage)).get_trials()


def check_complete(storage: str, pairs=PAIRS):
    from optuna.trial import TrialState

    trials = trials_of(storage)
    complete = Counter(TrialRecord.from_trial(t).unit.key for t in trials if t.state == TrialState.COMPLETE)
    assert max(complete.values()) == 1, complete  # no candidate+seed run twice
    assert len(complete) == expected_units(pairs)
    assert {u.split("|")[0] for u in complete if "seed=0" in u} == set(pairs)
    return trials


@pytest.mark.parametrize("kind", ["journal", "postgres"])
def test_four_workers_share_one_storage(tmp_path, kind, request):
    from optuna.trial import TrialState

    storage = str(tmp_path / "journal.log") if kind == "journal" else request.getfixturevalue("postgres_url")
    space = write_space(tmp_path)
    procs = [worker(space, storage) for _ in range(4)]
    for proc in procs:
        finish(proc)
    trials = check_complete(storage)
    for t in trials:  # nothing failed; a trial that lost a claim race never trained
        assert t.state == TrialState.COMPLETE or (
            t.state == TrialState.PRUNED and TrialRecord.from_trial(t).is_duplicate)
    workers = {TrialRecord.from_trial(t).worker["pid"] for t in trials if t.state == TrialState.COMPLETE}
    assert len(workers) >= 2  # the work was shared


def _wait_for(storage: str, predicate, proc: subprocess.Popen, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the worker finished before the moment to kill it"
        try:
            trials = trials_of(storage)
        except Exception:  # noqa: BLE001 - the study may not exist yet
            trials = []
        hit = [t for t in trials if predicate(t)]
        if hit:
            return hit[0], trials
        time.sleep(0.1)
    raise AssertionError("the moment to kill never came")


def _running(t) -> bool:
    from optuna.trial import TrialState

    return t.state == TrialState.RUNNING


def _snapshot(trials):
    from optuna.trial import TrialState

    return {t.number: t.value for t in trials if t.state == TrialState.COMPLETE}


@pytest.mark.parametrize(
    "kind, moment, env",
    [
        ("sqlite", "mid-epoch",
         {"SWEEPER_WORKER_HOST": "another-machine", "SWEEPER_HEARTBEAT_S": "1", "SWEEPER_GRACE_S": "3"}),
        ("journal", "mid-epoch", {}),
        ("journal", "repeat", {}),
        ("sqlite", "loading-data", {}),
    ],
)
def test_killed_worker_loses_nothing_and_its_trial_is_retried(tmp_path, kind, moment, env):
    from optuna.trial import TrialState

    pairs = PAIRS[:3]
    storage = str(tmp_path / ("s.db" if kind == "sqlite" else "journal.log"))
    space = write_space(tmp_path, epochs=3, pairs=pairs)
    proc = worker(space, storage, **env)
    if moment == "loading-data":
        time.sleep(1.0)  # importing torch and reading the data: no study yet
        killed, before = None, []
    elif moment == "mid-epoch":
        killed, before = _wait_for(storage,
                                   lambda t: _running(t) and len(t.intermediate_values) >= 1 and t.number >= 1, proc)
    else:
        killed, before = _wait_for(storage,
                                   lambda t: _running(t) and TrialRecord.from_trial(t).unit.phase == REPEAT, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    kept = _snapshot(before)
    # The same command again (a worker of this machine: dead local trials are failed at once;
    # with another machine's name only the heartbeat can tell that the killed trial is dead).
    finish(worker(space, storage, **{k: v for k, v in env.items() if k != "SWEEPER_WORKER_HOST"}))
    trials = check_complete(storage, pairs)
    assert {n: v for n, v in _snapshot(trials).items() if n in kept} == kept  # nothing lost or retrained
    if killed is not None:
        after = {t.number: t for t in trials}[killed.number]
        assert after.state == TrialState.FAIL
        unit = TrialRecord.from_trial(killed).unit
        retried = [t for t in trials if TrialRecord.from_trial(t).unit == unit and t.state == TrialState.COMPLETE]
        assert len(retried) == 1 and retried[0].number > killed.number


def test_ctrl_c_stops_cleanly_and_the_study_resumes(tmp_path):
    from optuna.trial import TrialState

    pairs = PAIRS[:2]
    storage = str(tmp_path / "c.db")
    space = write_space(tmp_path, epochs=3, pairs=pairs)
    proc = worker(space, storage)
    _wait_for(storage, lambda t: _running(t) and len(t.intermediate_values) >= 1, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err and "Traceback" not in err
    interrupted = [t for t in trials_of(storage) if t.state == TrialState.FAIL]
    assert interrupted and all(TrialRecord.from_trial(t).interrupted for t in interrupted)
    finish(worker(space, storage))
    check_complete(storage, pairs)
