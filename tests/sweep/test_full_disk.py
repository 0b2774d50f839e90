"""A full disk under a journal or SQLite storage: one error line, nothing finished lost, and a
torn last journal line repaired on the next open.

The disk is real: a 256 KiB tmpfs mounted by the test where it runs as root (it does in this
sandbox); elsewhere the limit is the process's file-size limit (``RLIMIT_FSIZE``), which the
kernel enforces the same way (a short write, then ``EFBIG``) without root.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import warnings
from pathlib import Path

import pytest
from optuna.trial import TrialState

from sweeper.errors import SweeperError
from sweeper.sweep import records
from sweeper.sweep.disk import repair_journal, writes_to
from sweeper.sweep.storage import open_storage


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a 256 KiB filesystem, and a function that fills it (a write then fits only in
    the slack of a file's last 4 KiB page)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (not root); test_a_file_size_limit_* covers the same writes")

    def fill() -> Path:
        filler = folder / "filler"
        with open(filler, "ab", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"\0" * 4096)
                    handle.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        stat = os.statvfs(folder)
        assert stat.f_bavail * stat.f_frsize < 4096
        return filler

    yield folder, fill
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _journal_with_runs(path: Path, n: int = 3):
    import optuna

    study = optuna.create_study(study_name="s", storage=open_storage(str(path)), direction="maximize")
    for i in range(n):
        trial = study.ask()
        records.write(trial, history=[{"epoch": 0, "miou": 0.1 * i}])
        study.tell(trial, 0.1 * i)
    return study


def test_a_full_disk_is_one_error_and_the_torn_journal_line_is_repaired(small_disk):
    import optuna

    folder, fill = small_disk
    path = folder / "study.log"
    study = _journal_with_runs(path)
    trial = study.ask()  # the run that is going when the disk fills
    size_before = path.stat().st_size
    filler = fill()
    with pytest.raises(SweeperError, match=r"--storage .*study.log: cannot write: No space left on device \(ENOSPC\)"):
        with writes_to(study._storage):
            records.write(trial, history=[{"epoch": e, "miou": 0.5, "note": "x" * 40} for e in range(200)])
    torn = path.stat().st_size - size_before
    assert torn > 0 and not path.read_bytes().endswith(b"\n")  # a half-written line is on disk

    # What Optuna does with it: replay skips a last line without a newline, but the next append is
    # glued to it, so that record is lost: the ask that wrote it crashes, and once any line follows
    # the glued one, every open fails with a JSON error.
    filler.unlink()
    copy = folder / "copy.log"
    copy.write_bytes(path.read_bytes())
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    plain = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(copy))))
    with pytest.raises(AttributeError):
        plain.ask()
    with open(copy, "ab") as handle:
        handle.write(path.read_bytes().splitlines(keepends=True)[0])  # any complete line after it
    with pytest.raises(ValueError):
        JournalStorage(JournalFileBackend(str(copy)))

    with pytest.warns(UserWarning, match=f"dropped {torn} byte"):
        reopened = optuna.load_study(study_name="s", storage=open_storage(str(path)))
    states = [t.state for t in reopened.get_trials()]
    assert states == [TrialState.COMPLETE] * 3 + [TrialState.RUNNING]  # nothing finished is lost
    assert [t.value for t in reopened.get_trials()][:3] == pytest.approx([0.0, 0.1, 0.2])
    reopened.tell(reopened.ask(), 1.0)  # and the journal takes new records again
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file: no warning
        again = optuna.load_study(study_name="s", storage=open_storage(str(path)))
    assert len(again.get_trials()) == 5


def test_a_glued_line_from_an_older_run_is_repaired(tmp_path):
    """A torn write that was followed by another append (the state older sweepers left behind):
    the torn prefix goes, the complete record after it stays."""
    import optuna

    path = tmp_path / "old.log"
    _journal_with_runs(path, n=2)
    lines = path.read_bytes().splitlines(keepends=True)
    torn = lines[-1][: len(lines[-1]) // 2]
    path.write_bytes(b"".join(lines[:-1]) + torn + lines[-1])  # the last tell glued to a torn copy
    with pytest.warns(UserWarning, match=f"dropped {len(torn)} byte"):
        study = optuna.load_study(study_name="s", storage=open_storage(str(path)))
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2
    assert repair_journal(path, full=True) == 0


def test_a_full_disk_under_sqlite_is_one_error_and_the_study_stays_readable(small_disk):
    import optuna

    folder, fill = small_disk
    url = str(folder / "study.db")
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    study.tell(study.ask(), 0.5)
    fill()
    with pytest.raises(SweeperError, match=r"--storage .*study.db: cannot write: database or disk is full"):
        with writes_to(study._storage):
            for _ in range(50):
                study.set_user_attr("note", "x" * 4000)
                study.tell(study.ask(), 0.1)
    reread = optuna.load_study(study_name="s", storage=open_storage(url))
    assert reread.get_trials()[0].state == TrialState.COMPLETE and reread.get_trials()[0].value == 0.5


def test_a_file_size_limit_gives_the_same_error_without_root(tmp_path):
    """The fault needs no mount: a child process limited to the journal's current size plus a
    few bytes gets a short write, then EFBIG, exactly as on a full disk."""
    path = tmp_path / "limited.log"
    _journal_with_runs(path, n=2)
    limit = path.stat().st_size + 200
    code = (
        "import optuna, sys\n"
        "from sweeper.sweep import records\n"
        "from sweeper.sweep.disk import writes_to\nfrom sweeper.sweep.storage import open_storage\n"
        "from sweeper.errors import SweeperError\n"
        f"study = optuna.load_study(study_name='s', storage=open_storage({str(path)!r}))\n"
        "try:\n"
        "    with writes_to(study._storage):\n"
        "        t = study.ask(); records.write(t, history=[{'epoch': e, 'note': 'x' * 50} for e in range(50)])\n"
        "except SweeperError as e:\n"
        "    print(e); sys.exit(2)\n"
    )

    def limit_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=limit_size,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert "cannot write: File too large (EFBIG)" in done.stdout and "Traceback" not in done.stderr
    assert path.stat().st_size == limit and not path.read_bytes().endswith(b"\n")
    with pytest.warns(UserWarning, match="dropped"):
        import optuna

        study = optuna.load_study(study_name="s", storage=open_storage(str(path)))
    assert [t.state for t in study.get_trials()][:2] == [TrialState.COMPLETE] * 2
