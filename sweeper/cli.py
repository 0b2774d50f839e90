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
    """Turn the project's own errors (and Ctrl-C) into a one-line message and an exit code.

    Warnings (a skipped degenerate polygon...) become one ``warning:`` line each, not Python's
    two-line format with a source line.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import warnings

        from rich.markup import escape

        from . import console

        def one_line(message, category, filename, lineno, file=None, line=None):
            console.err.print(f"[yellow]warning:[/] {escape(' '.join(str(message).split()))}", highlight=False, soft_wrap=True)

        previous = warnings.showwarning
        warnings.showwarning = one_line
        try:
            return fn(*args, **kwargs)
        except SweeperError as exc:
            console.err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            console.err.print("interrupted: finished trials are kept; run the same command again to resume", style="yellow")
            raise typer.Exit(130) from None
        finally:
            warnings.showwarning = previous

    return wrapper


def _usage_error_line(exc) -> None:
    """Click's usage errors (``--limit abc``) as one ``error:`` line, like every other error."""
    from rich.markup import escape

    from . import console

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

    if directory.exists() and not directory.is_dir():
        raise SweeperError(f"{directory} is a file; choose a new or empty folder")
    if directory.exists() and any(directory.iterdir()):
        raise SweeperError(f"{directory} is not empty; choose a new or empty folder")
    if n_images < 1 or size < 32:
        raise SweeperError(f"--n-images must be >= 1 and --size >= 32 (got {n_images} and {size})")
    paths = write_demo_dataset(directory, n_images=n_images, size=size, seed=seed)
    console.out.print(f"wrote {paths.annotation_file} and {paths.image_root}/", highlight=False)


def _path(value: Optional[Path]) -> Optional[str]:
    return None if value is None else str(value)


DataJson = Annotated[Optional[Path], typer.Option("--train-json", help="COCO annotation file (default: the space's data, else the demo data).")]
ImageRoot = Annotated[Optional[Path], typer.Option("--image-root", help="Folder that file_name entries are relative to.")]
ValJson = Annotated[Optional[Path], typer.Option("--val-json", help="Separate validation annotations.")]
ValRoot = Annotated[Optional[Path], typer.Option("--val-root", help="Image folder of --val-json.")]
Space = Annotated[Optional[str], typer.Option("--space", help="Search space: a YAML path or a shipped name (demo, zoo-50m, hparams).")]
Storage = Annotated[Optional[str], typer.Option("--storage", help="Optuna storage: a URL (sqlite:///x.db, postgresql://...), a .db file, or a journal file path. Default: sweeper.db here.")]
Study = Annotated[Optional[str], typer.Option("--study", help="Study name (default: the space's name).")]
Artifacts = Annotated[Optional[Path], typer.Option("--artifacts", help="Folder of the weight files (default: beside a .db or journal file; needed with a database server).")]


@app.command()
@_errors
def tune(
    space: Space = None,
    trials: Annotated[Optional[int], typer.Option(help="Cap on screening trials.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs per run.")] = None,
    max_params: Annotated[Optional[str], typer.Option("--max-params", help="Parameter budget, e.g. 50M.")] = None,
    seeds: Annotated[Optional[str], typer.Option(help="Seeds: '0,1,2' (first screens, the rest repeat) or N for 0..N-1.")] = None,
    storage: Storage = None,
    study: Study = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    train_json: DataJson = None,
    image_root: ImageRoot = None,
    val_json: ValJson = None,
    val_root: ValRoot = None,
    debug: Annotated[bool, typer.Option("--debug", help="32 images, at most 2 epochs at 64 px: a quick dry run of the whole sweep.")] = False,
    save_weights: Annotated[Optional[bool], typer.Option("--save-weights/--no-save-weights", help="Keep each run's best-epoch weights (for sweeper ensemble); default: the space's save_weights.")] = None,
    artifacts: Artifacts = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Format of the final ranking.")] = OutputFormat.table,
) -> None:
    """Screen every candidate of a space as an Optuna trial, race repeats with more seeds, rank."""
    from . import console
    from .space import apply_overrides, load_space
    from .study import run_sweep

    spec = apply_overrides(load_space(space), trials=trials, epochs=epochs, max_params=max_params, seeds=seeds,
                           device=device, train_json=_path(train_json), image_root=_path(image_root),
                           val_json=_path(val_json), val_root=_path(val_root), debug=debug, save_weights=save_weights)
    name = study or spec.name + ("-debug" if debug else "")
    with _TuneView(spec) as view:
        summary = run_sweep(spec, storage=storage, study_name=name, events=view.event, artifacts=artifacts)
    for message in summary.messages:
        console.err.print(message)
    console.err.print(
        f"study {summary.study_name!r} in {summary.storage}: {summary.trained} new run(s) trained, "
        f"{summary.failed} failed, {summary.pruned} pruned; {summary.candidates} candidate(s) in the space",
        highlight=False,
    )
    _print_ranking(summary.ranking, fmt)
    if summary.ranking is not None:
        from .study import publish_to_dashboard

        publish_to_dashboard(summary.study_name, storage, summary.ranking)
        console.err.print(f"browse it: sweeper dashboard --storage {storage or 'sweeper.db'}", highlight=False)
        if spec.save_weights:
            console.err.print(f"ensemble the leaders: sweeper ensemble --storage {storage or 'sweeper.db'}", highlight=False)


