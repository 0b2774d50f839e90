"""The Typer app, its one error boundary, and the option types that several commands share.

Every command runs inside :func:`errors`, the one place where a :class:`SweeperError` becomes
``error: <message>`` on stderr and exit code 2.
"""

from __future__ import annotations

import functools
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from sweeper.errors import SweeperError

#: Every environment variable sweeper reads, one line each in ``sweeper --help``; SWEEPER_STORAGE
#: and SWEEPER_DEVICE are also the ``envvar`` of their options, so they show in each command's help.
ENVIRONMENT = (
    ("SWEEPER_STORAGE", "the default of --storage of every command (else sweeper.db here)."),
    ("SWEEPER_DEVICE", "the default of --device (auto, cpu, cuda, cuda:N); overrides a space's device."),
    ("SWEEPER_CACHE_DIR", "cache folder of zoo counts, rasterised masks and the demo data (default: the "
     "platform's user cache folder)."),
    ("SWEEPER_HEARTBEAT_S", "seconds between a running trial's heartbeats on SQLite and database servers "
     "(default 20)."),
    ("SWEEPER_GRACE_S", "seconds without a heartbeat after which another worker fails a running trial and "
     "queues a copy (default 60)."),
    ("SWEEPER_WORKER_HOST", "the host name a worker records in its trials (default: this machine's), to tell "
     "its dead processes from another machine's."),
    ("SWEEPER_SQLITE_WAL", "1 keeps a SQLite study file in write-ahead-log mode (faster commits), 0 puts it back "
     "in its rollback journal; unset, a file keeps its mode."),
    ("HF_HUB_OFFLINE", "0 allows downloads of hub weights (encoder_weights: imagenet); unset or 1, such a "
     "request fails at once with advice to use a local file."),
)

app = typer.Typer(
    name="sweeper",
    help="Fair, noise-aware sweeps of segmentation-models-pytorch models on COCO data.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: Packages whose versions ``--version`` prints, read from their metadata (nothing is imported).
VERSIONED = ("sweeper", "torch", "segmentation-models-pytorch", "optuna")


def version_lines() -> list[str]:
    """``["sweeper 0.1.0", "torch 2.14.1", ...]``; a package that is not installed reads ``missing``."""
    from sweeper.versions import library_versions

    versions = library_versions(VERSIONED)
    return [f"{name} {versions[name]}" for name in VERSIONED] + [f"python {versions['python']}"]


def _print_version(value: bool) -> None:
    if value:
        typer.echo("\n".join(version_lines()))
        raise typer.Exit()


@app.callback(epilog="[bold]Environment[/]\n\n" + "\n\n".join(f"[bold]{name}[/]: {text}" for name, text in ENVIRONMENT))
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_print_version, is_eager=True,
                                     help="Print the versions of sweeper, torch, smp and optuna, and exit.")
    ] = None,
) -> None:
    """Fair, noise-aware sweeps of segmentation-models-pytorch models on COCO data."""


def _line(label: str, style: str, text: str):
    """``label text`` as a rich Text: user text is printed literally (no markup, no ``:emoji:``
    codes: ``cuda:abc`` stays ``cuda:abc``)."""
    from rich.text import Text

    return Text.assemble((label, style), " ", " ".join(str(text).split()))


_OWNER = {"pid": None}


def _raise_interrupted(signum, frame):
    """Raise in the command's own process; a forked child (the zoo's counting workers) inherits
    the handler, and there the signal keeps its default meaning: the pool stops its workers with
    SIGTERM, and a worker must die quietly, not print an interruption."""
    import os
    import signal

    from sweeper.errors import Interrupted

    if os.getpid() != _OWNER["pid"]:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise Interrupted(signum)


