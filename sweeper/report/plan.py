"""Draw a :class:`~sweeper.sweep.preview.Preview`: a rich table for the terminal, or JSON.

Seconds are the sweep's clock (each unit's run plus sweeper's own work around it); ``run_s`` of a
candidate is one run at the full budget as a trial records it (``wall_time_s``). The JSON keeps
every candidate in screening order (``screened`` marks the first the screen takes) and the
phases with their runs and seconds in the best and the worst case.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from sweeper.sweep.preview import Preview

#: Candidates the table lists beyond the screened ones (the JSON lists all).
UNSCREENED_SHOWN = 5


def format_seconds(seconds: float | None) -> str:
    """``42 s``, ``13 min``, ``2.4 h``, ``3.1 d``; ``—`` when not estimated."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds == 0:
        return "0 s"
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _span(best: float | None, worst: float | None) -> str:
    if best is None or worst is None:
        return "—"
    if format_seconds(best) == format_seconds(worst):
        return format_seconds(worst)
    return f"{format_seconds(best)} – {format_seconds(worst)}"


def _runs(best: int, worst: int) -> str:
    return str(worst) if best == worst else f"{best} – {worst}"


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def to_dict(preview: Preview) -> dict:
    """The plan as plain data (``--format json``)."""
    rungs = preview.rungs
    return {
        "space": preview.space,
        "source": preview.source,
        "study": preview.study,
        "storage": preview.storage,
        "study_exists": preview.study_exists,
        "device": preview.device or None,
        "estimate_method": preview.method,
        "estimate": preview.estimate_note or None,
        "epochs": preview.epochs,
        "batch_size": preview.batch_size,
        "image_size": preview.image_size,
        "seeds": list(preview.seeds),
        "folds": list(preview.folds),
        "images": {str(fold): {"train": t, "val": v} for fold, (t, v) in preview.images.items()},
        "rungs": None if rungs is None else {"epochs": list(rungs.epochs), "keep": rungs.keep,
                                             "continued": preview.rungs_continue},
        "racing": preview.racing,
        "pruner": preview.pruner,
        "sampled": preview.sampled,
        "candidates_total": len(preview.candidates),
        "screened": preview.screened,
        "candidates": [
            {"order": c.order, "arch": c.arch, "encoder": c.encoder, "params": c.params,
             "params_m": round(c.params / 1e6, 3), "gflops": _round(c.gflops, 3), "screened": c.screened,
             "run_s": _round(c.run_s)}
            for c in preview.candidates
        ],
        "phases": [
            {"phase": p.phase, "label": p.label, "epochs": p.epochs, "candidates": p.candidates,
             "candidates_known": p.known, "runs_best": p.runs_best, "runs_worst": p.runs_worst,
             "seconds_best": _round(p.seconds_best, 1), "seconds_worst": _round(p.seconds_worst, 1), "done": p.done,
             "remaining_seconds_best": _round(p.remaining_best_s, 1),
             "remaining_seconds_worst": _round(p.remaining_worst_s, 1)}
            for p in preview.phases
        ],
        "runs_best": preview.runs_best,
        "runs_worst": preview.runs_worst,
        "seconds_best": _round(preview.seconds_best, 1),
        "seconds_worst": _round(preview.seconds_worst, 1),
        "done": preview.done,
        "running": preview.running,
        "complete": preview.complete,
        "remaining_seconds_best": _round(preview.remaining_best_s, 1),
        "remaining_seconds_worst": _round(preview.remaining_worst_s, 1),
        "notes": list(preview.notes),
    }


def to_json(preview: Preview) -> str:
    return json.dumps(to_dict(preview), indent=2) + "\n"


