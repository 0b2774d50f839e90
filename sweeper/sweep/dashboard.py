"""optuna-dashboard: the ranked table saved into a study as its note and figure, and the command
line that serves a storage (with the study's weight files)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from sweeper.errors import SweeperError
from sweeper.sweep.storage import (
    artifact_dir,
    is_journal,
    local_file,
    mask_url,
    open_storage,
    shown_url,
    storage_url,
    writes_to,
)


def publish_to_dashboard(study_name: str, storage: str | None, ranking) -> None:
    """Save the ranked table as the study's note and a CI figure, for optuna-dashboard."""
    import optuna
    from optuna_dashboard import save_note, save_plotly_graph_object

    from sweeper import report

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    note = "# sweeper ranking\n\n" + report.to_markdown(ranking)
    with writes_to(shown_url(storage)):
        save_note(study, note)
        save_plotly_graph_object(study, report.plotly_figure(ranking), graph_object_id="sweeper-ranking")


def dashboard_command(storage: str | None, *, host: str = "127.0.0.1", port: int = 8080,
                      artifacts: str | os.PathLike | None = None) -> list[str]:
    """The optuna-dashboard command line for a storage (bound to loopback unless told).

    The weight files of the study are served too when their folder exists (``artifacts``, or
    the one beside a SQLite or journal file), so each trial's page lists its weights.

    A URL with a password never goes on the command line (``ps`` would show it to every user):
    it goes into a TOML config (``--from-config``) read from an inherited pipe, ``/dev/fd/N``, so
    it is not written to disk either.
    """
    url = storage_url(storage)
    local = local_file(url)
    if local is not None and not local.exists():
        what = "journal file " if is_journal(url) else ""
        raise SweeperError(f"--storage: {what}{local} does not exist; run sweeper tune first")
    exe = shutil.which("optuna-dashboard") or str(Path(sys.executable).with_name("optuna-dashboard"))
    if mask_url(url) != url:
        command = [exe, "--from-config", _config_pipe(url), "--host", host, "--port", str(port), "--quiet"]
    else:
        command = [exe, url, "--host", host, "--port", str(port), "--quiet"]
    if is_journal(url):
        command += ["--storage-class", "JournalFileStorage"]
    if artifacts or local is not None:
        folder = artifact_dir(storage, artifacts)
        if artifacts and not folder.is_dir():
            raise SweeperError(f"--artifacts: folder {folder} does not exist")
        if folder.is_dir():
            command += ["--artifact-dir", str(folder)]
    return command


def _config_pipe(url: str) -> str:
    """``/dev/fd/N``: the read end of a pipe holding ``[optuna_dashboard] storage = url``, left
    open and inheritable for the dashboard that replaces this process."""
    import json

    text = f"[optuna_dashboard]\nstorage = {json.dumps(url)}\n".encode()  # a JSON string is a TOML basic string
    read_end, write_end = os.pipe()
    os.write(write_end, text)  # far below a pipe's buffer: never blocks
    os.close(write_end)
    os.set_inheritable(read_end, True)
    return f"/dev/fd/{read_end}"
