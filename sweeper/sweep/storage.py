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

import contextlib
import errno
import importlib.util
import os
import random
import re
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


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_SECRET_PARAM = re.compile(r"(?i)\b(password|passwd|pwd|pass|secret|token|sslpassword|sslkey_password)=([^&;\s'\"()]+)")


def _mask_one(url: str) -> str:
    scheme, rest = url.split("://", 1)
    netloc_end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, netloc_end) if "@" in rest[:netloc_end] else -1
    if at < 0:  # a password may contain "/" or "?": then the last "@" of the whole URL ends it
        at = rest.rfind("@") if ":" in rest.split("@", 1)[0] and "@" in rest else -1
    if at >= 0 and ":" in rest[:at]:
        user = rest[:at].split(":", 1)[0]
        rest = f"{user}:***{rest[at:]}"
    return f"{scheme}://{rest}"


def mask_url(url: str) -> str:
    """``url`` (or any text holding URLs) with every password replaced by ``***``: the
    ``user:pw@`` part and ``password=...`` in a query string or a driver's message. Every URL
    and storage error that sweeper prints goes through this."""
    text = _URL.sub(lambda m: _mask_one(m.group()), str(url))
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}=***", text)


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
        return _open_journal(local, shown)
    if local is not None:
        check_sqlite_file(local)
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )
    # Workers that start together on an empty database race to create Optuna's tables (SQLite:
    # "UNIQUE constraint failed: alembic_version.version_num"). On one machine an exclusive lock
    # on the file serialises them; elsewhere the loser's CREATE fails and the schema is there a
    # moment later, so try again.
    for attempt in range(6):
        try:
            with _schema_lock(local):
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs,
                    heartbeat_interval=int(os.environ.get("SWEEPER_HEARTBEAT_S", HEARTBEAT_INTERVAL_S)),
                    grace_period=grace_period_s(),
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
                )
        except ImportError as exc:
            driver = exc.name or one_line(exc, 240)
            raise SweeperError(f"--storage {shown}: the database driver is missing ({driver}); install it, "
                               "e.g. pip install psycopg2-binary for postgresql+psycopg2://") from None
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types for a bad URL or server
            text = str(exc)
            cause = write_failure(exc)
            if cause is not None:
                raise SweeperError(f"--storage {shown}: cannot write: {cause}") from None
            if attempt < 5 and any(s in text for s in ("already exists", "UniqueViolation", "locked",
                                                       "UNIQUE constraint failed")):
                time.sleep(0.2 + random.random() * (attempt + 1) * 0.3)
                continue
            raise SweeperError(f"--storage {shown}: cannot open: {one_line(mask_url(text), 240)}") from None
    raise AssertionError("unreachable")


def grace_period_s() -> int:
    return int(os.environ.get("SWEEPER_GRACE_S", GRACE_PERIOD_S))


def heartbeat_grace_s(study) -> int | None:
    """Seconds without a heartbeat after which a RUNNING trial of this study counts as dead and is
    retried; None where the storage has no heartbeat (a journal file)."""
    store = study._storage
    store = getattr(store, "_backend", store)  # Optuna wraps an RDBStorage in a _CachedStorage
    interval = store.get_heartbeat_interval() if hasattr(store, "get_heartbeat_interval") else None
    if interval is None:
        return None
    return getattr(store, "grace_period", None) or 2 * interval


