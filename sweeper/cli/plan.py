"""`sweeper plan`: what a tune would do and what it would cost, without training or writing.

``sweeper tune --dry-run`` is the same command. The storage is only read, and only when it
already holds the study (a SQLite file opened read-only, as ``report`` does); a storage or
study that does not exist yet is "nothing done", not an error, and is not created.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from sweeper.cli._app import (
    DataJson,
    Device,
    Epochs,
    ImageRoot,
    MaxParams,
    Seeds,
    Space,
    Storage,
    Study,
    Trials,
    ValJson,
    ValRoot,
    app,
    errors,
    path_or_none,
)
from sweeper.errors import SweeperError


class PlanFormat(str, Enum):
    table = "table"
    json = "json"


class EstimateMethod(str, Enum):
    flops = "flops"
    pairs = "pairs"
    none = "none"


@app.command()
@errors
def plan(
    space: Space = None,
    trials: Trials = None,
    epochs: Epochs = None,
    max_params: MaxParams = None,
    seeds: Seeds = None,
    storage: Storage = None,
    study: Study = None,
    device: Device = None,
    train_json: DataJson = None,
    image_root: ImageRoot = None,
    val_json: ValJson = None,
    val_root: ValRoot = None,
    debug: Annotated[bool, typer.Option("--debug", help="Plan tune --debug (32 images, at most 2 epochs at 64 px).")
                     ] = False,
    estimate: Annotated[
        EstimateMethod, typer.Option("--estimate", help="flops: time screened pairs here for a few seconds (at a "
                                     "smaller batch or size where needed) and scale by GFLOPs x images; pairs: "
                                     "time every screened pair at the recipe's batch and size (slower); none: no "
                                     "timing.")
    ] = EstimateMethod.flops,
    fmt: Annotated[PlanFormat, typer.Option("--format", help="table or json (every candidate, phases, totals).")
                   ] = PlanFormat.table,
) -> None:
    """Print what tune would do: candidates in screening order, phases, runs and time; trains and writes nothing."""
    from sweeper.sweep.space import apply_overrides, load_space

    spec = apply_overrides(load_space(space), trials=trials, epochs=epochs, max_params=max_params, seeds=seeds,
                           device=device, train_json=path_or_none(train_json), image_root=path_or_none(image_root),
                           val_json=path_or_none(val_json), val_root=path_or_none(val_root), debug=debug)
    show_plan(spec, storage=storage, study_name=study or spec.name + ("-debug" if debug else ""),
              estimate=estimate.value, fmt=fmt.value)


def show_plan(spec, *, storage: Optional[str], study_name: str, estimate: str = "flops", fmt: str = "table") -> None:
    """Build the preview of ``tune`` on ``spec`` and print it (``tune --dry-run`` calls this too)."""
    from sweeper import console
    from sweeper.report import plan as render
    from sweeper.sweep.estimate import calibrate
    from sweeper.sweep.plans import ScreenThenRace
    from sweeper.sweep.preview import preview_tune
    from sweeper.sweep.records import CandidateKey
    from sweeper.sweep.storage import shown_url
    from sweeper.sweep.study import _prepare

    if fmt not in ("table", "json"):
        raise SweeperError(f"--format {fmt}: a plan prints as table or json")
    data, candidates = _prepare(spec)  # the same checks and candidates as tune, before any storage
    records = read_done(storage, study_name)
    keys = [CandidateKey.of(c.arch, c.encoder) for c in candidates]
    screened_keys = set(ScreenThenRace(spec, keys).screened()) if not spec.hparams else set(keys)
    screened = [c for c, k in zip(candidates, keys) if k in screened_keys]
    if estimate != "none" and fmt == "table":
        console.err.print(f"timing {'every screened pair' if estimate == 'pairs' else 'screened pairs'} on this "
                          "device (nothing is written)...", highlight=False)
    cost = calibrate(spec, data, screened=screened, method=estimate) if estimate != "none" else None
    preview = preview_tune(spec, candidates, study=study_name, storage=shown_url(storage), records=records,
                           cost=cost, images={f.index: (len(f.train_idx), len(f.val_idx)) for f in data.folds})
    if fmt == "json":
        console.out.file.write(render.to_json(preview))
    else:
        render.render(preview, console.out)


def read_done(storage: Optional[str], study_name: str) -> list:
    """The records of ``study_name`` in ``storage`` (the default ``sweeper.db`` here when not
    given, as tune would use), read without writing; ``[]`` when the storage or the study does not
    exist yet. Nothing is created: a missing file stays missing."""
    from sweeper.sweep.storage import is_journal, local_file, open_storage, storage_url, study_names

    url = storage_url(storage)
    local = local_file(url)
    if local is not None and (not local.is_file() or local.stat().st_size == 0):
        return []
    if is_journal(url):
        return _journal_records(local, study_name)
    if local is not None:
        if not _sqlite_has_studies(local):
            return []
    elif not _server_has_studies(url):
        return []
    import optuna

    from sweeper.cli.study import _read_only
    from sweeper.sweep.records import read_records

    with _read_only(storage) as reading:
        store = open_storage(reading)
        if study_name not in study_names(store, storage):
            return []
        return read_records(optuna.load_study(study_name=study_name, storage=store))


def _sqlite_has_studies(path) -> bool:
    """Whether a SQLite file holds Optuna's tables (a file of something else is refused, as tune would)."""
    import sqlite3

    from sweeper.sweep.storage import check_sqlite_file

    check_sqlite_file(path)
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return connection.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='studies'"
                                      ).fetchone() is not None
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise SweeperError(f"--storage {path}: cannot read: {exc}") from None


def _server_has_studies(url: str) -> bool:
    """Whether a database server's schema has Optuna's tables (Optuna would create them on open)."""
    from sweeper.errors import one_line
    from sweeper.sweep.storage import _with_driver, mask_url

    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(_with_driver(url))
        try:
            return sqlalchemy.inspect(engine).has_table("studies")
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types for a bad URL or server
        raise SweeperError(f"--storage {mask_url(url)}: cannot read: {one_line(mask_url(str(exc)), 240)}") from None


def _journal_records(path, study_name: str) -> list:
    """A journal file's study read by replaying it, without the repair that opening for writing does."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    from sweeper.errors import one_line
    from sweeper.sweep.records import read_records
    from sweeper.sweep.storage import quiet_optuna

    quiet_optuna()
    try:
        store = JournalStorage(JournalFileBackend(str(path)))
        if study_name not in optuna.get_all_study_names(store):
            return []
        return read_records(optuna.load_study(study_name=study_name, storage=store))
    except Exception as exc:  # noqa: BLE001 - a torn journal: tune or report repairs it
        raise SweeperError(f"--storage {path}: cannot read the journal ({one_line(exc, 200)}); sweeper report "
                           "or tune repairs a torn write") from None
