"""optuna-dashboard: the ranked table saved into a study as its note and figure, and the command
line that serves a storage (with the study's weight files)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from sweeper.errors import SweeperError
from sweeper.sweep.disk import writes_to
from sweeper.sweep.storage import artifact_dir, is_journal, local_file, mask_url, open_storage, shown_url, storage_url

#: What the note says first: the dashboard's own "Best Trial" card is one lucky run, not sweeper's answer.
NOTE_PREAMBLE = ("The **Best Trial** card above shows the single best *run* (one seed). sweeper's best is "
                 "the best *mean over seeds*, **{best}**, and every candidate's verdict against it is below.\n\n")


def publish_to_dashboard(study_name: str, storage: str | None, ranking) -> None:
    """Save the ranked table as the study's note and a CI figure, for optuna-dashboard."""
    import optuna
    from optuna_dashboard import save_note, save_plotly_graph_object

    from sweeper import report

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    note = "# sweeper ranking\n\n" + NOTE_PREAMBLE.format(best=ranking.best_key) + report.to_markdown(ranking)
    with writes_to(shown_url(storage)):
        save_note(study, note)
        save_plotly_graph_object(study, report.plotly_figure(ranking), graph_object_id="sweeper-ranking")


def publish_ablation(study_name: str, storage: str | None, table) -> None:
    """Save an ablation's arms table (markdown, with the baseline's config) as the study's note."""
    import optuna
    from optuna_dashboard import save_note

    from sweeper.report import ablation

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    note = ("# sweeper ablation\n\nThe **Best Trial** card above shows the single best *run*; the ablation's "
            "answer is each change's effect against the baseline, below.\n\n" + ablation.to_markdown(table))
    with writes_to(shown_url(storage)):
        save_note(study, note)


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
    if not os.access(exe, os.X_OK):
        raise SweeperError("optuna-dashboard is not installed here; pip install optuna-dashboard")
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


def check_can_serve(storage: str | None, host: str, port: int) -> None:
    """Fail with one line, before optuna-dashboard replaces this process, for what would make it
    die with a traceback: a storage it cannot open (a server that does not answer, a file of
    something else) and an address it cannot listen on (a port in use, a host not on this
    machine).

    The port is tried as optuna-dashboard's server binds it (IPv4, ``SO_REUSEADDR``), so a port
    that only has connections in TIME_WAIT counts as free, as it does for the server.
    """
    import errno
    import socket

    from sweeper.sweep.storage import study_names

    study_names(open_storage(storage, must_exist=True), storage)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except socket.gaierror as exc:
        raise SweeperError(f"--host: {host} is not a known address ({exc.strerror})") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise SweeperError(f"--port: {host}:{port} is already in use (another dashboard?); choose another "
                               "--port or stop that process") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise SweeperError(f"--host: {host} is not an address of this machine") from None
        if exc.errno == errno.EACCES:
            raise SweeperError(f"--port: {port} needs root (ports below 1024); choose --port 1024 or more") from None
        raise SweeperError(f"--host {host} --port {port}: cannot listen: {exc.strerror or exc}") from None
    finally:
        probe.close()


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
