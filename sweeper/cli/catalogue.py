"""Commands about the catalogue and the data: ``zoo``, ``check`` and ``demo-data``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sweeper.cli._app import OutputFormat, ZooSort, app, errors, path_or_none
from sweeper.cli.views import Progress, print_invalid
from sweeper.errors import SweeperError


@app.command()
@errors
def zoo(
    max_params: Annotated[
        Optional[str], typer.Option("--max-params", help="Parameter budget of the whole model: 50M, 2.5M, 500K, "
                                    "1.2G or 50000000.")
    ] = None,
    arch: Annotated[
        Optional[list[str]], typer.Option("--arch", help="Architectures, comma-separated or repeated (e.g. unet,fpn).")
    ] = None,
    encoder: Annotated[
        Optional[list[str]], typer.Option("--encoder", help="Encoder wildcards, e.g. 'resnet*' (repeatable).")
    ] = None,
    exclude: Annotated[
        Optional[list[str]], typer.Option("--exclude", help="Encoder wildcards to leave out, e.g. '*_bn' (repeatable).")
    ] = None,
    timm: Annotated[
        bool, typer.Option("--timm", help="Add timm encoders (tu-*); combine with --encoder, the full list is large.")
    ] = False,
    deprecated: Annotated[
        bool, typer.Option("--deprecated", help="Also list smp's deprecated timm-* encoder aliases (each another name "
                           "of a listed network), marked deprecated; an --encoder 'timm-...' pattern names them too.")
    ] = False,
    classes: Annotated[int, typer.Option(help="Output classes of the segmentation head (background included).")] = 12,
    in_channels: Annotated[int, typer.Option("--in-channels", help="Input image channels.")] = 3,
    image_size: Annotated[
        int, typer.Option("--image-size", help="Side in pixels of the square input used for GFLOPs and the run check.")
    ] = 256,
    sort: Annotated[ZooSort, typer.Option(help="Sort by params, flops or name.")] = ZooSort.params,
    limit: Annotated[Optional[int], typer.Option(help="Show at most N rows.")] = None,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="table (terminal), csv, json or markdown (clean stdout).")
    ] = OutputFormat.table,
    show_invalid: Annotated[
        bool, typer.Option("--show-invalid", help="Also list the pairs smp cannot build, with the reason.")
    ] = False,
    jobs: Annotated[
        Optional[int], typer.Option(help="Worker processes for counting (default: all cores, at most 4).")
    ] = None,
) -> None:
    """Every smp architecture x encoder pair under a parameter budget, counted without weights."""
    from sweeper import console
    from sweeper import zoo as zoo_mod
    from sweeper.report import zoo as zoo_report

    budget = zoo_mod.parse_count(max_params) if max_params is not None else None
    if limit is not None and limit < 1:
        raise SweeperError(f"--limit: must be at least 1, got {limit}")
    with Progress("counting encoders") as report:
        result = zoo_mod.list_candidates(
            max_params=budget, archs=arch, encoders=encoder, exclude=exclude, include_timm=timm, deprecated=deprecated,
            classes=classes, in_channels=in_channels, image_size=image_size, jobs=jobs, progress=report,
        )
    rows = zoo_mod.sort_candidates(result.candidates, sort.value)
    shown = rows[:limit] if limit else rows
    if fmt is OutputFormat.table:
        budget_text = f" under {zoo_mod.format_count(budget)} parameters" if budget else ""
        title = f"{len(rows)} smp models{budget_text} ({classes} classes, {in_channels} channels)"
        console.out.print(zoo_report.render_table(shown, image_size=image_size, title=title))
        if limit and len(rows) > limit:
            console.err.print(f"showing {limit} of {len(rows)}; drop --limit for all")
    else:
        writer = {"csv": zoo_report.to_csv, "json": zoo_report.to_json, "markdown": zoo_report.to_markdown}[fmt.value]
        console.out.file.write(writer(shown))
    if show_invalid:
        print_invalid(result.invalid)
    elif result.invalid:
        console.err.print(f"{len(result.invalid)} pairs cannot be built; --show-invalid lists them with the reason")
    if result.left_out_deprecated:
        console.err.print(f"{len(result.left_out_deprecated)} deprecated encoder aliases (timm-*) left out; "
                          "--deprecated lists them")


@app.command()
@errors
def check(
    train_json: Annotated[
        Optional[Path], typer.Option("--train-json", help="COCO annotation file (default: the built-in demo data).")
    ] = None,
    image_root: Annotated[
        Optional[Path], typer.Option("--image-root", help="Folder that file_name entries are relative to "
                                     "(default: the JSON's folder).")
    ] = None,
    val_json: Annotated[
        Optional[Path], typer.Option("--val-json", help="Separate validation annotations (default: a hold-out split).")
    ] = None,
    val_root: Annotated[Optional[Path], typer.Option("--val-root", help="Image folder of --val-json.")] = None,
    arch: Annotated[str, typer.Option(help="smp architecture.")] = "unet",
    encoder: Annotated[str, typer.Option(help="smp encoder.")] = "resnet18",
    loss: Annotated[str, typer.Option(help="ce, dice, focal, lovasz, jaccard or ce+dice.")] = "ce",
    lr: Annotated[float, typer.Option(help="Learning rate of the two-epoch run.")] = 1e-3,
    n_images: Annotated[int, typer.Option("--n-images", help="Images in the subsample.")] = 32,
    epochs: Annotated[int, typer.Option(help="Epochs of the short run.")] = 2,
    image_size: Annotated[int, typer.Option("--image-size", help="Image side in pixels (multiple of 32).")] = 64,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per training batch.")] = 8,
    device: Annotated[str, typer.Option(envvar="SWEEPER_DEVICE", help="auto, cpu, cuda or cuda:N.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the subsample, the model and the loaders.")] = 0,
) -> None:
    """Debug gate: masks, build, over-fit one batch, loss falls, validation runs. Exit 1 on a failure."""
    from sweeper import console
    from sweeper.check import debug_config, run_checks
    from sweeper.splits import SplitConfig
    from sweeper.training import DataConfig, TrainConfig

    data = DataConfig(train_json=path_or_none(train_json), image_root=path_or_none(image_root),
                      val_json=path_or_none(val_json), val_root=path_or_none(val_root))
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
    console.out.print(f"[green]all {len(results)} checks passed[/] "
                      f"({config.arch}/{config.encoder}, {n_images} images of "
                      f"{source}, {epochs} epochs at {image_size} px)", highlight=False)


@app.command("demo-data")
@errors
def demo_data(
    directory: Annotated[Path, typer.Argument(help="Folder to write annotations.json and images/ into.")],
    n_images: Annotated[int, typer.Option("--n-images", help="Images to write.")] = 240,
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = 128,
    seed: Annotated[int, typer.Option(help="Seed of the shapes and colours (the same seed writes the same "
                                           "images).")] = 0,
) -> None:
    """Write the built-in synthetic COCO dataset (the default data of every command) to a folder."""
    from sweeper import console
    from sweeper.demo import write_demo_dataset

    if directory.exists() and not directory.is_dir():
        raise SweeperError(f"{directory} is a file; choose a new or empty folder")
    if directory.exists() and any(directory.iterdir()):
        raise SweeperError(f"{directory} is not empty; choose a new or empty folder")
    if n_images < 1 or size < 32:
        raise SweeperError(f"--n-images must be >= 1 and --size >= 32 (got {n_images} and {size})")
    paths = write_demo_dataset(directory, n_images=n_images, size=size, seed=seed)
    console.out.print(f"wrote {paths.annotation_file} and {paths.image_root}/", highlight=False)
