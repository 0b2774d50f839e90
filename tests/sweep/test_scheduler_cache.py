"""The runner's own cost: records of finished trials parsed once, collections that skip old objects.

Nothing here may change what a worker decides: a cached read equals a fresh one, a trial that
finishes between two reads is read again, a unit held by another trial is still a duplicate, and
what training left in reference cycles is still freed after each unit.
"""

from __future__ import annotations

import gc
import weakref

import pytest
from optuna.trial import TrialState

from sweeper.sweep.records import REPEAT, SCREEN, CandidateKey, TrialRecord, Unit, read_records
from sweeper.sweep.runner import FlatCollections, RecordCache, Runner
from sweeper.sweep.storage import open_storage

UNITS = [Unit(CandidateKey.of("unet", "resnet18"), seed, 0, SCREEN if seed == 0 else REPEAT) for seed in range(3)]


@pytest.fixture
def study(tmp_path):
    import optuna

    return optuna.create_study(study_name="cache", storage=open_storage(str(tmp_path / "cache.db")),
                               direction="maximize")


def _space():
    from sweeper.sweep.space import parse_space

    return parse_space({"name": "cache", "recipe": {"epochs": 2}, "architectures": {"pairs": ["unet/resnet18"]},
                        "seeds": 3, "racing": False, "pruner": "none", "trials": 1}, source="test")


def _finished(unit: Unit, value: float):
    import optuna

    return optuna.trial.create_trial(state=TrialState.COMPLETE, value=value,
                                     user_attrs=dict(unit.user_attrs(), wall_time_s=1.0))


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # study.ask() here, not optimize
def test_a_cached_read_equals_a_fresh_one_and_parses_only_unfinished_trials(study, monkeypatch):
    study.add_trial(_finished(UNITS[0], 0.5))
    study.enqueue_trial({}, user_attrs=UNITS[1].user_attrs())  # WAITING
    running = study.ask()  # pops the waiting trial: RUNNING, attributes still to come
    study.enqueue_trial({}, user_attrs=UNITS[2].user_attrs())
    cache = RecordCache(study)
    assert cache.records() == read_records(study)

    parsed = []
    original = TrialRecord.from_trial.__func__
    monkeypatch.setattr(TrialRecord, "from_trial", classmethod(lambda cls, t: parsed.append(t.number)
                                                               or original(cls, t)))
    records = cache.records()
    assert sorted(parsed) == [1, 2]  # the RUNNING and WAITING ones; the finished one came from the cache
    assert records == read_records(study)

    running.set_user_attr("wall_time_s", 2.5)  # the running trial changes, then finishes
    study.tell(running, 0.7)
    records = cache.records()
    assert records == read_records(study)
    assert records[1].state == TrialState.COMPLETE and records[1].value == 0.7 and records[1].wall_time_s == 2.5
    parsed.clear()
    cache.records()
    assert parsed == [2]  # now only the waiting one
    assert [r.number for r in cache.with_unit(UNITS[1].key)] == [1]


def _fake_train(cycles: list):
    """A train_run stub that leaves a reference cycle behind, as a model in a traceback can."""
    from sweeper.training.loop import EpochMetrics, RunResult

    def train_run(config, seed, *, data=None, on_epoch=None, progress=None, save_best=None, on_step=None):
        if cycles:
            assert cycles[-1]() is None, "the previous unit's garbage was not collected before this unit"

        class Model:
            pass

        model = Model()
        model.self = model
        cycles.append(weakref.ref(model))
        history = [EpochMetrics(epoch=e, train_loss=1.0, val_loss=1.0, miou=0.5 + 0.01 * seed, pixel_accuracy=0.9,
                                iou=[0.5], seconds=0.1) for e in range(config.epochs)]
        for m in history:
            on_epoch(m)
        return RunResult(config=config.to_dict(), seed=seed, history=history, best_epoch=len(history) - 1,
                         best_miou=history[-1].miou, params=123, class_names=["background"], wall_time_s=0.2,
                         images_per_s=10.0, peak_memory_mb=1.0, device="cpu", versions={})

    return train_run


