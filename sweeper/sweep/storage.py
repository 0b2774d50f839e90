"""Where studies live: storage URLs, opening SQLite, PostgreSQL and journal files, and trials
whose worker died.

A ``--storage`` value is a URL (``sqlite:///x.db``, ``postgresql://...``), a ``.db`` path
(SQLite), or any other path (a journal file that several processes on one machine share). RDB
storages get heartbeats: a RUNNING trial whose worker sent none for ``GRACE_PERIOD_S`` seconds is
failed and retried by the next worker. Journal files have no heartbeat, so a RUNNING trial of a
process of this host that no longer exists is failed at start instead. Every URL that is printed
goes through :func:`mask_url` first.
"""

from __future__ import annotations

import importlib.util
import os
import random
import socket
import time
from pathlib import Path
from typing import Any

from sweeper.errors import SweeperError, one_line

DEFAULT_STORAGE = "sweeper.db"
#: Seconds between heartbeats of a running trial, and seconds without one after which the trial
#: counts as dead. ``SWEEPER_HEARTBEAT_S`` and ``SWEEPER_GRACE_S`` override them (tests use
#: seconds; a cluster with a slow database may want more).
HEARTBEAT_INTERVAL_S = 20
GRACE_PERIOD_S = 60


def mask_url(url: str) -> str:
    """The storage URL with any password replaced by ``***``, for every printed line."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, _, host = rest.rpartition("@")
    if ":" in creds:
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def storage_url(storage: str | None) -> str:
    """``None`` -> ``sqlite:///sweeper.db`` in the working directory; a ``*.db`` path -> SQLite;
    any other path -> a journal file; a URL (``postgresql://...``) is used as is."""
    if storage is None or storage == "":
        return f"sqlite:///{Path(DEFAULT_STORAGE).resolve()}"
    if "://" in storage:
        return storage
    path = Path(storage).expanduser()
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        return f"sqlite:///{path.resolve()}"
    return str(path.resolve())


def shown_url(storage: str | None) -> str:
    """The URL of ``storage`` as printed: resolved and masked."""
    return mask_url(storage_url(storage))


def is_journal(url: str) -> bool:
    return "://" not in url


def local_file(url: str) -> Path | None:
    """The file behind a SQLite or journal URL; None for a database server."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    if is_journal(url):
        return Path(url)
    return None


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg 3 to SQLAlchemy 2.1; use psycopg2 when only it is here."""
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def artifact_dir(storage: str | None, explicit: str | os.PathLike | None = None) -> Path:
    """Where a study's weight files live: ``--artifacts``, or beside a SQLite or journal file
    (``sweeper.db`` -> ``sweeper-artifacts/``). A database server has no "beside": its workers
    may be on other machines, so the folder (one they all reach) must be named."""
    if explicit:
        return Path(explicit)
    local = local_file(storage_url(storage))
    if local is None:
        raise SweeperError("--artifacts: name a folder for the weight files (one every worker can reach); "
                           "a database server has no folder of its own")
    return local.with_name(f"{local.stem}-artifacts")


def quiet_optuna() -> None:
    """Optuna's experimental warnings, per-trial lines and failure tracebacks: sweeper reports each
    trial itself (one line, with the reason), and a traceback is not an error message."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def open_storage(storage: str | None, *, must_exist: bool = False):
    """An Optuna storage for a URL or path, with heartbeats and retries on RDB storages.

    ``must_exist`` (commands that only read, such as ``report``) refuses to create a new SQLite
    or journal file at a mistyped path.
    """
    import optuna

    quiet_optuna()
    url = _with_driver(storage_url(storage))
    shown = mask_url(url)
    local = local_file(url)
    if must_exist and local is not None and not local.is_file():
        raise SweeperError(f"--storage: {local} does not exist (no study has been written there)")
    if local is not None and not local.parent.is_dir():
        kind = "journal" if is_journal(url) else "SQLite"
        raise SweeperError(f"--storage: folder {local.parent} for the {kind} file does not exist")
    if is_journal(url):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        try:
            return JournalStorage(JournalFileBackend(url))
        except Exception as exc:  # noqa: BLE001
            raise SweeperError(f"--storage {shown}: cannot open the journal file: {one_line(exc, 240)}") from None
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )
    # Workers that start together on an empty database race to create Optuna's tables; the
    # loser's CREATE TABLE fails and the schema is there a moment later, so try again.
    for attempt in range(6):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs,
                heartbeat_interval=int(os.environ.get("SWEEPER_HEARTBEAT_S", HEARTBEAT_INTERVAL_S)),
                grace_period=int(os.environ.get("SWEEPER_GRACE_S", GRACE_PERIOD_S)),
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
        except ImportError as exc:
            driver = exc.name or one_line(exc, 240)
            raise SweeperError(f"--storage {shown}: the database driver is missing ({driver}); install it, "
                               "e.g. pip install psycopg2-binary for postgresql+psycopg2://") from None
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types for a bad URL or server
            text = str(exc)
            if attempt < 5 and ("already exists" in text or "UniqueViolation" in text or "locked" in text):
                time.sleep(0.2 + random.random() * (attempt + 1) * 0.3)
                continue
            raise SweeperError(f"--storage {shown}: cannot open: {one_line(mask_url(text), 240)}") from None
    raise AssertionError("unreachable")


def study_names(store, storage: str | None) -> list[str]:
    """The names of the studies in an opened storage (an unreachable server is a one-line error)."""
    import optuna

    try:
        return optuna.get_all_study_names(store)
    except Exception as exc:  # noqa: BLE001
        raise SweeperError(f"--storage {shown_url(storage)}: {one_line(mask_url(str(exc)), 240)}") from None


# --------------------------------------------------------------------------- dead workers


def this_worker() -> dict:
    """How a trial names its worker: host and pid. ``SWEEPER_WORKER_HOST`` overrides the host
    (tests use it to play a worker on another machine, whose dead processes only heartbeats can
    detect)."""
    return {"host": os.environ.get("SWEEPER_WORKER_HOST") or socket.gethostname(), "pid": os.getpid()}


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return True  # unknown: leave it to heartbeats
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
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
    storages it is quicker than waiting out the grace period.
    """
    from optuna.trial import TrialState

    from sweeper.sweep.records import TrialRecord

    host = socket.gethostname()  # the real host: a played one (SWEEPER_WORKER_HOST) is "elsewhere"
    failed = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = TrialRecord.from_trial(t).worker or {}
        if worker.get("host") != host or worker.get("pid") == os.getpid() or _pid_alive(worker.get("pid")):
            continue
        failed += fail_trial(study, t.number)
    return failed


def fail_stale_trials(study) -> int:
    """Dead local workers' trials, then (RDB storages) those whose heartbeat stopped."""
    import optuna

    failed = fail_dead_local_trials(study)
    try:
        optuna.storages.fail_stale_trials(study)
    except Exception:  # noqa: BLE001 - journal storages have no heartbeat
        pass
    return failed
