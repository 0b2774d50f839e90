"""Draw a :class:`~sweeper.stats.Ranking` as text: a rich table, markdown, CSV and JSON.

Nothing here computes statistics or reads a study. To report a sweep, build ``values`` (runs x
candidates, NaN for a missing run; :func:`sweeper.stats.pivot_runs` turns ``(key, seed, mIoU)``
records into it) and one :class:`~sweeper.stats.Label` per column, call
:func:`sweeper.stats.rank_candidates`, and hand the ranking to the functions below (the plots
are in :mod:`sweeper.report.plots`). Every number is dataset-level mIoU in [0, 1]; ``params_m``
is millions of parameters.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sweeper.stats import BEST, EQUIVALENT, UNDECIDED, WORSE, Ranking, Row

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

#: How each verdict reads in a table cell: a symbol that survives a terminal and markdown, then
#: the word.
SYMBOLS = {BEST: "★", EQUIVALENT: "≈", WORSE: "▼", UNDECIDED: "?"}

# --------------------------------------------------------------------------- text pieces


def format_number(x: float, digits: int = 4, sign: bool = False) -> str:
    if x is None or math.isnan(x):
        return "—"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def format_p(p: float) -> str:
    if p is None or math.isnan(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _params(params: int | None) -> str:
    return "—" if params is None else f"{params / 1e6:.1f}"


def row_label(row: Row) -> str:
    c = row.candidate
    return f"{c.arch} / {c.encoder}" if c.arch and c.encoder else c.key


def verdict_text(row: Row) -> str:
    """A row's verdict cell: ``▼ worse (1 run)``, ``? undecided (~8 seeds)``."""
    if not row.verdict:
        return "no runs"
    text = f"{SYMBOLS[row.verdict]} {row.verdict}"
    if row.verdict == UNDECIDED and not math.isnan(row.seeds_to_decide):
        need = row.seeds_to_decide
        text += " (> 1000 seeds)" if math.isinf(need) else f" (~{int(need)} seeds)"
    elif row.single_run and row.verdict != BEST:
        text += " (1 run)"
    return text


def gap_text(row: Row) -> str:
    """``-0.0125 [-0.0310, +0.0060]``: the gap to the best and its simultaneous interval."""
    if row.verdict == BEST or math.isnan(row.gap):
        return "—"
    if math.isnan(row.gap_low):
        return format_number(row.gap, sign=True)
    return f"{row.gap:+.4f} [{row.gap_low:+.4f}, {row.gap_high:+.4f}]"


def noise_line(ranking: Ranking) -> str:
    """The noise floor, the effect that many seeds can detect, and the seeds the ROPE needs."""
    r = ranking
    if math.isnan(r.noise_floor):
        return (
            "Noise floor: unknown — no candidate has 2 runs, so no difference can be told from "
            "seed noise yet."
        )
    text = (
        f"Noise floor: σ = {r.noise_floor:.4f} mIoU (run-to-run sd within a candidate, pooled "
        f"over {r.noise_candidates} candidates with ≥ 2 runs, df {r.noise_df})."
    )
    if math.isfinite(r.mde):
        text += (
            f" With {r.mde_seeds} seeds per candidate a gap of {r.mde:.4f} is detected with 80% "
            f"power (two candidates, paired two-sided t-test at α = {r.alpha:g}, runs treated as "
            "independent)."
        )
    if r.rope > 0 and r.seeds_for_rope is not None:
        text += f" Resolving the ROPE ({r.rope:.3f}) needs {r.seeds_for_rope} seeds per candidate."
    elif r.rope > 0:
        text += f" Resolving the ROPE ({r.rope:.3f}) needs more seeds than is practical."
    return text


def verdict_line(ranking: Ranking) -> str:
    """``Verdicts: 1 best, 2 equivalent, 3 worse, 1 undecided (about 9 seeds each would decide).``"""
    counts = [f"{ranking.count(v)} {v}" for v in (BEST, EQUIVALENT, WORSE, UNDECIDED) if ranking.count(v)]
    text = "Verdicts: " + ", ".join(counts)
    need = [r.seeds_to_decide for r in ranking.rows if r.verdict == UNDECIDED and not math.isnan(r.seeds_to_decide)]
    if need:
        finite = [int(n) for n in need if math.isfinite(n)]
        if finite:
            span = str(min(finite)) if min(finite) == max(finite) else f"{min(finite)}–{max(finite)}"
            text += f" (the undecided would likely need {span} seeds each"
            text += "; some more than 1000)" if len(finite) < len(need) else ")"
        else:
            text += " (the undecided sit on the ROPE's edge: more seeds would hardly decide them)"
    return text + "."


