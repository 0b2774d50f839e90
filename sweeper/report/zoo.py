"""Draw what the zoo counted: the candidates as a rich table, CSV, JSON or markdown.

Columns carry their units: ``params_m`` etc. are millions of parameters (whole model, encoder,
decoder with its head), ``gflops`` is 1e9 floating-point operations of one forward of one image
at the zoo's ``image_size``; the JSON keeps the exact integer counts. ``deprecated`` marks smp's
deprecated ``timm-*`` aliases (``sweeper zoo --deprecated``); the table and markdown show that
column only when a row has it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

from sweeper.zoo import Candidate, InvalidPair, to_records

if TYPE_CHECKING:
    from rich.table import Table

CSV_COLUMNS = [
    "arch", "encoder", "params_m", "encoder_params_m", "decoder_params_m", "gflops",
    "weights", "runs_at_size", "note", "deprecated",
]
"""Flat columns of :func:`to_csv`, those of :func:`sweeper.zoo.to_records`."""


def to_csv(candidates: Iterable[Candidate]) -> str:
    """Flat CSV, one row per candidate in the given order, columns :data:`CSV_COLUMNS`."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(to_records(candidates))
    return buf.getvalue()


def to_json(candidates: Iterable[Candidate]) -> str:
    """Exact integers (params) alongside the columns of the CSV."""
    rows = [dict(asdict(c), weights=list(c.weights)) for c in candidates]
    return json.dumps(rows, indent=2)


def to_markdown(candidates: Iterable[Candidate]) -> str:
    """The table of :func:`render_table` in GitHub markdown (sizes in millions, 2 decimals)."""
    records = to_records(candidates)
    marked = any(r["deprecated"] for r in records)
    lines = [
        "| arch | encoder | params (M) | encoder (M) | decoder+head (M) | GFLOPs | weights | runs |"
        + (" deprecated |" if marked else ""),
        "|---|---|---:|---:|---:|---:|---|---|" + ("---|" if marked else ""),
    ]
    for r in records:
        gflops = "-" if r["gflops"] is None else f"{r['gflops']:.2f}"
        lines.append(
            f"| {r['arch']} | {r['encoder']} | {r['params_m']:.2f} | {r['encoder_params_m']:.2f} | "
            f"{r['decoder_params_m']:.2f} | {gflops} | {r['weights'].replace(';', ', ') or '-'} | "
            f"{'yes' if r['runs_at_size'] else 'no'} |" + ((" yes |" if r["deprecated"] else " - |") if marked else "")
        )
    return "\n".join(lines) + "\n"


def render_table(candidates: Sequence[Candidate], *, image_size: int, title: str | None = None) -> Table:
    """A rich Table of the candidates (the caller prints it)."""
    from rich.table import Table

    table = Table(title=title, header_style="bold", show_lines=False)
    table.add_column("arch")
    table.add_column("encoder")
    table.add_column("params (M)", justify="right")
    table.add_column("encoder (M)", justify="right")
    table.add_column("decoder+head (M)", justify="right")
    table.add_column(f"GFLOPs @{image_size}", justify="right")
    table.add_column("weights")
    table.add_column(f"runs @{image_size}")
    marked = any(c.deprecated for c in candidates)
    if marked:
        table.add_column("deprecated")
    for c in candidates:
        table.add_row(
            c.arch, c.encoder, f"{c.params / 1e6:.2f}", f"{c.encoder_params / 1e6:.2f}",
            f"{c.decoder_params / 1e6:.2f}", "-" if c.gflops is None else f"{c.gflops:.2f}",
            ", ".join(c.weights) or "-", "yes" if c.runs else f"[red]no[/]: {c.note}",
            *(["[yellow]yes[/]" if c.deprecated else "-"] if marked else []),
        )
    return table


def render_invalid(invalid: Sequence[InvalidPair]) -> Table:
    """A rich Table of the pairs smp refuses to build, with smp's reason (the caller prints it)."""
    from rich.table import Table

    table = Table(title=f"{len(invalid)} pairs smp cannot build", header_style="bold")
    table.add_column("arch")
    table.add_column("encoder")
    table.add_column("reason")
    for pair in invalid:
        table.add_row(pair.arch, pair.encoder, pair.reason)
    return table