@app.command()
@_errors
def report(
    study: Study = None,
    storage: Storage = None,
    space: Space = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table, csv, json (with per-run values and P(improvement)) or markdown.")] = OutputFormat.table,
    rope: Annotated[Optional[float], typer.Option(help="Region of practical equivalence in mIoU (default: the space's, 0.01).")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a forest plot of the CIs to this PNG.")] = None,
    curves: Annotated[bool, typer.Option("--curves", help="With --plot: also per-epoch learning curves (FILE-curves.png).")] = False,
    dashboard_note: Annotated[bool, typer.Option("--dashboard-note/--no-dashboard-note", help="Save the table and a CI figure into the study for optuna-dashboard.")] = True,
) -> None:
    """The ranked table of a study written by tune: mean +- sd, CI, difference to the best, markers."""
    from . import console
    from .study import load_trials, publish_to_dashboard, rank_trials

    if plot is not None:
        if plot.suffix.lower() not in (".png", ".pdf", ".svg"):
            raise SweeperError(f"--plot: {plot} should end in .png, .pdf or .svg")
        if not plot.parent.is_dir():
            raise SweeperError(f"--plot: folder {plot.parent} does not exist")
    if rope is not None and rope < 0:
        raise SweeperError(f"--rope: must be >= 0, got {rope}")
    name, trials, default_rope = load_trials(study, storage, space)
    ranking = rank_trials(trials, rope=default_rope if rope is None else rope)
    if ranking is None:
        from collections import Counter

        states = Counter(t.state.name.lower() for t in trials)
        seen = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        hint = "run sweeper tune first" if not trials else "loosen the pruner or run more trials"
        raise SweeperError(f"study {name!r} has no completed run to rank ({seen or 'no trials'}); {hint}")
    _print_ranking(ranking, fmt)
    if plot is not None:
        from . import report as report_mod
        from .study import plot_curves

        report_mod.forest_plot(ranking, plot)
        console.err.print(f"wrote {plot}", highlight=False)
        if curves:
            curve_path = plot.with_name(plot.stem + "-curves" + plot.suffix)
            plot_curves(trials, curve_path)
            console.err.print(f"wrote {curve_path}", highlight=False)
    if dashboard_note:
        publish_to_dashboard(name, storage, ranking)


@app.command()
@_errors
def noise(
    space: Space = None,
    arch: Annotated[Optional[str], typer.Option(help="Baseline architecture (default: the space's smallest candidate).")] = None,
    encoder: Annotated[Optional[str], typer.Option(help="Baseline encoder.")] = None,
    n_seeds: Annotated[int, typer.Option("--n-seeds", help="Seeds to run.")] = 5,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs per run.")] = None,
    storage: Storage = None,
    study: Study = None,
    device: Annotated[Optional[str], typer.Option()] = None,
    train_json: DataJson = None,
    image_root: ImageRoot = None,
    val_json: ValJson = None,
    val_root: ValRoot = None,
) -> None:
    """Run one baseline with N seeds and say how large a difference your sweep can resolve."""
    from . import console
    from .space import apply_overrides, load_space
    from .study import run_noise

    if n_seeds < 2:
        raise SweeperError(f"--n-seeds: need at least 2 seeds to measure noise, got {n_seeds}")
    spec = apply_overrides(load_space(space), epochs=epochs, device=device, train_json=_path(train_json),
                           image_root=_path(image_root), val_json=_path(val_json), val_root=_path(val_root))
    with _TuneView(spec) as view:
        result = run_noise(spec, arch=arch, encoder=encoder, n_seeds=n_seeds, storage=storage,
                           study_name=study or f"{spec.name}-noise", events=view.event)
    for line in result:
        console.out.print(line, highlight=False)


@app.command()
@_errors
def ensemble(
    study: Study = None,
    storage: Storage = None,
    space: Space = None,
    top: Annotated[int, typer.Option(help="Ensemble the best saved run of each of the TOP leading candidates.")] = 3,
    trial: Annotated[Optional[str], typer.Option("--trials", help="Or exactly these trials, e.g. '3,7,12'.")] = None,
    artifacts: Artifacts = None,
    val_json: Annotated[Optional[Path], typer.Option("--val-json", help="Score on this COCO file instead: images no run was selected on.")] = None,
    val_root: ValRoot = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = OutputFormat.table,
) -> None:
    """Average the class probabilities of the best saved runs and score the ensemble like a run."""
    import json

    import optuna

    from . import console
    from .ensemble import choose_members, evaluate_ensemble, render_table
    from .study import artifact_dir, load_trials, open_storage, rank_trials

    if fmt not in (OutputFormat.table, OutputFormat.json):
        raise SweeperError(f"--format: ensemble prints a table or json, not {fmt.value}")
    numbers = None
    if trial:
        try:
            numbers = [int(n) for n in trial.split(",") if n.strip()]
        except ValueError:
            raise SweeperError(f"--trials: expected trial numbers such as '3,7,12', got {trial!r}") from None
    name, trials, rope = load_trials(study, storage, space)
    members = choose_members(trials, rank_trials(trials, rope=rope), top=top, trial_numbers=numbers)
    recorded = optuna.load_study(study_name=name, storage=open_storage(storage)).user_attrs.get("artifacts_dir")
    folder = artifacts or (Path(recorded) if recorded and Path(recorded).is_dir() else artifact_dir(storage))
    if val_root is not None and val_json is None:
        raise SweeperError("--val-root needs --val-json")
    holdout = None if val_json is None else (str(val_json), _path(val_root))
    result = evaluate_ensemble(members, folder, device=device, holdout=holdout)
    if fmt is OutputFormat.json:
        console.out.file.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        console.out.print(render_table(result))
    for note in result.notes:
        console.err.print(f"warning: {note}", highlight=False)
    if holdout is None:
        console.err.print("measured on the validation images the members were chosen on: read the gain, "
                          "and confirm it with --val-json on images no run was selected with", highlight=False)


@app.command()
@_errors
def dashboard(
    storage: Storage = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps it on this machine.")] = "127.0.0.1",
    artifacts: Artifacts = None,
) -> None:
    """Start optuna-dashboard on the study storage (Ctrl-C stops it)."""
    import os
    import sys

    from . import console
    from .study import dashboard_command, mask_url, storage_url

    command = dashboard_command(storage, host=host, port=port, artifacts=artifacts)
    console.err.print(f"optuna-dashboard for {mask_url(storage_url(storage))} on http://{host}:{port}/ (Ctrl-C stops it)", highlight=False)
    sys.stderr.flush()
    # The dashboard takes this process's place: stopping this pid stops the server, no orphan.
    os.execv(command[0], command)


def _print_ranking(ranking, fmt: "OutputFormat") -> None:
    from . import console
    from . import report as report_mod

    if ranking is None:
        console.err.print("no finished run to rank yet")
        return
    if fmt is OutputFormat.table:
        report_mod.render_table(ranking, console.out)
    else:
        writer = {"csv": report_mod.to_csv, "json": report_mod.to_json, "markdown": report_mod.to_markdown}[fmt.value]
        console.out.file.write(writer(ranking))


class _TuneView:
    """Live view of a sweep on a terminal; one log line per finished trial otherwise."""

    def __init__(self, space):
        from . import console

        self.space = space
        self.live = None
        self.interactive = console.err.is_terminal
        self.done = {"complete": 0, "pruned": 0, "failed": 0}
        self.current = "starting"
        self.epoch = ""
        self.best = None

    def __enter__(self):
        if self.interactive:
            from rich.live import Live

            from . import console

            self.live = Live(self._render(), console=console.err, transient=True, refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)
        return False

    def _render(self):
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_row("[bold]sweeper tune[/]", f"space {self.space.name}")
        table.add_row("trials", f"{self.done['complete']} complete, {self.done['pruned']} pruned, {self.done['failed']} failed")
        table.add_row("running", f"{self.current} {self.epoch}")
        if self.best is not None:
            table.add_row("best so far", f"{self.best[0]}  mIoU {self.best[1]:.4f}")
        return table

    def event(self, kind: str, info: dict) -> None:
        from . import console

        unit = info.get("unit")
        if kind == "start":
            self.current = f"#{info['trial']} {unit.candidate} seed {unit.seed} fold {unit.fold} ({unit.phase})"
            self.epoch = f"epoch 0/{info['epochs']}"
        elif kind == "epoch":
            m = info["metrics"]
            self.epoch = f"epoch {m.epoch + 1}: mIoU {m.miou:.4f}"
        elif kind == "end":
            state = info["state"]
            key = "complete" if state == "complete" else "pruned" if state == "pruned" else "failed"
            self.done[key] += 1
            value = info.get("value")
            if state == "complete" and value is not None and (self.best is None or value > self.best[1]):
                self.best = (unit.candidate, value)
            if not self.interactive:
                shown = "-" if value is None else f"{value:.4f}"
                extra = f": {info['reason']}" if info.get("reason") else ""
                console.err.print(f"trial {info['trial']} {unit.candidate} seed {unit.seed} fold {unit.fold} "
                                  f"[{unit.phase}] {state} mIoU {shown}{extra}", highlight=False, markup=False)
        elif kind == "wait":
            self.current = f"waiting for {info['running']} trial(s) of other workers"
        if self.live is not None:
            self.live.update(self._render())


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