def render(preview: Preview, console: Console) -> None:
    """The plan on a terminal: what is screened, the phases, the totals, how it was estimated."""
    from rich.table import Table
    from rich.text import Text

    p = preview
    images = ", ".join(f"fold {f}: {t} train / {v} val" for f, (t, v) in sorted(p.images.items())
                       if f in p.folds) or "—"
    rungs = "none" if p.rungs is None else (f"{', '.join(str(e) for e in p.rungs.epochs)} epoch(s) before the full "
                                             f"budget, keep {p.rungs.keep:.2f}, "
                                             + ("each going on from the one before" if p.rungs_continue
                                                else "each from scratch"))
    where = p.storage or "—"
    state = ("study exists: " + (f"{p.done} unit(s) done" + (f", {p.running} running" if p.running else ""))
             + (", complete" if p.complete else "") if p.study_exists else "nothing done yet")
    lines = [
        ("plan", f"study {p.study!r} of space {p.space} ({p.source})"),
        ("storage", f"{where} — {state}"),
        ("recipe", f"{p.epochs} epochs, batch {p.batch_size}, {p.image_size} px; images {images}"),
        ("seeds", f"{', '.join(str(s) for s in p.seeds)} (first screens; racing {'on' if p.racing else 'off'}); "
                  f"folds {', '.join(str(f) for f in p.folds)}; pruner {p.pruner}; rungs {rungs}"),
    ]
    for label, text in lines:
        console.print(Text.assemble((f"{label:<8}", "bold"), " ", text), highlight=False, soft_wrap=True)

    if p.sampled:
        title = f"{len(p.candidates)} candidate pair(s); TPE samples {p.screened} trial(s) from them"
        shown = list(p.candidates)
    else:
        title = f"{p.screened} of {len(p.candidates)} candidate(s) screened, in screening order"
        shown = [c for c in p.candidates if c.screened]
        shown += [c for c in p.candidates if not c.screened][:UNSCREENED_SHOWN]
    table = Table(title=title, header_style="bold", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("arch")
    table.add_column("encoder")
    table.add_column("params (M)", justify="right")
    table.add_column(f"GFLOPs @{p.image_size}", justify="right")
    table.add_column(f"run ({p.epochs} ep.)", justify="right")
    for c in shown:
        style = None if c.screened or p.sampled else "dim"
        table.add_row(str(c.order), c.arch, c.encoder, f"{c.params / 1e6:.1f}",
                      "—" if c.gflops is None else f"{c.gflops:.2f}", format_seconds(c.run_s), style=style)
    left_out = len(p.candidates) - len(shown)
    if left_out > 0:
        table.caption = f"... and {left_out} more not screened (--format json lists all; --trials screens more)"
        table.caption_justify = "left"
    console.print(table)

    phases = Table(title="phases", header_style="bold", title_justify="left")
    phases.add_column("phase")
    phases.add_column("candidates", justify="right")
    phases.add_column("runs (best – worst)", justify="right")
    phases.add_column("time (best – worst)", justify="right")
    if p.study_exists:
        phases.add_column("done", justify="right")
        phases.add_column("left (best – worst)", justify="right")
    for ph in p.phases:
        count = str(ph.candidates) + ("" if ph.known else "*")
        row = [ph.label, count, _runs(ph.runs_best, ph.runs_worst), _span(ph.seconds_best, ph.seconds_worst)]
        if p.study_exists:
            row += [str(ph.done), _span(ph.remaining_best_s, ph.remaining_worst_s)]
        phases.add_row(*row)
    total = ["total", "", _runs(p.runs_best, p.runs_worst), _span(p.seconds_best, p.seconds_worst)]
    if p.study_exists:
        total += [str(p.done), _span(p.remaining_best_s, p.remaining_worst_s)]
    phases.add_row(*total, style="bold")
    if any(not ph.known for ph in p.phases):
        phases.caption = "* decided by results not in yet: costed at the screened candidates' mean"
        phases.caption_justify = "left"
    console.print(phases)
    estimate = p.estimate_note if p.method != "none" else "not made (--estimate none)"
    console.print(Text.assemble(("estimate", "bold"), f" [{p.method}] ", estimate), highlight=False, soft_wrap=True)
    for note in p.notes:
        console.print(Text.assemble(("note", "bold"), "     ", note), highlight=False, soft_wrap=True)
