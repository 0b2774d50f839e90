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


def write_space(tmp_path: Path, *, epochs: int = 1, pairs=PAIRS, seeds=(0, 1), batch_size: int = 4) -> Path:
    space = {
        "name": "scale",
        "recipe": {"epochs": epochs, "batch_size": batch_size, "image_size": 64, "lr": 3.0e-3},
        "architectures": {"pairs": pairs},
        "seeds": list(seeds),
        "racing": False,  # uniform repeats of the top three: the requested runs are known
        "pruner": "none",
        "trials": len(pairs),
    }
    path = tmp_path / "scale.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def expected_units(pairs=PAIRS) -> int:
    return len(pairs) + min(3, len(pairs))  # screening + the top three's second seed


def worker(space: Path, storage: str, *, debug: bool = True, **env: str) -> subprocess.Popen:
    """A ``tune`` process; ``debug`` (32 images, at most 2 epochs) unless a test needs runs long
    enough to stop them mid-epoch (the 240 demo images: about 1.5 s per epoch)."""
    command = [sys.executable, "-m", "sweeper.cli", "tune", "--space", str(space), "--storage", storage,
               "--format", "csv"] + (["--debug"] if debug else [])
    full_env = dict(os.environ, OMP_NUM_THREADS="1", **env)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert "error" not in err.lower() and "Traceback" not in err, err
    return out, err


def trials_of(storage: str, study: str = "scale-debug"):
    import optuna

    return optuna.load_study(study_name=study, storage=open_storage(storage)).get_trials()


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


def test_two_workers_go_on_from_each_others_rungs(tmp_path):
    """Two processes screening by rungs under a constant learning rate on one SQLite file: each
    promoted run goes on from the saved state of the rung before, whichever worker trained it,
    and the states are gone once the screen is over."""
    from sweeper.sweep.records import read_records
    from sweeper.sweep.states import StateFolder
    from sweeper.sweep.storage import artifact_dir

    path = write_space(tmp_path, epochs=2, seeds=(0,))
    raw = yaml.safe_load(path.read_text())
    raw["recipe"]["scheduler"] = "none"
    raw["screening"] = {"rungs": [1], "keep": 0.5}
    path.write_text(yaml.safe_dump(raw))
    storage = str(tmp_path / "rungs.db")
    procs = [worker(path, storage) for _ in range(2)]
    for proc in procs:
        finish(proc)
    import optuna

    runs = [r for r in read_records(optuna.load_study(study_name="scale-debug", storage=open_storage(storage)))
            if r.is_run]
    rung = {r.unit.candidate: r for r in runs if r.unit.rung == 1}
    full = [r for r in runs if r.unit.rung is None]
    assert len(rung) == 4 and len(full) == 2
    assert {(r.continued_from, r.resumed_epochs) for r in full} == {(rung[r.unit.candidate].number, 1) for r in full}
    assert StateFolder(artifact_dir(storage), "scale-debug").held() == 0