def warnings_of(ranking: Ranking) -> list[str]:
    """What the reader must know before trusting the table: noisy candidates, a task not learned."""
    out = []
    for key in ranking.noisy:
        out.append(f"{key}: its sd is more than twice the pooled sd; its intervals use its own noise")
    if ranking.baseline is not None and ranking.no_model_learned:
        out.append(
            f"no model learned the task: the best mIoU is within the ROPE ({ranking.rope:.3f}) of "
            f"predicting the majority class everywhere ({ranking.baseline:.4f}); train longer, or check the data"
        )
    return out


def baseline_line(ranking: Ranking) -> str | None:
    if ranking.baseline is None:
        return None
    return f"Trivial baseline: predicting the majority class everywhere scores mIoU {ranking.baseline:.4f} here."


def legend(ranking: Ranking) -> list[str]:
    """One line per verdict, then how the intervals and the reference columns are made."""
    r = ranking
    rope = f"{r.rope:.3f}"
    if r.ci_method_text == "t interval":
        ci_text = f"{r.ci:.0%} CI: t interval of the mean over seeds."
    else:
        ci_text = (f"{r.ci:.0%} CI: {r.ci_method_text} of the mean over seeds ({r.n_boot} resamples, seed "
                   f"{r.seed}).")
    crit = "" if math.isnan(r.crit) else f", ±{r.crit:.2f} se at df {r.df}"
    return [
        f"{SYMBOLS[BEST]} best: the highest mean (bold).",
        f"{SYMBOLS[EQUIVALENT]} equivalent: the gap's interval lies inside ±ROPE ({rope}): practically equal "
        "to the best.",
        f"{SYMBOLS[WORSE]} worse: the gap's interval lies below -{rope}: worse than the best by more than the ROPE.",
        f"{SYMBOLS[UNDECIDED]} undecided: neither yet; (~N seeds) is how many seeds per candidate would likely "
        "decide it.",
        "(1 run): a candidate with one run, judged with the noise pooled over the others.",
        f"Δ to best [interval]: mean difference over the seeds shared with the best, with simultaneous "
        f"{1 - r.alpha:.0%} intervals (Tukey-Kramer over {r.n_family} candidates{crit}; each side's variance "
        "at least the pooled one): all hold together, although the best was picked after seeing the data. "
        "Tukey p: the same comparison's adjusted p-value; Holm p: one-sided paired t-test, Holm-adjusted, "
        "for reference only (it ignores that the best was picked).",
        ci_text,
    ]


# --------------------------------------------------------------------------- tables


def _header(ranking: Ranking) -> list[str]:
    first = ["arch", "encoder"] if _has_models(ranking) else ["candidate"]
    return [
        "rank",
        *first,
        "params (M)",
        "n",
        "mean ± sd",
        f"{ranking.ci:.0%} CI",
        "Δ to best [interval]",
        "Tukey p",
        "Holm p",
        "verdict",
    ]


def _has_models(ranking: Ranking) -> bool:
    return any(row.candidate.arch or row.candidate.encoder for row in ranking.rows)


def _cells(ranking: Ranking, row: Row) -> list[str]:
    c = row.candidate
    first = [c.arch or c.key, c.encoder] if _has_models(ranking) else [c.key]
    best = row.verdict == BEST
    mean_sd = format_number(row.mean) if math.isnan(row.sd) else f"{row.mean:.4f} ± {row.sd:.4f}"
    ci = "—" if math.isnan(row.ci_low) else f"{row.ci_low:.4f}–{row.ci_high:.4f}"
    return [
        str(row.rank),
        *first,
        _params(c.params),
        str(row.n),
        mean_sd if row.n else "—",
        ci,
        gap_text(row),
        "—" if best else format_p(row.p_tukey),
        "—" if best else format_p(row.p_holm),
        verdict_text(row),
    ]


def notes(ranking: Ranking) -> list[str]:
    """The lines under a table: verdict counts, warnings, the trivial baseline, the noise floor."""
    lines = [verdict_line(ranking)]
    lines += [f"warning: {w}" for w in warnings_of(ranking)]
    base = baseline_line(ranking)
    if base:
        lines.append(base)
    lines.append(noise_line(ranking))
    return lines


def stopped_text(stop) -> str:
    """``stopped at epoch 3 of 8: rank 5 of 14 at that rung``."""
    of = f" of {stop.full_epochs}" if stop.full_epochs else ""
    return f"stopped at epoch {stop.epochs}{of}: rank {stop.rank} of {stop.of} at that rung"


STOPPED_TITLE = "Stopped at a cheaper rung (ranked only among that rung's runs, never with the table above)"


def _stopped_cells(stop) -> list[str]:
    return [stop.arch, stop.encoder, format_number(stop.mean), str(stop.n), stopped_text(stop)]


_STOPPED_HEADER = ["arch", "encoder", "mean at rung", "n", "where it stopped"]


