"""What a refused write does to a storage: one error line instead of a traceback, and a journal
file whose last write did not finish (a full disk, a killed worker) repaired on the next open.
A journal file waits for the disk at a trial's changes of state, not at each of its attributes
(:func:`state_synced_journal`)."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
from pathlib import Path

from sweeper.errors import SweeperError, one_line
from sweeper.sweep.storage import mask_url

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


@functools.cache
def state_synced_journal():
    """The journal backend sweeper opens: Optuna's ``JournalFileBackend``, synced at changes of
    state only (made on first use, so that importing this module does not import Optuna)."""
    import json

    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal._file import get_lock_file
    from optuna.storages.journal._storage import JournalOperation

    unsynced = {int(JournalOperation.SET_TRIAL_PARAM), int(JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE),
                int(JournalOperation.SET_TRIAL_USER_ATTR), int(JournalOperation.SET_TRIAL_SYSTEM_ATTR)}

    class StateSyncedJournal(JournalFileBackend):
        """Optuna's journal file, ``fsync``-ed when a study or a trial is created or changes state
        (enqueued, popped, finished, failed), not after each of a trial's attributes, params and
        reports.

        Optuna syncs every append: a trial's ~35 writes wait for the disk ~35 times (0.08 s of a
        unit's 0.1 s on this machine's shared disk, ``benchmarks/scheduler.py``). Other workers see
        an append at once either way (the kernel's page cache on one machine; close-to-open on
        NFS, whose ``close`` sends the data), and appends stay under Optuna's lock, so nothing
        changes for them. What a power cut or an OS crash (not a killed worker) may now lose is
        the attributes written since the trial's last change of state, which is synced with
        everything before it: the claim of a unit (WAITING -> RUNNING) and its end are on disk
        when ``optimize`` returns, and a write the disk refused late surfaces at that sync. A torn
        tail is cut on the next open (:func:`repair_journal`).
        """

        def append_logs(self, logs: list[dict]) -> None:
            if any(log.get("op_code") not in unsynced for log in logs):
                super().append_logs(logs)
                return
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with get_lock_file(self._lock):
                with open(self._file_path, "ab") as handle:
                    handle.write(text.encode("utf-8"))

    return StateSyncedJournal


def open_journal(path: Path, shown: str):
    import warnings

    from optuna.storages.journal import JournalStorage

    def opened():
        return JournalStorage(state_synced_journal()(str(path)))

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
