"""`sweeper fidelity`: whether the cheap rungs rank candidates like the full budget, on your data."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from sweeper.cli._app import (
    DataJson,
    Debug,
    Device,
    ImageRoot,
    Space,
    Storage,
    ValJson,
    ValRoot,
    app,
    errors,
    path_or_none,
)


class FidelityFormat(str, Enum):
    table = "table"
    json = "json"


@app.command()
@errors
def fidelity(
    space: Space = None,
    candidates: Annotated[
        int, typer.Option("--candidates", help="How many of the space's candidates to train (a seeded random "
                          "sample; a larger number later keeps the first ones).")
    ] = 12,
    seeds: Annotated[
        int, typer.Option("--seeds", help="Seeds per candidate and budget: 1 is the screening seed; more make the "
                          "figures sharper (tau is averaged over them).")
    ] = 1,
    rungs: Annotated[
        Optional[str], typer.Option("--rungs", help="Cheap budgets in epochs, e.g. 1,3 (default: the space's "
                                    "screening rungs); the recipe's epochs are the full budget.")
    ] = None,
    keep: Annotated[
        Optional[float], typer.Option("--keep", help="Share of a rung's candidates promoted, for the survival "
                                      "figures (default: the space's screening keep, else 1/3).")
    ] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Full budget in epochs (default: the recipe's).")] = None,
    boot: Annotated[
        int, typer.Option("--boot", min=100, help="Bootstrap resamples of the candidates for the intervals.")
    ] = 2000,
    storage: Storage = None,
    study: Annotated[
        Optional[str], typer.Option("--study", help="Study name (default: <space name>-fidelity, -debug added "
                                    "with --debug).")
    ] = None,
    device: Device = None,
    train_json: DataJson = None,
    image_root: ImageRoot = None,
    val_json: ValJson = None,
    val_root: ValRoot = None,
    debug: Debug = False,
    fmt: Annotated[FidelityFormat, typer.Option("--format", help="table or json.")] = FidelityFormat.table,
) -> None:
    """Train a sample of candidates at each cheap rung and at the full budget: does the rung rank them
    like the full budget (Kendall tau), and would the full-budget best have survived the screen?

    A study like any other (default name: <space>-fidelity): run it again to resume, or with more
    --seeds or --candidates to sharpen it; finished runs are never trained again."""
    from sweeper import console
    from sweeper.cli.views import TuneView
    from sweeper.sweep.fidelity import run_fidelity
    from sweeper.sweep.space import apply_overrides, load_space

    spec = apply_overrides(load_space(space), epochs=epochs, device=device, train_json=path_or_none(train_json),
                           image_root=path_or_none(image_root), val_json=path_or_none(val_json),
                           val_root=path_or_none(val_root), debug=debug)
    name = study or f"{spec.name}-fidelity" + ("-debug" if debug else "")
    with TuneView(spec) as view:
        report = run_fidelity(spec, n_candidates=candidates, n_seeds=seeds, rungs=rungs, keep=keep,
                              storage=storage, study_name=name, n_boot=boot, events=view.event)
    for message in report.messages:
        console.err.print(message, highlight=False, soft_wrap=True)
    console.err.print(f"study {report.study_name!r} in {report.storage}: {report.trained} new run(s) trained, "
                      f"{report.failed} failed", highlight=False, soft_wrap=True)
    if fmt is FidelityFormat.json:
        import json

        console.out.file.write(json.dumps(fidelity_dict(report), indent=2) + "\n")
    else:
        render_fidelity(report, console.out)


def fidelity_dict(report) -> dict:
    """The report as JSON-ready data: one record per cheap rung, then every run's mIoU (None:
    no finished run)."""
    from sweeper.sweep.records import clean

    f = report.fidelity
    rows = [{"epochs": r.epochs, "full_epochs": f.full_epochs, "kendall_tau": r.tau, "tau_ci_low": r.tau_low,
             "tau_ci_high": r.tau_high, "confidence": f.confidence, "promoted": r.promoted,
             "best_survival_boot": r.survival, "best_survived": r.survived} for r in f.rungs]
    runs = [{"candidate": c, "seed": seed, "epochs": epochs, "miou": report.values[epochs][i][j]}
            for epochs in sorted(report.values) for i, seed in enumerate(report.seeds)
            for j, c in enumerate(report.candidates)]
    by_epoch = [{"epochs": r.epochs, "kendall_tau": r.tau, "tau_ci_low": r.tau_low, "tau_ci_high": r.tau_high,
                 "promoted": r.promoted, "best_survival_boot": r.survival, "best_survived": r.survived}
                for r in report.by_epoch]
    return clean({"study": report.study_name, "storage": report.storage, "candidates": list(report.candidates),
                  "seeds": list(report.seeds), "keep": report.keep, "full_epochs": report.full_epochs,
                  "full_best": report.best, "n_boot": f.n_boot, "screen_cost_share": report.cost_share,
                  "rungs": rows, "by_epoch": by_epoch, "runs": runs})


def render_fidelity(report, out) -> None:
    """The terminal table: one row per cheap rung against the full budget."""
    from rich.table import Table

    f = report.fidelity
    title = (f"{f.candidates} candidates x {f.seeds} seed(s); full budget {f.full_epochs} epochs; keep "
             f"{report.keep:.2f}; full-budget best: {report.best}")
    table = Table(title=title, title_justify="left")
    for col in ("rung (epochs)", "Kendall tau", f"{100 * f.confidence:.0f}% interval", "promoted",
                "best survives (bootstrap)", "best survived (this sample)"):
        table.add_column(col, justify="right")
    entering = f.candidates
    for r in f.rungs:
        table.add_row(str(r.epochs), _num(r.tau), f"[{_num(r.tau_low)}, {_num(r.tau_high)}]",
                      f"{r.promoted} of {entering}", f"{100 * r.survival:.0f}%", _survived(r.survived, f.seeds))
        entering = r.promoted
    out.print(table)
    out.print(f"tau: rank correlation of the rung's val mIoU with the full budget's over the candidates, within a "
              f"seed, mean over seeds (1 = same order). Survival: whether the full-budget best is still promoted "
              f"after the rung (and every cheaper one), resampling the candidates {f.n_boot} times. A screen by "
              f"these rungs costs {100 * report.cost_share:.0f}% of the epochs of every candidate at the full budget.",
              highlight=False)
    if report.by_epoch:
        epochs = Table(title=f"every epoch of the full runs as a single rung, keep {report.keep:.2f} (constant "
                       "learning rate: a rung of e epochs is the first e epochs of the full run)", title_justify="left")
        for col in ("epoch", "Kendall tau", f"{100 * f.confidence:.0f}% interval", "best survives (bootstrap)"):
            epochs.add_column(col, justify="right")
        for r in report.by_epoch:
            epochs.add_row(str(r.epochs), _num(r.tau), f"[{_num(r.tau_low)}, {_num(r.tau_high)}]",
                           f"{100 * r.survival:.0f}%")
        out.print(epochs)


def _num(value: float) -> str:
    return "n/a" if value != value else f"{value:+.2f}"


def _survived(share: float, seeds: int) -> str:
    if seeds == 1:
        return "yes" if share >= 1 else "no"
    return f"{round(share * seeds)} of {seeds} seeds"