def shown_rows(ranking: Ranking, max_rows: int | None) -> tuple[Row, ...]:
    return ranking.rows if max_rows is None else ranking.rows[:max_rows]


_NAME_COLUMNS = ("arch", "encoder", "candidate")
_DROP_WHEN_NARROW = ("Holm p", "Tukey p", "params (M)", "CI")
"""Columns a narrow terminal hides, in this order, rather than cutting the marker off."""


def render_table(
    ranking: Ranking, console: Console | None = None, *, max_rows: int | None = None
) -> Table:
    """Print the ranked table, the noise-floor line and the legend; return the rich Table.

    ``console`` defaults to sweeper's stdout console; ``max_rows`` shows only the top rows (the
    notes still describe every candidate). On a terminal too narrow for every column, the name
    columns are shortened first, then the Holm p, params, CI and Tukey p columns are hidden
    (and a note says so): numbers are never cut.
    """
    from rich import box
    from rich.cells import cell_len
    from rich.markup import escape
    from rich.table import Table

    if console is None:
        from sweeper.console import out as console

    shown = shown_rows(ranking, max_rows)
    header = _header(ranking)
    cells = [_cells(ranking, row) for row in shown]
    widths = [max([cell_len(h)] + [cell_len(c[j]) for c in cells]) for j, h in enumerate(header)]
    keep = list(range(len(header)))

    def needed(cols: list[int]) -> int:
        slack = sum(max(0, widths[j] - 10) for j in cols if header[j] in _NAME_COLUMNS)
        return sum(widths[j] for j in cols) + 2 * (len(cols) - 1) - slack

    hidden = []
    for name in _DROP_WHEN_NARROW:
        if needed(keep) <= console.width:
            break
        j = next(j for j in keep if header[j] == name or header[j].endswith(f" {name}"))
        keep.remove(j)
        hidden.append(header[j])

    table = Table(title="Ranking by mean mIoU", title_justify="left", box=box.SIMPLE_HEAD,
                  collapse_padding=True, pad_edge=False, show_edge=False)
    numeric = {"rank", "params (M)", "n", "mean ± sd", "Δ to best [interval]", "Tukey p", "Holm p"}
    for j in keep:
        name = header[j]
        if name in _NAME_COLUMNS:  # the only columns rich may shorten (with an ellipsis)
            table.add_column(escape(name), overflow="ellipsis")
        else:
            table.add_column(escape(name), justify="right" if name in numeric else "left", no_wrap=True,
                             min_width=widths[j])
    for row, row_cells in zip(shown, cells):
        table.add_row(*(escape(row_cells[j]) for j in keep),
                      style="bold" if row.verdict == BEST else None)
    console.print(table)
    more = len(ranking.rows) - len(shown)
    if more:
        console.print(f"… {more} more candidates not shown")
    if hidden:
        console.print(f"(terminal too narrow: hidden columns {', '.join(hidden)}; "
                      "the CSV and JSON exports have every column)")
    if ranking.stopped:
        stopped = Table(title=STOPPED_TITLE, title_justify="left", box=box.SIMPLE_HEAD, collapse_padding=True,
                        pad_edge=False, show_edge=False)
        for name in _STOPPED_HEADER:
            stopped.add_column(name, overflow="ellipsis") if name in _NAME_COLUMNS else stopped.add_column(
                name, justify="right" if name in ("mean at rung", "n") else "left", no_wrap=True)
        for stop in ranking.stopped:
            stopped.add_row(*(escape(c) for c in _stopped_cells(stop)))
        console.print(stopped)
    for line in notes(ranking):
        console.print(line, style="yellow" if line.startswith("warning:") else None, highlight=False,
                      markup=False)
    for line in legend(ranking):
        console.print(line, style="dim", markup=False)
    return table


def to_markdown(ranking: Ranking, *, max_rows: int | None = None) -> str:
    """The same table as :func:`render_table` in GitHub markdown, best row in bold."""
    header = _header(ranking)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in shown_rows(ranking, max_rows):
        cells = [c.replace("|", "\\|") for c in _cells(ranking, row)]
        if row.verdict == BEST:
            cells = [f"**{c}**" if c and c != "—" else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    hidden = len(ranking.rows) - len(shown_rows(ranking, max_rows))
    if hidden:
        lines.append(f"\n… {hidden} more candidates not shown")
    if ranking.stopped:
        lines += ["", f"{STOPPED_TITLE}:", "", "| " + " | ".join(_STOPPED_HEADER) + " |",
                  "|" + "|".join("---" for _ in _STOPPED_HEADER) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _stopped_cells(stop)) + " |"
                  for stop in ranking.stopped]
    lines.append("")
    lines.extend(notes(ranking))
    lines.append("")
    lines.extend(f"- {line}" for line in legend(ranking))
    return "\n".join(lines) + "\n"
