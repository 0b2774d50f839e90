"""The ``sweeper`` command line: thin commands over plain functions that tests call too.

Every command runs inside :func:`_errors`, the one place where a :class:`SweeperError` becomes
``error: <message>`` on stderr and exit code 2. Heavy libraries (torch, smp, optuna) are
imported inside the command bodies so that ``sweeper --help`` stays instant.
"""

from __future__ import annotations

import functools
from enum import Enum
from typing import Annotated, Optional

import typer

from .errors import SweeperError

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


def _errors(fn):
    """Turn the project's own errors (and Ctrl-C) into a one-line message and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from . import console

        try:
            return fn(*args, **kwargs)
        except SweeperError as exc:
            console.err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            console.err.print("interrupted", style="yellow")
            raise typer.Exit(130) from None

    return wrapper


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


class ZooSort(str, Enum):
    params = "params"
    flops = "flops"
    name = "name"


@app.command()
@_errors
def zoo(
    max_params: Annotated[Optional[str], typer.Option("--max-params", help="Parameter budget of the whole model: 50M, 2.5M, 500K, 1.2G or 50000000.")] = None,
    arch: Annotated[Optional[list[str]], typer.Option("--arch", help="Architectures, comma-separated or repeated (e.g. unet,fpn).")] = None,
    encoder: Annotated[Optional[list[str]], typer.Option("--encoder", help="Encoder wildcards, e.g. 'resnet*' (repeatable).")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option("--exclude", help="Encoder wildcards to leave out, e.g. '*_bn' (repeatable).")] = None,
    timm: Annotated[bool, typer.Option("--timm", help="Add timm encoders (tu-*); combine with --encoder, the full list is large.")] = False,
    classes: Annotated[int, typer.Option(help="Output classes of the segmentation head (background included).")] = 12,
    in_channels: Annotated[int, typer.Option("--in-channels", help="Input image channels.")] = 3,
    image_size: Annotated[int, typer.Option("--image-size", help="Side in pixels of the square input used for GFLOPs and the run check.")] = 256,
    sort: Annotated[ZooSort, typer.Option(help="Sort by params, flops or name.")] = ZooSort.params,
    limit: Annotated[Optional[int], typer.Option(help="Show at most N rows.")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table (terminal), csv, json or markdown (clean stdout).")] = OutputFormat.table,
    show_invalid: Annotated[bool, typer.Option("--show-invalid", help="Also list the pairs smp cannot build, with the reason.")] = False,
    jobs: Annotated[Optional[int], typer.Option(help="Worker processes for counting (default: all cores, at most 4).")] = None,
) -> None:
    """Every smp architecture x encoder pair under a parameter budget, counted without weights."""
    from . import console, zoo as zoo_mod

    budget = zoo_mod.parse_count(max_params) if max_params is not None else None
    if limit is not None and limit < 1:
        raise SweeperError(f"--limit: must be at least 1, got {limit}")
    with _progress("counting encoders") as report:
        result = zoo_mod.list_candidates(
            max_params=budget, archs=arch, encoders=encoder, exclude=exclude, include_timm=timm,
            classes=classes, in_channels=in_channels, image_size=image_size, jobs=jobs, progress=report,
        )
    rows = zoo_mod.sort_candidates(result.candidates, sort.value)
    shown = rows[:limit] if limit else rows
    if fmt is OutputFormat.table:
        budget_text = f" under {zoo_mod.format_count(budget)} parameters" if budget else ""
        title = f"{len(rows)} smp models{budget_text} ({classes} classes, {in_channels} channels)"
        console.out.print(zoo_mod.render_table(shown, image_size=image_size, title=title))
        if limit and len(rows) > limit:
            console.err.print(f"showing {limit} of {len(rows)}; drop --limit for all")
    else:
        writer = {"csv": zoo_mod.to_csv, "json": zoo_mod.to_json, "markdown": zoo_mod.to_markdown}[fmt.value]
        console.out.file.write(writer(shown))
    if show_invalid:
        _print_invalid(result.invalid)
    elif result.invalid:
        console.err.print(f"{len(result.invalid)} pairs cannot be built; --show-invalid lists them with the reason")


def _print_invalid(invalid) -> None:
    from rich.table import Table

    from . import console

    table = Table(title=f"{len(invalid)} pairs smp cannot build", header_style="bold")
    table.add_column("arch")
    table.add_column("encoder")
    table.add_column("reason")
    for pair in invalid:
        table.add_row(pair.arch, pair.encoder, pair.reason)
    console.err.print(table)


class _progress:
    """A transient rich progress bar on stderr, silent when stderr is not a terminal."""

    def __init__(self, label: str):
        self.label = label

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from . import console

        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console.err, transient=True, disable=not console.err.is_terminal,
        )
        self._bar.__enter__()
        self._task = self._bar.add_task(self.label, total=None)
        return self.update

    def update(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc):
        return self._bar.__exit__(*exc)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
