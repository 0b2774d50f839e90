"""Trials whose worker is gone: dead processes of this host, workers that stopped sending
heartbeats (another machine, a paused VM), and trials that never sent one.

A trial failed here has no ``fail_kind``, so its unit is retried by the next worker; a run that
failed by itself (out of memory, NaN loss) is never touched.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from sweeper.sweep.storage import grace_period_s


def heartbeat_grace_s(study) -> int | None:
    """Seconds without a heartbeat after which a RUNNING trial of this study counts as dead and is
    retried; None where the storage has no heartbeat (a journal file)."""
    store = study._storage
    store = getattr(store, "_backend", store)  # Optuna wraps an RDBStorage in a _CachedStorage
    interval = store.get_heartbeat_interval() if hasattr(store, "get_heartbeat_interval") else None
    if interval is None:
        return None
    return getattr(store, "grace_period", None) or 2 * interval


def this_worker() -> dict:
    """How a trial names its worker: host, pid and the process's start time (so that a pid the
    system gave to a new process, PID 1 of the next container, does not look alive).
    ``SWEEPER_WORKER_HOST`` overrides the host (tests use it to play a worker on another machine,
    whose dead processes only heartbeats can detect)."""
    worker = {"host": os.environ.get("SWEEPER_WORKER_HOST") or socket.gethostname(), "pid": os.getpid()}
    started = _process_start(os.getpid())
    if started is not None:
        worker["started"] = started
    return worker


def _process_start(pid: int) -> int | None:
    """The start time of a process in clock ticks since boot (Linux ``/proc``), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def _pid_alive(pid: Any, started: Any = None) -> bool:
    if not isinstance(pid, int):
        return True  # unknown: leave it to heartbeats
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if isinstance(started, int):
        now = _process_start(pid)
        if now is not None and now != started:
            return False  # the pid belongs to another process now
    return True


def fail_trial(study, number: int) -> bool:
    """End a RUNNING trial as FAIL (so that its unit is retried); False if it had finished.

    Two workers may fail the same dead trial at once: the second one finds it finished, which
    is not an error.
    """
    import optuna

    try:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    except ValueError:  # "Cannot tell a FAIL trial": another worker failed it first
        return False
    except optuna.exceptions.UpdateFinishedTrialError:  # ... between Optuna's check and its write
        return False
    return True


def fail_dead_local_trials(study) -> int:
    """RUNNING trials of processes of this host that no longer exist become FAIL (and are retried).

    This is how a journal file, which has no heartbeat, recovers from a killed worker; on RDB
    storages it is quicker than waiting out the grace period. A pid that now belongs to another
    process (its start time differs) counts as dead. A RUNNING trial with no worker record (its
    worker was killed before writing it) is failed once it is older than the grace period.
    """
    import datetime

    from optuna.trial import TrialState

    from sweeper.sweep.records import TrialRecord

    host = socket.gethostname()  # the real host: a played one (SWEEPER_WORKER_HOST) is "elsewhere"
    failed = 0
    now = datetime.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = TrialRecord.from_trial(t).worker
        if worker is None:
            started = t.datetime_start
            if started is not None and (now - started).total_seconds() > grace_period_s():
                failed += fail_trial(study, t.number)
            continue
        if worker.get("host") != host or worker.get("pid") == os.getpid() \
                or _pid_alive(worker.get("pid"), worker.get("started")):
            continue
        failed += fail_trial(study, t.number)
    return failed


def fail_stale_trials(study) -> int:
    """Dead local workers' trials, then (RDB storages) those whose heartbeat stopped, or that
    never sent one (Optuna leaves those RUNNING for ever: its rule needs a first heartbeat)."""
    failed = fail_dead_local_trials(study)
    failed += _fail_trials_with_stale_heartbeat(study)
    failed += _fail_trials_without_heartbeat(study)
    return failed


def _fail_trials_with_stale_heartbeat(study) -> int:
    """Optuna's own rule (RDB storages): RUNNING trials whose last heartbeat is older than the
    grace period become FAIL, and its callback queues a copy; the number failed."""
    import optuna
    from optuna.trial import TrialState

    if heartbeat_grace_s(study) is None:
        return 0
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not running:
        return 0
    try:
        optuna.storages.fail_stale_trials(study)
    except Exception:  # noqa: BLE001 - another worker failed the same trial first
        pass
    return len(running & {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))})


def _fail_trials_without_heartbeat(study) -> int:
    """RDB storages: RUNNING trials with no heartbeat row, started more than the grace period ago
    (Optuna stamps ``datetime_start`` with the local clock), become FAIL and are retried."""
    import copy
    from datetime import datetime, timedelta

    store = study._storage
    store = getattr(store, "_backend", store)  # Optuna wraps an RDBStorage in a _CachedStorage
    if not hasattr(store, "scoped_session") or store.get_heartbeat_interval() is None:
        return 0
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    with store.scoped_session() as session:
        now = datetime.now()
        rows = (session.query(models.TrialModel)
                .filter(models.TrialModel.study_id == study._study_id)
                .filter(models.TrialModel.state == TrialState.RUNNING).all())
        orphans = [row.trial_id for row in rows if not row.heartbeats and row.datetime_start is not None
                   and now - row.datetime_start > timedelta(seconds=grace_period_s())]
    callback = store.get_heartbeat_stale_trial_callback()
    failed = 0
    for trial_id in orphans:
        try:
            if not store.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except Exception:  # noqa: BLE001 - another worker failed it first
            continue
        failed += 1
        if callback is not None:
            callback(study, copy.deepcopy(store.get_trial(trial_id)))
    return failed