def test_run_frees_each_units_cycles_and_leaves_the_collector_as_it_was(study, monkeypatch):
    import sweeper.training
    from sweeper.sweep.plans import FixedUnits

    cycles: list = []
    monkeypatch.setattr(sweeper.training, "train_run", _fake_train(cycles))
    frozen = gc.get_freeze_count()
    counts = Runner(study, None, params_of={"unet/resnet18": 123}).run(FixedUnits(_space(), UNITS))
    assert counts.trained == 3 and len(cycles) == 3
    assert all(ref() is None for ref in cycles)
    assert gc.get_freeze_count() == frozen
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert all(t.user_attrs["params_count"] == 123 and len(t.user_attrs["history"]) == 2 for t in trials)


def test_a_unit_held_by_an_earlier_trial_is_still_a_duplicate(study, monkeypatch):
    import sweeper.training
    from sweeper.sweep.plans import FixedUnits

    monkeypatch.setattr(sweeper.training, "train_run", _fake_train([]))
    study.add_trial(_finished(UNITS[0], 0.5))
    runner = Runner(study, None)
    runner._plan = FixedUnits(_space(), UNITS)
    runner.records()  # the finished trial is now in the cache
    runner.run_unit(UNITS[0])  # another worker's claim of a unit already run
    last = TrialRecord.from_trial(study.get_trials()[-1])
    assert last.state == TrialState.PRUNED and last.duplicate_of == 0
    assert runner.counts.trained == 0


def test_collections_leave_freezing_to_whoever_froze_first():
    gc.collect()
    gc.freeze()
    try:
        assert not FlatCollections().freezing
    finally:
        gc.unfreeze()
    collections = FlatCollections()
    assert collections.freezing
    collections.collect()
    assert gc.get_freeze_count() > 0
    collections.close()
    assert gc.get_freeze_count() == 0


# --------------------------------------------------------------------------- the storages' own waits

def _modes(store) -> tuple[str, int]:
    with store.engine.connect() as connection:
        journal = connection.exec_driver_sql("PRAGMA journal_mode").fetchone()[0]
        synchronous = connection.exec_driver_sql("PRAGMA synchronous").fetchone()[0]
    return journal, synchronous


def _opened(path, **kwargs) -> tuple[str, int]:
    """The modes a connection of a freshly opened storage has; the storage is closed after (an
    open one keeps the file busy, and its mode is then left as it is)."""
    store = open_storage(str(path), **kwargs)
    try:
        return _modes(store)
    finally:
        store.engine.dispose()


def test_sqlite_keeps_its_mode_unless_asked_and_a_network_disk_gets_the_rollback_journal(tmp_path, monkeypatch):
    import sweeper.sweep.storage as storage

    monkeypatch.delenv("SWEEPER_SQLITE_WAL", raising=False)
    assert _opened(tmp_path / "plain.db") == ("delete", 2)  # by default SQLite's own mode, synchronous FULL
    monkeypatch.setenv("SWEEPER_SQLITE_WAL", "1")
    worker = open_storage(str(tmp_path / "local.db"))
    assert _modes(worker) == ("wal", 1)  # 1: synchronous NORMAL
    monkeypatch.delenv("SWEEPER_SQLITE_WAL")
    assert _opened(tmp_path / "local.db") == ("wal", 1)  # no flag: the file's mode is left as it is
    monkeypatch.setattr(storage, "filesystem_type", lambda path: "nfs4")
    with worker.engine.connect() as busy:  # another worker holds the file: its mode stays, nobody waits
        busy.exec_driver_sql("BEGIN IMMEDIATE")
        second = open_storage(str(tmp_path / "local.db"))
        assert _modes(second) == ("wal", 1)
        busy.exec_driver_sql("ROLLBACK")
    worker.engine.dispose()
    second.engine.dispose()
    assert _opened(tmp_path / "local.db") == ("delete", 2)  # moved to NFS: back, and FULL
    monkeypatch.setattr(storage, "filesystem_type", lambda path: None)
    monkeypatch.setenv("SWEEPER_SQLITE_WAL", "1")
    assert _opened(tmp_path / "other.db") == ("wal", 1)
    monkeypatch.setenv("SWEEPER_SQLITE_WAL", "0")
    assert _opened(tmp_path / "other.db", must_exist=True) == ("wal", 1)  # a command that reads changes nothing
    assert _opened(tmp_path / "other.db") == ("delete", 2)
    monkeypatch.setenv("SWEEPER_SQLITE_WAL", "1")
    assert _opened(tmp_path / "other.db") == ("wal", 1)
    monkeypatch.setenv("SWEEPER_SQLITE_WAL", "0")
    assert _opened(tmp_path / "other.db", must_exist=True) == ("wal", 1)  # a command that reads changes nothing
    assert _opened(tmp_path / "other.db") == ("delete", 2)


