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

app = typer.Typer(
    name="sweeper",
    help="Fair, noise-aware sweeps of segmentation-models-pytorch models on COCO data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)


@app.callback()
def _root() -> None:
    """Fair, noise-aware sweeps of segmentation-models-pytorch models on COCO data."""


def errors(fn):
    """Turn the project's own errors (and Ctrl-C) into a one-line message and an exit code.

    Warnings (a skipped degenerate polygon...) become one ``warning:`` line each, not Python's
    two-line format with a source line.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import warnings

        from rich.markup import escape

        from sweeper import console

        def one_line(message, category, filename, lineno, file=None, line=None):
            console.err.print(f"[yellow]warning:[/] {escape(' '.join(str(message).split()))}", highlight=False,
                              soft_wrap=True)

        previous = warnings.showwarning
        warnings.showwarning = one_line
        try:
            return fn(*args, **kwargs)
        except SweeperError as exc:
            console.err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            console.err.print("interrupted: finished trials are kept; run the same command again to resume",
                              style="yellow")
            raise typer.Exit(130) from None
        finally:
            warnings.showwarning = previous

    return wrapper


def _usage_error_line(exc) -> None:
    """Click's usage errors (``--limit abc``) as one ``error:`` line, like every other error."""
    from rich.markup import escape

    from sweeper import console

    command = exc.ctx.command_path + ": " if getattr(exc, "ctx", None) is not None else ""
    console.err.print(f"[bold red]error:[/] {escape(command + ' '.join(exc.format_message().split()))}",
                      highlight=False, soft_wrap=True)


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
    Optional[str], typer.Option("--storage", help="Optuna storage: a URL (sqlite:///x.db, postgresql://...), "
                                "a .db file, or a journal file path. Default: sweeper.db here.")
]
Study = Annotated[Optional[str], typer.Option("--study", help="Study name (default: the space's name).")]
Artifacts = Annotated[
    Optional[Path], typer.Option("--artifacts", help="Folder of the weight files (default: beside a .db or journal "
                                 "file; needed with a database server).")
]
