"""Where studies live: storage URLs, opening SQLite, PostgreSQL and journal files.

A ``--storage`` value is a URL (``sqlite:///x.db``, ``postgresql://...``), a ``.db`` path
(SQLite), or any other path (a journal file that several processes on one machine share). RDB
storages get heartbeats: a RUNNING trial whose worker sent none for ``GRACE_PERIOD_S`` seconds is
failed and retried by the next worker (:mod:`sweeper.sweep.workers`); what a full disk or a torn
journal write does is :mod:`sweeper.sweep.disk`'s. Every URL that is printed goes through
:func:`mask_url` first.
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


def grace_period_s() -> int:
    return int(os.environ.get("SWEEPER_GRACE_S", GRACE_PERIOD_S))


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


def study_names(store, storage: str | None) -> list[str]:
    """The names of the studies in an opened storage (an unreachable server is a one-line error)."""
    import optuna

    try:
        return optuna.get_all_study_names(store)
    except Exception as exc:  # noqa: BLE001
        raise SweeperError(f"--storage {shown_url(storage)}: {one_line(mask_url(str(exc)), 240)}") from None