@contextlib.contextmanager
def _schema_lock(local: Path | None):
    """An exclusive ``flock`` on a SQLite file while Optuna creates or checks its tables.

    ``flock`` locks are independent of SQLite's own (POSIX ``fcntl``) locks, so this only orders
    the sweeper processes that open the file, and an empty file is created here, not by SQLite.
    """
    if local is None:
        yield
        return
    import fcntl

    with open(local, "ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_sqlite_file(path: Path) -> None:
    """Refuse an existing SQLite database of something else: Optuna would add its tables to it.

    A file that is not SQLite at all is left to Optuna's own error ("file is not a database").
    """
    import sqlite3

    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            connection.close()
    except sqlite3.Error:
        return
    if tables and "studies" not in tables:
        listed = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise SweeperError(f"--storage {path}: a SQLite database of something else (tables: {listed}), not an "
                           "Optuna storage; sweeper will not add its tables to it: give a new file")


#: errno values of a write that the disk refused: full, quota, I/O error, read-only, too large.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG}
_SQLITE_WRITE_ERRORS = ("database or disk is full", "disk I/O error", "attempt to write a readonly database",
                        "unable to open database file")


def write_failure(exc: BaseException | None) -> str | None:
    """The cause, as one line, when ``exc`` (or an exception it was raised from or during) is a
    write the disk refused; None for anything else.

    Optuna may replace the first error while it handles it (an ``AssertionError`` from its own
    clean-up after the failed FAIL write), so the whole chain is searched.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            return f"{os.strerror(exc.errno)} ({errno.errorcode.get(exc.errno, exc.errno)})"
        text = str(exc)
        for needle in _SQLITE_WRITE_ERRORS:
            if needle in text:
                return needle
        exc = exc.__cause__ or exc.__context__
    return None


def describe(store) -> str:
    """A storage as printed: the journal file, or the masked database URL."""
    while getattr(store, "engine", None) is None and getattr(getattr(store, "_backend", None), "engine", None):
        store = store._backend  # Optuna wraps an RDBStorage in a _CachedStorage
    backend = getattr(store, "_backend", None)
    if backend is not None and hasattr(backend, "_file_path"):
        return str(backend._file_path)
    engine = getattr(store, "engine", None)
    if engine is not None:
        return mask_url(engine.url.render_as_string(hide_password=True))
    return type(store).__name__


@contextlib.contextmanager
def writes_to(store_or_name):
    """Turn a write that the disk refused into one ``error:`` line naming the storage and the
    cause; finished trials are already on disk, and the trial that was running is retried by the
    next start (its worker is gone)."""
    try:
        yield
    except SweeperError:
        raise
    except Exception as exc:  # noqa: BLE001 - OSError from a journal, OperationalError from SQLite
        cause = write_failure(exc)
        if cause is None:
            raise
        name = store_or_name if isinstance(store_or_name, str) else describe(store_or_name)
        raise SweeperError(f"--storage {name}: cannot write: {cause}; finished trials are kept, free some "
                           "space and run the same command again") from None


# --------------------------------------------------------------------------- journal files

#: Every line Optuna writes to a journal is one JSON object that starts like this.
_LOG_START = b'{"op_code":'


def repair_journal(path: Path, *, full: bool = False) -> int:
    """Drop what a write that did not finish left in a journal file; the bytes dropped.

    Optuna's replay (``JournalFileBackend.read_logs``) skips a last line without a newline, but
    the next append goes right after it, and the joined line then fails every later read
    ("Invalid log format" or a JSON error). Here, under the journal's own lock: a torn tail
    (bytes after the last newline) is cut off in place (no new space needed); a line that does
    not parse keeps its last complete log (a torn prefix glued to the next append) or goes.
    """
    import json

    from optuna.storages.journal import JournalFileSymlinkLock
    from optuna.storages.journal._file import get_lock_file

    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 1))
        if not full and handle.read(1) == b"\n" and not _needs_full_check(path):
            return 0
    with get_lock_file(JournalFileSymlinkLock(str(path))):
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        dropped = len(data) - cut
        lines = data[:cut].split(b"\n")[:-1]
        kept: list[bytes] = []
        rewrite = False
        for line in lines:
            try:
                json.loads(line)
                kept.append(line)
                continue
            except ValueError:
                rewrite = True
            start = line.rfind(_LOG_START)
            try:
                if start <= 0:
                    raise ValueError
                json.loads(line[start:])
                kept.append(line[start:])
                dropped += start
            except ValueError:
                dropped += len(line) + 1
        if rewrite:
            temporary = path.with_name(path.name + ".repair")
            temporary.write_bytes(b"".join(line + b"\n" for line in kept))
            os.replace(temporary, path)
        elif dropped:
            os.truncate(path, cut)
    return dropped


def _needs_full_check(path: Path) -> bool:
    """Whether the last line of a journal fails to parse (a torn write that ended in a newline)."""
    import json

    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(0, size - (1 << 20)))
        tail = handle.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        json.loads(tail)
    except ValueError:
        return True
    return False


def _open_journal(path: Path, shown: str):
    import warnings

    from optuna.storages.journal import JournalFileBackend, JournalStorage

    def opened():
        return JournalStorage(JournalFileBackend(str(path)))

    try:
        with writes_to(shown):
            dropped = repair_journal(path)
            if dropped:
                warnings.warn(f"{shown}: dropped {dropped} byte(s) of a journal write that did not finish (a full "
                              "disk or a killed worker); every complete record is kept", stacklevel=2)
            try:
                return opened()
            except ValueError:  # a bad line before the last: repair the whole file, then replay again
                dropped = repair_journal(path, full=True)
                warnings.warn(f"{shown}: dropped {dropped} byte(s) of unreadable journal lines", stacklevel=2)
                return opened()
    except SweeperError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise SweeperError(f"--storage {shown}: cannot open the journal file: {one_line(exc, 240)}") from None


_needs_full_check_forced = False


def study_names(store, storage: str | None) -> list[str]:
    """The names of the studies in an opened storage (an unreachable server is a one-line error)."""
    import optuna

    try:
        return optuna.get_all_study_names(store)
    except Exception as exc:  # noqa: BLE001
        raise SweeperError(f"--storage {shown_url(storage)}: {one_line(mask_url(str(exc)), 240)}") from None


# --------------------------------------------------------------------------- dead workers


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