def test_opening_a_sqlite_storage_never_opens_the_database_file_from_python(tmp_path, monkeypatch):
    """Closing any descriptor of the file drops SQLite's POSIX locks in this process; in WAL mode a
    test or a worker that opens the storage again while its connections are open then corrupted
    the file (test_scaleout saw "database disk image is malformed")."""
    import builtins
    import os

    path = tmp_path / "x.db"
    held = open_storage(str(path))  # a connection of this process stays open, as in a polling test
    _modes(held)
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    monkeypatch.setattr(os, "open", lambda f, *a, **k: opened.append(str(f)) or real_os_open(f, *a, **k))
    open_storage(str(path))
    assert str(path) not in opened


def test_filesystem_type_names_the_mount_holding_a_path(tmp_path):
    from pathlib import Path

    from sweeper.sweep.storage import filesystem_type

    if not Path("/proc/self/mounts").is_file():
        pytest.skip("no /proc/self/mounts here")
    mounts = [line.split() for line in Path("/proc/self/mounts").read_text().splitlines()]
    root = next(fields[2] for fields in reversed(mounts) if fields[1] == "/")
    assert filesystem_type(Path("/")) == root
    assert filesystem_type(tmp_path) is not None


def test_a_journal_syncs_at_changes_of_state_and_reads_back_with_plain_optuna(tmp_path, monkeypatch):
    import os

    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    import sweeper.training
    from sweeper.sweep.plans import FixedUnits

    path = tmp_path / "study.log"
    study = optuna.create_study(study_name="j", storage=open_storage(str(path)), direction="maximize")
    monkeypatch.setattr(sweeper.training, "train_run", _fake_train([]))
    syncs = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: syncs.append(fd) or real(fd))
    Runner(study, None).run(FixedUnits(_space(), UNITS[:1]))
    assert 1 <= len(syncs) <= 4  # enqueued, popped, finished: not one per attribute (~20 here)
    plain = optuna.load_study(study_name="j", storage=JournalStorage(JournalFileBackend(str(path))))
    assert [t.user_attrs for t in plain.get_trials()] == [t.user_attrs for t in study.get_trials()]
    assert plain.get_trials()[0].state == TrialState.COMPLETE and len(plain.get_trials()[0].user_attrs["history"]) == 2


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # study.ask() here, not optimize
def test_a_full_disk_under_sqlite_in_wal_mode_is_one_error_and_the_study_stays_readable(tmp_path, monkeypatch):
    """As ``test_full_disk`` for the rollback journal (tmpfs keeps that mode), with the log forced on
    (the log and its index need room beside the file, so the disk here is 2 MiB); the study is read
    back on the full disk, as ``report`` would."""
    import errno
    import os
    import subprocess

    import optuna

    from sweeper.errors import SweeperError
    from sweeper.sweep.disk import writes_to

    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        monkeypatch.setenv("SWEEPER_SQLITE_WAL", "1")
        url = str(folder / "study.db")
        study = optuna.create_study(study_name="s", storage=open_storage(url))
        assert _modes(study._storage._backend)[0] == "wal"
        study.tell(study.ask(), 0.5)
        with open(folder / "filler", "ab", buffering=0) as handle:
            with pytest.raises(OSError) as full:
                while True:
                    handle.write(b"\0" * 4096)
            assert full.value.errno == errno.ENOSPC
        with pytest.raises(SweeperError, match=r"--storage .*study.db: cannot write: database or disk is full"):
            with writes_to(study._storage):
                for _ in range(200):
                    study.set_user_attr("note", "x" * 4000)
                    study.tell(study.ask(), 0.1)
        reread = optuna.load_study(study_name="s", storage=open_storage(url))
        assert reread.get_trials()[0].state == TrialState.COMPLETE and reread.get_trials()[0].value == 0.5
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