def errors(fn):
    """Turn the project's own errors (and Ctrl-C, SIGTERM, SIGHUP) into a one-line message and an
    exit code.

    SIGTERM (a scheduler's stop) and SIGHUP (a closed terminal) raise the same interruption as
    Ctrl-C, so the running trial ends FAIL ``interrupted``, rich restores the terminal's cursor on
    the way out, and the command exits with 128 + the signal's number. Installing a handler also
    makes SIGTERM work as PID 1 (a container's entrypoint), where the default action is ignored.
    Warnings (a skipped degenerate polygon...) become one ``warning:`` line each, not Python's
    two-line format with a source line.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import signal
        import threading
        import warnings

        from sweeper import console
        from sweeper.sweep.storage import mask_url

        def one_line(message, category, filename, lineno, file=None, line=None):
            console.err.print(_line("warning:", "yellow", mask_url(str(message))), highlight=False, soft_wrap=True)

        previous = warnings.showwarning
        warnings.showwarning = one_line
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            import os

            _OWNER["pid"] = os.getpid()
            for sig in (signal.SIGTERM, signal.SIGHUP):
                handlers[sig] = signal.signal(sig, _raise_interrupted)
        try:
            return fn(*args, **kwargs)
        except SweeperError as exc:
            console.err.print(_line("error:", "bold red", mask_url(str(exc))), highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            signum = getattr(exc, "signum", signal.SIGINT)
            name = signal.Signals(signum).name
            console.err.print(f"interrupted ({name}): finished trials are kept; run the same command again to "
                              "resume", style="yellow", markup=False, emoji=False, soft_wrap=True)
            raise typer.Exit(128 + signum) from None
        finally:
            warnings.showwarning = previous
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    return wrapper


def _usage_error_line(exc) -> None:
    """Click's usage errors (``--limit abc``) as one ``error:`` line, like every other error."""
    from sweeper import console
    from sweeper.sweep.storage import mask_url

    command = exc.ctx.command_path + ": " if getattr(exc, "ctx", None) is not None else ""
    console.err.print(_line("error:", "bold red", mask_url(command + exc.format_message())), highlight=False,
                      soft_wrap=True)


def _install_usage_errors() -> None:
    from typer import rich_utils

    rich_utils.rich_format_error = _usage_error_line


_install_usage_errors()


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


class ZooSort(str, Enum):
    params = "params"
    flops = "flops"
    name = "name"


def path_or_none(value: Optional[Path]) -> Optional[str]:
    return None if value is None else str(value)


DataJson = Annotated[
    Optional[Path], typer.Option("--train-json", help="COCO annotation file (default: the space's data, "
                                 "else the demo data).")
]
ImageRoot = Annotated[
    Optional[Path], typer.Option("--image-root", help="Folder that file_name entries are relative to.")
]
ValJson = Annotated[Optional[Path], typer.Option("--val-json", help="Separate validation annotations.")]
ValRoot = Annotated[Optional[Path], typer.Option("--val-root", help="Image folder of --val-json.")]
Space = Annotated[
    Optional[str], typer.Option("--space", help="Search space: a YAML path or a shipped name (demo, zoo-50m, hparams).")
]
Storage = Annotated[
    Optional[str], typer.Option("--storage", envvar="SWEEPER_STORAGE",
                                help="Optuna storage: a URL (sqlite:///x.db, postgresql://...), a .db file, or a "
                                "journal file path. Default: sweeper.db here.")
]
Device = Annotated[
    Optional[str], typer.Option("--device", envvar="SWEEPER_DEVICE",
                                help="auto (CUDA when present), cpu, cuda or cuda:N; tune and noise default to the "
                                "space's device.")
]
Debug = Annotated[
    bool, typer.Option("--debug", help="32 images, at most 2 epochs at 64 px: a quick dry run of the whole sweep.")
]
Study = Annotated[Optional[str], typer.Option("--study", help="Study name (default: the space's name).")]
Trials = Annotated[Optional[int], typer.Option("--trials", help="Cap on screening trials.")]
Epochs = Annotated[Optional[int], typer.Option("--epochs", help="Epochs per run.")]
MaxParams = Annotated[Optional[str], typer.Option("--max-params", help="Parameter budget, e.g. 50M.")]
Seeds = Annotated[
    Optional[str], typer.Option("--seeds", help="Seeds: '0,1,2' (first screens, the rest repeat) or N for 0..N-1.")
]
Artifacts = Annotated[
    Optional[Path], typer.Option("--artifacts", help="Folder of the weight files (default: beside a .db or journal "
                                 "file; needed with a database server).")
]
#: tune's: the same folder also keeps the rungs' saved states, for the next rung to go on from.
TuneArtifacts = Annotated[
    Optional[Path], typer.Option("--artifacts", help="Folder of the weight files and of the rungs' saved states "
                                 "(default: beside a .db or journal file; needed with a database server).")
]
