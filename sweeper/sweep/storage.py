"""Where studies live: storage URLs, opening SQLite, PostgreSQL and journal files.

A ``--storage`` value is a URL (``sqlite:///x.db``, ``postgresql://...``), a ``.db`` path
(SQLite), or any other path (a journal file that several processes on one machine share). RDB
storages get heartbeats: a RUNNING trial whose worker sent none for ``GRACE_PERIOD_S`` seconds is
failed and retried by the next worker (:mod:`sweeper.sweep.workers`); what a full disk or a torn
journal write does is :mod:`sweeper.sweep.disk`'s. Every URL that is printed goes through
:func:`mask_url` first. ``SWEEPER_SQLITE_WAL=1`` keeps a SQLite file in write-ahead-log mode
(:func:`sqlite_wal`): a trial's ~35 small writes then wait for the disk once per checkpoint, not
at each commit.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import re
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
        from sweeper.sweep.disk import open_journal

        return open_journal(local, shown)
    wal = None
    if local is not None:
        check_sqlite_file(local)
        wal = None if must_exist else sqlite_wal(local)  # a command that only reads changes nothing
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
                if wal is not None:
                    _set_journal_mode(local, "wal" if wal else "delete")
                store = optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs,
                    heartbeat_interval=int(os.environ.get("SWEEPER_HEARTBEAT_S", HEARTBEAT_INTERVAL_S)),
                    grace_period=grace_period_s(),
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
                )
                if local is not None:
                    _sync_wal_normally(store.engine)
                return store
        except ImportError as exc:
            driver = exc.name or one_line(exc, 240)
            raise SweeperError(f"--storage {shown}: the database driver is missing ({driver}); install it, "
                               "e.g. pip install psycopg2-binary for postgresql+psycopg2://") from None
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types for a bad URL or server
            from sweeper.sweep.disk import write_failure

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


#: File systems where SQLite's write-ahead log is unsafe: its index lives in shared memory that
#: only one machine sees (SQLite: "WAL does not work over a network filesystem"). A SQLite file
#: there keeps the rollback journal. ``fuse`` covers sshfs, gcsfuse and the like.
NETWORK_FILESYSTEMS = ("nfs", "cifs", "smb", "9p", "afs", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
                       "gfs2", "ocfs2", "panfs", "wekafs", "virtiofs", "fuse")
#: File systems in memory: a commit never waits for them, so the log would only take more room.
MEMORY_FILESYSTEMS = ("tmpfs", "ramfs")


def filesystem_type(path: Path) -> str | None:
    """The type of the file system holding ``path`` (``ext4``, ``nfs4``), from ``/proc/self/mounts``;
    None where that cannot be read (not Linux)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    target = str(Path(path).resolve())
    best, kind = "", None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, fields[2]
    return kind


def sqlite_wal(path: Path) -> bool | None:
    """Whether to put a SQLite study file in write-ahead-log mode (True), back in its rollback
    journal (False), or leave it in the mode it has (None, the default).

    In the rollback-journal mode every commit waits for the disk (several ``fsync``), and a trial
    commits ~35 times (each attribute, each epoch's report), so on a busy disk the writes can cost
    more than all the rest of sweeper's work (``benchmarks/scheduler.py``: 0.5 against 0.05 s per
    trial measured on a shared disk). With the log and ``synchronous=NORMAL`` (set per connection
    by :func:`_sync_wal_normally`), a commit is an append; the disk is waited for at checkpoints.
    It is opt-in, ``SWEEPER_SQLITE_WAL=1``, because of what it gives up: after a power cut or an OS
    crash the last commits may be rolled back (their units run again); the file's bytes change
    when the log is checkpointed, also after a reader closes it, so a study file stops being
    byte-for-byte stable under read-only commands; and it does not work over a network file
    system. ``SWEEPER_SQLITE_WAL=0`` puts a file back in its rollback journal, and so does
    opening it on a network file system (:data:`NETWORK_FILESYSTEMS`).
    """
    flag = os.environ.get("SWEEPER_SQLITE_WAL", "").strip().lower()
    if flag:
        return flag not in ("0", "no", "false", "off")
    kind = filesystem_type(path.parent)
    if kind is not None and kind.startswith(NETWORK_FILESYSTEMS):
        return False
    return None


def _set_journal_mode(path: Path, mode: str) -> None:
    """Put a SQLite file in ``wal`` or ``delete`` mode (the mode is kept in the file).

    Switching needs the file to itself for a moment: while another process holds it (a worker, a
    dashboard) the file stays in its mode, which is correct either way, rather than the open
    waiting for them. A write the disk refuses is raised (the caller's one-line error).
    """
    import sqlite3

    connection = sqlite3.connect(str(path), timeout=1.0)
    try:
        connection.execute(f"PRAGMA journal_mode={mode}")
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
    finally:
        connection.close()


def _sync_wal_normally(engine) -> None:
    """``synchronous=NORMAL`` on every connection to a file in WAL mode (see :func:`sqlite_wal`);
    a file in rollback-journal mode keeps SQLite's default ``FULL``, which that mode needs."""
    from sqlalchemy import event

    def on_connect(connection, record) -> None:
        cursor = connection.cursor()
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # the connections Optuna opened to check its tables were made before the listener


def grace_period_s() -> int:
    return int(os.environ.get("SWEEPER_GRACE_S", GRACE_PERIOD_S))


@contextlib.contextmanager
def _schema_lock(local: Path | None):
    """An exclusive ``flock`` on the folder of a SQLite file while Optuna creates or checks its tables.

    This only orders the sweeper processes that open a file there. The lock is on the folder, never
    on the database file itself: closing any descriptor of that file drops every POSIX lock the
    process holds on it, SQLite's own included (the open connections of a worker or of a test
    that polls), and in WAL mode that lets another process rebuild the shared index under a
    reader: "database disk image is malformed" (sqlite.org/howtocorrupt.html, 2.2). Where the
    folder cannot be locked (``flock`` on some network file systems), the retries of
    :func:`open_storage` are what remains.
    """
    if local is None:
        yield
        return
    import fcntl

    folder = os.open(local.parent, os.O_RDONLY)
    try:
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(folder)  # releases the flock; no POSIX lock of SQLite's is on a folder


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


def study_names(store, storage: str | None) -> list[str]:
    """The names of the studies in an opened storage (an unreachable server is a one-line error)."""
    import optuna

    try:
        return optuna.get_all_study_names(store)
    except Exception as exc:  # noqa: BLE001
        raise SweeperError(f"--storage {shown_url(storage)}: {one_line(mask_url(str(exc)), 240)}") from None
