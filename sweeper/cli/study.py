"""Commands on studies: ``tune``, ``report``, ``noise``, ``ensemble`` and ``dashboard``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from sweeper.cli._app import (
    Artifacts,
    DataJson,
    Debug,
    Device,
    Epochs,
    ImageRoot,
    MaxParams,
    OutputFormat,
    Seeds,
    Space,
    Storage,
    Study,
    Trials,
    TuneArtifacts,
    ValJson,
    ValRoot,
    app,
    errors,
    path_or_none,
)
from sweeper.cli.views import TuneView, print_ranking
from sweeper.errors import SweeperError


@app.command()
@errors
def tune(
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
    debug: Debug = False,
    save_weights: Annotated[
        Optional[bool], typer.Option("--save-weights/--no-save-weights", help="Keep each run's best-epoch weights "
                                     "(for sweeper ensemble); default: the space's save_weights.")
    ] = None,
    artifacts: TuneArtifacts = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Format of the final ranking.")] = OutputFormat.table,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan instead (sweeper plan: candidates, phases, runs, time); "
                           "train and write nothing. --format table or json.")
    ] = False,
) -> None:
    """Screen every candidate of a space as an Optuna trial, race repeats with more seeds, rank."""
    from sweeper import console
    from sweeper.sweep.space import apply_overrides, load_space
    from sweeper.sweep.study import run_sweep

    spec = apply_overrides(load_space(space), trials=trials, epochs=epochs, max_params=max_params, seeds=seeds,
                           device=device, train_json=path_or_none(train_json), image_root=path_or_none(image_root),
                           val_json=path_or_none(val_json), val_root=path_or_none(val_root), debug=debug,
                           save_weights=save_weights)
    name = study or spec.name + ("-debug" if debug else "")
    if dry_run:
        from sweeper.cli.plan import show_plan

        show_plan(spec, storage=storage, study_name=name, fmt=fmt.value)
        return
    with TuneView(spec) as view:
        summary = run_sweep(spec, storage=storage, study_name=name, events=view.event, artifacts=artifacts)
    for message in summary.messages:
        console.err.print(message)
    console.err.print(
        f"study {summary.study_name!r} in {summary.storage}: {summary.trained} new run(s) trained, "
        + (f"{summary.reused} reused from other studies, " if summary.reused else "")
        + f"{summary.failed} failed, {summary.pruned} pruned; {summary.candidates} candidate(s) in the space",
        highlight=False,
    )
    print_ranking(summary.ranking, fmt)
    if summary.ranking is not None:
        from sweeper.sweep.dashboard import publish_to_dashboard

        publish_to_dashboard(summary.study_name, storage, summary.ranking)
        console.err.print(f"browse it: sweeper dashboard --storage {storage or 'sweeper.db'}", highlight=False)
        if spec.save_weights:
            console.err.print(f"ensemble the leaders: sweeper ensemble --storage {storage or 'sweeper.db'}",
                              highlight=False)


@app.command()
@errors
def report(
    study: Study = None,
    storage: Storage = None,
    space: Space = None,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="table, csv, json (with per-run values and P(improvement)) "
                                   "or markdown.")
    ] = OutputFormat.table,
    rope: Annotated[
        Optional[float], typer.Option(help="Region of practical equivalence in mIoU (default: the space's, 0.01).")
    ] = None,
    plot: Annotated[
        Optional[Path], typer.Option("--plot", help="Write a plot of each gap to the best and its interval "
                                     "(PNG, PDF or SVG).")
    ] = None,
    curves: Annotated[
        Optional[Path], typer.Option("--curves", help="Write the per-epoch learning curves of every run (PNG, PDF or "
                                     "SVG), e.g. --curves curves.png.")
    ] = None,
    save_note: Annotated[
        bool, typer.Option("--save-note", help="Also save the table and a CI figure into the study as its "
                           "optuna-dashboard note (the only way report writes to the storage; tune does it at its "
                           "end).")
    ] = False,
    dashboard_note: Annotated[
        Optional[bool], typer.Option("--dashboard-note/--no-dashboard-note", hidden=True,
                                     help="Old spelling: --dashboard-note is --save-note; --no-dashboard-note is "
                                     "the default.")
    ] = None,
    runs: Annotated[
        Optional[Path], typer.Option("--runs", help="Rank a CSV of runs made with any tool instead of a study: columns "
                                     "candidate,seed,value (optional fold; other columns are kept as labels).")
    ] = None,
) -> None:
    """The ranked table of a study written by tune: each candidate's gap to the best and its verdict.

    It only reads: a SQLite file is opened read-only, so a read-only file or a teammate's study is
    left byte for byte as it was, unless --save-note asks to write the dashboard note."""
    from sweeper import console

    for flag, figure in (("--plot", plot), ("--curves", curves)):
        if figure is not None:
            if figure.suffix.lower() not in (".png", ".pdf", ".svg"):
                raise SweeperError(f"{flag}: {figure} should end in .png, .pdf or .svg")
            if not figure.parent.is_dir():
                raise SweeperError(f"{flag}: folder {figure.parent} does not exist")
    save_note = save_note or bool(dashboard_note)
    if rope is not None and rope < 0:
        raise SweeperError(f"--rope: must be >= 0, got {rope}")
    if runs is not None:
        _report_runs(runs, rope, space, fmt, plot, storage=storage, study=study, curves=curves, save_note=save_note)
        return

    from sweeper.sweep.dashboard import publish_to_dashboard
    from sweeper.sweep.ranking import rank_records
    from sweeper.sweep.records import StudyRecord, read_records
    from sweeper.sweep.study import load_study

    with _read_only(storage) as reading:
        opened, default_rope = load_study(study, reading, space)
        name, trials = opened.study_name, read_records(opened)
        study_record = StudyRecord.from_study(opened)
        if study_record.ablation:  # an ablation study: its arms against the baseline, not a ranking
            from sweeper.cli.experiments import print_arms
            from sweeper.sweep.ablate import arms_table

            table = arms_table(opened, rope=rope)  # None: the ROPE the ablation ran with
    if study_record.ablation:
        if table is None:
            raise SweeperError(f"ablation study {name!r} has no finished baseline run yet; run sweeper ablate")
        print_arms(table, fmt)
        if save_note:
            from sweeper.sweep.dashboard import publish_ablation

            publish_ablation(name, storage, table)
            console.err.print(f"saved the arms table as the dashboard note of study {name!r}", highlight=False)
        return
    ranking = rank_records(trials, rope=default_rope if rope is None else rope,
                           baseline=study_record.baseline_miou)
    if ranking is None:
        from collections import Counter

        states = Counter(t.state.name.lower() for t in trials)
        seen = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        hint = "run sweeper tune first" if not trials else "loosen the pruner or run more trials"
        raise SweeperError(f"study {name!r} has no completed run to rank ({seen or 'no trials'}); {hint}")
    print_ranking(ranking, fmt)
    if plot is not None:
        from sweeper import report as report_mod

        report_mod.forest_plot(ranking, plot)
        console.err.print(f"wrote {plot}", highlight=False)
    if curves is not None:
        from sweeper import report as report_mod
        from sweeper.sweep.ranking import learning_curves

        report_mod.plot_curves(learning_curves(trials), curves)
        console.err.print(f"wrote {curves}", highlight=False)
    if save_note:
        publish_to_dashboard(name, storage, ranking)
        console.err.print(f"saved the table as the dashboard note of study {name!r}", highlight=False)


@contextlib.contextmanager
def _read_only(storage: Optional[str]):
    """The storage to read a study from: a SQLite file opened read-only (SQLite's ``mode=ro``:
    nothing written, not even on a file anyone may write), any other storage as it is.

    Errors name the storage as the user gave it, not the read-only URL.
    """
    from urllib.parse import quote

    from sweeper.sweep.storage import check_sqlite_file, is_journal, local_file, shown_url, storage_url

    url = storage_url(storage)
    local = local_file(url)
    if local is None or is_journal(url) or not url.startswith("sqlite:///"):
        yield storage
        return
    if not local.parent.is_dir():
        raise SweeperError(f"--storage: folder {local.parent} for the SQLite file does not exist")
    if not local.is_file():
        raise SweeperError(f"--storage: {local} does not exist (no study has been written there)")
    if local.stat().st_size == 0:
        raise SweeperError(f"--storage: {local} is empty (no study has been written there)")
    check_sqlite_file(local)
    # "sqlite+pysqlite" is SQLite itself; sqlite3 reads the "file:" URI (uri=true) and its mode.
    reading = f"sqlite+pysqlite:///file:{quote(quote(str(local.resolve())))}?mode=ro&uri=true"
    try:
        yield reading
    except SweeperError as exc:
        raise SweeperError(str(exc).replace(shown_url(reading), shown_url(storage))) from None


def _report_runs(path: Path, rope, space, fmt, plot, *, storage, study, curves, save_note) -> None:
    """``report --runs``: a CSV of runs ranked with the same verdicts; no storage, no torch."""
    import os

    from sweeper import console
    from sweeper import stats as stats_mod
    from sweeper.runtable import read_runs

    if storage is not None and storage == os.environ.get("SWEEPER_STORAGE"):
        storage = None  # the environment's default, not a --storage given with --runs
    for flag, given in (("--storage", storage), ("--study", study), ("--curves", curves),
                        ("--save-note", save_note)):
        if given:
            raise SweeperError(f"{flag}: does not apply to --runs (a CSV has no study)")
    if rope is None and space is not None:
        from sweeper.sweep.space import load_space

        rope = load_space(space).rope
    values, labels = read_runs(path)
    ranking = stats_mod.rank_candidates(values, labels, rope=0.01 if rope is None else rope)
    print_ranking(ranking, fmt)
    if plot is not None:
        from sweeper import report as report_mod

        report_mod.forest_plot(ranking, plot)
        console.err.print(f"wrote {plot}", highlight=False)


@app.command()
@errors
def noise(
    space: Space = None,
    arch: Annotated[
        Optional[str], typer.Option(help="Baseline architecture (default: the space's smallest candidate).")
    ] = None,
    encoder: Annotated[Optional[str], typer.Option(help="Baseline encoder.")] = None,
    n_seeds: Annotated[int, typer.Option("--n-seeds", help="Seeds to run.")] = 5,
    epochs: Epochs = None,
    storage: Storage = None,
    study: Study = None,
    device: Device = None,
    train_json: DataJson = None,
    image_root: ImageRoot = None,
    val_json: ValJson = None,
    val_root: ValRoot = None,
) -> None:
    """Run one baseline with N seeds and say how large a difference your sweep can resolve."""
    from sweeper import console
    from sweeper.sweep.space import apply_overrides, load_space
    from sweeper.sweep.study import run_noise

    if n_seeds < 2:
        raise SweeperError(f"--n-seeds: need at least 2 seeds to measure noise, got {n_seeds}")
    spec = apply_overrides(load_space(space), epochs=epochs, device=device, train_json=path_or_none(train_json),
                           image_root=path_or_none(image_root), val_json=path_or_none(val_json),
                           val_root=path_or_none(val_root))
    with TuneView(spec) as view:
        result = run_noise(spec, arch=arch, encoder=encoder, n_seeds=n_seeds, storage=storage,
                           study_name=study or f"{spec.name}-noise", events=view.event)
    for line in result:
        console.out.print(line, highlight=False)


@app.command()
@errors
def ensemble(
    study: Study = None,
    storage: Storage = None,
    space: Space = None,
    top: Annotated[int, typer.Option(help="Ensemble the best saved run of each of the TOP leading candidates.")] = 3,
    trial: Annotated[Optional[str], typer.Option("--trials", help="Or exactly these trials, e.g. '3,7,12'.")] = None,
    artifacts: Artifacts = None,
    val_json: Annotated[
        Optional[Path], typer.Option("--val-json", help="Score on this COCO file instead: images no run was "
                                     "selected on.")
    ] = None,
    val_root: ValRoot = None,
    device: Device = None,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="table, csv (one row per member, then the ensemble), json or "
                                   "markdown.")
    ] = OutputFormat.table,
) -> None:
    """Average the class probabilities of the best saved runs and score the ensemble like a run."""
    import json

    from sweeper import console
    from sweeper.ensemble import choose_members, evaluate_ensemble
    from sweeper.report.ensemble import render_table
    from sweeper.sweep.ranking import rank_records
    from sweeper.sweep.records import StudyRecord, read_records
    from sweeper.sweep.storage import artifact_dir
    from sweeper.sweep.study import load_study

    numbers = None
    if trial:
        try:
            numbers = [int(n) for n in trial.split(",") if n.strip()]
        except ValueError:
            raise SweeperError(f"--trials: expected trial numbers such as '3,7,12', got {trial!r}") from None
    opened, rope = load_study(study, storage, space)
    trials = read_records(opened)
    members = choose_members(trials, rank_records(trials, rope=rope), top=top, trial_numbers=numbers)
    recorded = StudyRecord.from_study(opened).artifacts_dir
    folder = artifacts or (Path(recorded) if recorded and Path(recorded).is_dir() else artifact_dir(storage))
    if val_root is not None and val_json is None:
        raise SweeperError("--val-root needs --val-json")
    holdout = None if val_json is None else (str(val_json), path_or_none(val_root))
    result = evaluate_ensemble(members, folder, device=device or "auto", holdout=holdout)
    if fmt is OutputFormat.json:
        console.out.file.write(json.dumps(result.to_dict(), indent=2) + "\n")
    elif fmt is OutputFormat.table:
        console.out.print(render_table(result))
    else:
        console.out.file.write(ensemble_text(result, fmt.value))
    for note in result.notes:
        console.err.print(f"warning: {note}", highlight=False)
    if holdout is None:
        console.err.print("measured on the validation images the members were chosen on: read the gain, "
                          "and confirm it with --val-json on images no run was selected with", highlight=False)


#: The columns of ``ensemble --format csv``: one row per member, then the ensemble (mIoU in 0..1).
ENSEMBLE_COLUMNS = ("role", "trial", "candidate", "seed", "fold", "miou_recorded", "miou", "gain_vs_best_member")


def ensemble_rows(result) -> list[dict]:
    """The ensemble as flat rows: each member (its recorded mIoU and its score here), then the
    ensemble with its gain over the best member (``miou`` is measured on the hold-out set when
    there is one)."""
    rows = [{"role": "member", "trial": m.trial, "candidate": m.candidate, "seed": m.seed, "fold": m.fold,
             "miou_recorded": m.recorded_miou, "miou": m.miou, "gain_vs_best_member": ""} for m in result.members]
    rows.append({"role": "ensemble", "trial": "", "candidate": "+".join(m.candidate for m in result.members),
                 "seed": "", "fold": "", "miou_recorded": "", "miou": result.miou,
                 "gain_vs_best_member": result.gain})
    return rows


def ensemble_text(result, fmt: str) -> str:
    """``csv`` or ``markdown`` of :func:`ensemble_rows`."""
    rows = ensemble_rows(result)
    if fmt == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=ENSEMBLE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def cell(value) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(ENSEMBLE_COLUMNS) + " |", "|" + "---|" * len(ENSEMBLE_COLUMNS)]
    lines += ["| " + " | ".join(cell(row[c]) for c in ENSEMBLE_COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


@app.command()
@errors
def dashboard(
    storage: Storage = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps it on this machine.")] = "127.0.0.1",
    artifacts: Artifacts = None,
) -> None:
    """Start optuna-dashboard on the study storage (Ctrl-C stops it)."""
    import os
    import sys

    from sweeper import console
    from sweeper.sweep.dashboard import check_can_serve, dashboard_command
    from sweeper.sweep.storage import shown_url

    command = dashboard_command(storage, host=host, port=port, artifacts=artifacts)
    check_can_serve(storage, host, port)
    console.err.print(f"optuna-dashboard for {shown_url(storage)} on http://{host}:{port}/ (Ctrl-C stops it)",
                      highlight=False)
    sys.stderr.flush()
    # The dashboard takes this process's place: stopping this pid stops the server, no orphan.
    os.execv(command[0], command)