def _wait_for(storage: str, predicate, proc: subprocess.Popen, timeout: float = 300, study: str = "scale-debug"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the worker finished before the moment to kill it"
        try:
            trials = trials_of(storage, study)
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
    # The same command again: dead local trials are failed at once (a worker of another machine,
    # which only the heartbeat can tell dead, is the test below).
    finish(worker(space, storage, **env))
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


# --------------------------------------------------------------------------- heartbeats on SQLite

#: Heartbeat and grace period of the tests below, in seconds: the rerun (about 5 s to start and
#: read the data) reaches its wait before the grace period is over, so it waits and says so.
HEARTBEAT_S, GRACE_S = 1, 8
HEARTBEATS = {"SWEEPER_HEARTBEAT_S": str(HEARTBEAT_S), "SWEEPER_GRACE_S": str(GRACE_S)}
POLL_S = 2.0  # Runner.poll_s: how often a waiting worker looks again

#: A worker killed between Optuna's ``ask`` and its first heartbeat: its trial is RUNNING with a
#: unit and nothing else. A real process, killed with SIGKILL once it has printed the trial number.
KILLED_BEFORE_FIRST_HEARTBEAT = """
import sys, time
import optuna
from sweeper.sweep.records import SCREEN, CandidateKey, Unit
from sweeper.sweep.storage import open_storage

study = optuna.create_study(study_name=sys.argv[2], storage=open_storage(sys.argv[1]), direction="maximize")
study.enqueue_trial({}, user_attrs=Unit(CandidateKey.of("pspnet", "mobilenet_v2"), 0, 0, SCREEN).user_attrs())
print(study.ask().number, flush=True)
time.sleep(600)
"""


@pytest.mark.timeout(300)
@pytest.mark.parametrize("moment", ["mid-epoch", "before-first-heartbeat"])
def test_a_killed_worker_of_another_host_is_retried_within_the_grace_period(tmp_path, moment):
    """On SQLite, a worker of another machine (its pid means nothing here) that was killed leaves
    a RUNNING trial only its heartbeat can tell dead. The rerun says that it waits and for how
    long, retries the unit once the grace period is over (not minutes later), and every unit ends
    COMPLETE once. One seed: the plan has nothing left but the killed trial, and still waits."""
    from optuna.trial import TrialState

    storage = str(tmp_path / "h.db")
    space = write_space(tmp_path, epochs=2, pairs=PAIRS[:1], seeds=[0], batch_size=8)
    if moment == "mid-epoch":
        proc = worker(space, storage, debug=False, SWEEPER_WORKER_HOST="another-machine", **HEARTBEATS)
        killed, _ = _wait_for(storage, lambda t: _running(t) and len(t.intermediate_values) >= 1, proc, study="scale")
        assert TrialRecord.from_trial(killed).worker["host"] == "another-machine"
    else:
        proc = subprocess.Popen([sys.executable, "-c", KILLED_BEFORE_FIRST_HEARTBEAT, storage, "scale"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, **HEARTBEATS))
        line = proc.stdout.readline()
        assert line.strip(), proc.communicate()
        number = int(line)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    killed_at = time.time()
    if moment != "mid-epoch":
        [killed] = [t for t in trials_of(storage, "scale") if t.number == number]
        assert killed.state == TrialState.RUNNING and not TrialRecord.from_trial(killed).worker

    started = time.time()
    out, err = finish(worker(space, storage, debug=False, **HEARTBEATS), timeout=240)
    trials = trials_of(storage, "scale")
    assert {t.number: t for t in trials}[killed.number].state == TrialState.FAIL
    [retry] = [t for t in trials if t.state == TrialState.COMPLETE]
    assert TrialRecord.from_trial(retry).unit == TrialRecord.from_trial(killed).unit
    assert retry.number > killed.number and len(trials) == 2
    # It said so while waiting, naming the trial and how long a dead worker's trial can hold it.
    assert f"waiting for 1 running trial(s) of other workers (trial {killed.number})" in err, err
    assert f"retried here {GRACE_S} s after its last heartbeat" in err, err
    assert err.count("waiting for") == 1, err  # one line, not one per poll
    assert "1 trial(s) of dead or paused workers marked FAIL" in " ".join(err.split()), err
    # Recovered within the grace period (plus one poll): counted from the kill (mid-epoch: from
    # the last heartbeat, at most a second earlier) or from the start of the trial (no heartbeat).
    since = killed_at if moment == "mid-epoch" else killed.datetime_start.timestamp()
    recovered_s = retry.datetime_start.timestamp() - since
    print(f"{moment}: retried {recovered_s:.1f} s after the kill/start (grace {GRACE_S} s), rerun "
          f"{time.time() - started:.1f} s in all")
    assert GRACE_S - HEARTBEAT_S - 0.5 <= recovered_s <= GRACE_S + POLL_S + 3, recovered_s


def _pause_outside_a_transaction(proc: subprocess.Popen, db: Path) -> None:
    """SIGSTOP ``proc`` at a moment it holds no lock on the SQLite file. A process stopped inside
    a transaction (a heartbeat, for a few milliseconds a second) keeps SQLite's lock, and every
    other worker then waits for it to resume: that is SQLite's rule, not this test's subject."""
    import sqlite3

    for _ in range(20):
        proc.send_signal(signal.SIGSTOP)
        connection = sqlite3.connect(db, timeout=0.5)
        try:
            connection.execute("BEGIN EXCLUSIVE")  # no other reader or writer holds the file
            connection.rollback()
            return
        except sqlite3.OperationalError:
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        finally:
            connection.close()
    raise AssertionError("the worker always held the SQLite lock")


@pytest.mark.timeout(300)
def test_a_worker_paused_past_the_grace_period_leaves_one_counted_run(tmp_path):
    """SIGSTOP (a suspended laptop, a paused VM) mid-epoch, for longer than the grace period: a
    second worker fails the paused trial and runs Optuna's copy of it. Resumed (SIGCONT) while
    the copy trains, the original finds its trial failed, drops its run with a note instead of
    a traceback (Optuna refuses its writes: ``Cannot tell a FAIL trial``), and the unit ends with
    one COMPLETE trial and one counted run."""
    from optuna.trial import TrialState

    from sweeper.sweep.records import completed_runs, read_records

    storage = str(tmp_path / "p.db")
    space = write_space(tmp_path, epochs=2, pairs=PAIRS[:1], seeds=[0], batch_size=8)
    original = worker(space, storage, debug=False, **HEARTBEATS)
    paused, _ = _wait_for(storage, lambda t: _running(t) and len(t.intermediate_values) >= 1, original,
                          study="scale")
    _pause_outside_a_transaction(original, Path(storage))
    paused_at = time.time()
    try:
        other = worker(space, storage, debug=False, **HEARTBEATS)
        copy, _ = _wait_for(storage, lambda t: _running(t) and t.number > paused.number, other, study="scale")
    finally:
        original.send_signal(signal.SIGCONT)
    paused_s = time.time() - paused_at
    out, err = finish(original, timeout=240)
    assert "was failed by another one while this one was stopped or paused" in " ".join(err.split()), err
    out, other_err = finish(other, timeout=240)
    assert f"waiting for 1 running trial(s) of other workers (trial {paused.number})" in other_err, other_err

    import optuna

    study = optuna.load_study(study_name="scale", storage=open_storage(storage))
    trials = {t.number: t for t in study.get_trials()}
    assert trials[paused.number].state == TrialState.FAIL
    complete = [t for t in trials.values() if t.state == TrialState.COMPLETE]
    assert [t.number for t in complete] == [copy.number]
    assert complete[0].system_attrs.get("failed_trial") == paused.number  # Optuna's retry of the paused trial
    assert TrialRecord.from_trial(complete[0]).unit == TrialRecord.from_trial(paused).unit
    assert TrialRecord.from_trial(complete[0]).worker["pid"] == other.pid
    [runs] = completed_runs(read_records(study)).values()
    assert len(runs.runs) == 1
    print(f"paused {paused_s:.1f} s (grace {GRACE_S} s); the copy started "
          f"{copy.datetime_start.timestamp() - paused_at:.1f} s after the pause")
