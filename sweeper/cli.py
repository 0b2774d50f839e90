"""The ``sweeper`` command line: thin commands over plain functions that tests call too.

Every command runs inside :func:`_errors`, the one place where a :class:`SweeperError` becomes
``error: <message>`` on stderr and exit code 2. Heavy libraries (torch, smp, optuna) are
imported inside the command bodies so that ``sweeper --help`` stays instant.
"""

from __future__ import annotations

import functools
from enum import Enum
from pathlib import Path
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


@app.command()
@_errors
def check(
    train_json: Annotated[Optional[Path], typer.Option("--train-json", help="COCO annotation file (default: the built-in demo data).")] = None,
    image_root: Annotated[Optional[Path], typer.Option("--image-root", help="Folder that file_name entries are relative to (default: the JSON's folder).")] = None,
    val_json: Annotated[Optional[Path], typer.Option("--val-json", help="Separate validation annotations (default: a hold-out split).")] = None,
    val_root: Annotated[Optional[Path], typer.Option("--val-root", help="Image folder of --val-json.")] = None,
    arch: Annotated[str, typer.Option(help="smp architecture.")] = "unet",
    encoder: Annotated[str, typer.Option(help="smp encoder.")] = "resnet18",
    loss: Annotated[str, typer.Option(help="ce, dice, focal, lovasz, jaccard or ce+dice.")] = "ce",
    lr: Annotated[float, typer.Option(help="Learning rate of the two-epoch run.")] = 1e-3,
    n_images: Annotated[int, typer.Option("--n-images", help="Images in the subsample.")] = 32,
    epochs: Annotated[int, typer.Option(help="Epochs of the short run.")] = 2,
    image_size: Annotated[int, typer.Option("--image-size", help="Image side in pixels (multiple of 32).")] = 64,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the subsample, the model and the loaders.")] = 0,
) -> None:
    """Debug gate: masks, build, over-fit one batch, loss falls, validation runs. Exit 1 on a failure."""
    from . import console
    from .check import debug_config, run_checks
    from .splits import SplitConfig
    from .train import DataConfig, TrainConfig

    data = DataConfig(train_json=_path(train_json), image_root=_path(image_root), val_json=_path(val_json), val_root=_path(val_root))
    config = TrainConfig(arch=arch, encoder=encoder, loss=loss, lr=lr, batch_size=batch_size, device=device,
                         data=data, split=SplitConfig(seed=seed))
    config = debug_config(config, images=n_images, epochs=epochs, image_size=image_size)
    def report(result) -> None:
        mark = "[green]PASS[/]" if result.passed else "[bold red]FAIL[/]"
        console.out.print(f"{mark} {result.name}: {result.detail} [dim]({result.seconds:.1f} s)[/]", highlight=False)

    results = run_checks(config, seed=seed, report=report)
    failed = [r for r in results if not r.passed]
    if failed:
        console.out.print(f"[bold red]{len(failed)} of {len(results)} checks failed[/]")
        raise typer.Exit(1)
    source = "the demo data" if train_json is None else str(train_json)
    console.out.print(f"[green]all {len(results)} checks passed[/] ({config.arch}/{config.encoder}, {n_images} images of "
                      f"{source}, {epochs} epochs at {image_size} px)", highlight=False)


@app.command("demo-data")
@_errors
def demo_data(
    directory: Annotated[Path, typer.Argument(help="Folder to write annotations.json and images/ into.")],
    n_images: Annotated[int, typer.Option("--n-images")] = 240,
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = 128,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Write the built-in synthetic COCO dataset (the default data of every command) to a folder."""
    from . import console
    from .demo import write_demo_dataset

    if directory.exists() and any(directory.iterdir()):
        raise SweeperError(f"{directory} is not empty; choose a new or empty folder")
    paths = write_demo_dataset(directory, n_images=n_images, size=size, seed=seed)
    console.out.print(f"wrote {paths.annotation_file} and {paths.image_root}/", highlight=False)


def _path(value: Optional[Path]) -> Optional[str]:
    return None if value is None else str(value)


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
