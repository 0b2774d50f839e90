"""Commands of the experiment record: ``ablate`` (one change at a time against a baseline) and
``runs`` (every finished run a storage holds, by its content)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from sweeper.cli._app import Device, OutputFormat, Space, Storage, Study, app, errors
from sweeper.cli.views import TuneView


def print_arms(table, fmt: OutputFormat) -> None:
    from sweeper import console
    from sweeper.report import ablation as render

    if table is None:
        console.err.print("no finished baseline run to compare with yet")
        return
    if fmt is OutputFormat.table:
        render.render_table(table, console.out)
    elif fmt is OutputFormat.markdown:
        console.out.file.write(render.to_markdown(table))
    elif fmt is OutputFormat.json:
        console.out.file.write(render.to_json(table) + "\n")
    else:
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(render.HEADER)
        writer.writerows(render.rows(table))
        console.out.file.write(buffer.getvalue())


@app.command()
@errors
def ablate(
    space: Space = None,
    change: Annotated[
        Optional[list[str]], typer.Option("--change", help="One change against the baseline, key=value of the "
                                          "training config (repeatable): --change loss=dice --change lr=1e-3.")
    ] = None,
    baseline: Annotated[
        Optional[str], typer.Option("--baseline", help="The control: arch/encoder with the space's recipe, a study's "
                                    "name (its ★), or NAME#N (that study's trial N); default: the space's "
                                    "ablation.baseline.")
    ] = None,
    seeds: Annotated[
        Optional[str], typer.Option("--seeds", help="Seeds every arm may run: '0,1,2' or a count N (0..N-1); the "
                                    "first ones go to every arm, the rest to undecided arms.")
    ] = None,
    storage: Storage = None,
    study: Study = None,
    device: Device = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Format of the arms table.")] = OutputFormat.table,
) -> None:
    """Compare one change at a time with a fixed baseline, on common seeds, many-to-one."""
    from sweeper import console
    from sweeper.sweep.ablate import run_ablation
    from sweeper.sweep.space import apply_overrides, load_space

    spec = apply_overrides(load_space(space), seeds=seeds, device=device)
    with TuneView(spec) as view:
        summary = run_ablation(spec, storage=storage, study_name=study, changes=change or (), baseline=baseline,
                               events=view.event)
    for message in summary.messages:
        console.err.print(message)
    console.err.print(f"study {summary.study_name!r} in {summary.storage}: {summary.trained} new run(s) trained, "
                      f"{summary.reused} reused from earlier studies, {summary.failed} failed", highlight=False)
    print_arms(summary.table, fmt)
    if summary.table is not None:
        from sweeper.sweep.dashboard import publish_ablation

        publish_ablation(summary.study_name, storage, summary.table)


@app.command()
@errors
def runs(
    storage: Storage = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="csv (default) or json.")] = OutputFormat.csv,
) -> None:
    """Every finished run in the storage, all studies: config key, seed, fold, value, study, date.

    The config key is the run's content (recipe, architecture, weights by hash, data by
    fingerprint); one key with one seed and fold is one experiment, trained once and reused."""
    import csv
    import io
    import json

    from sweeper import console
    from sweeper.cli.study import _read_only
    from sweeper.errors import SweeperError
    from sweeper.sweep.reuse import RECORD_COLUMNS, experiment_record
    from sweeper.sweep.storage import open_storage

    if fmt not in (OutputFormat.csv, OutputFormat.json):
        raise SweeperError(f"--format: runs prints csv or json, not {fmt.value}")
    with _read_only(storage) as reading:
        rows = experiment_record(open_storage(reading, must_exist=True))
    if fmt is OutputFormat.json:
        console.out.file.write(json.dumps(rows, indent=1) + "\n")
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RECORD_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    console.out.file.write(buffer.getvalue())
