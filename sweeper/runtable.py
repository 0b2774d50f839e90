"""A table of runs made with any tool, ranked like a study: ``sweeper report --runs FILE.csv``.

Competitors keep their experiment records in spreadsheets; this reads one. Columns:
``candidate,seed,value`` (value: the run's score, higher is better, e.g. mIoU), optionally
``fold`` (a seed's value is then the mean over its folds, as in a study), and any other columns,
kept as labels of the candidate (``arch`` and ``encoder`` fill the table's columns). Nothing here
imports torch or optuna.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from sweeper.errors import SweeperError

REQUIRED = ("candidate", "seed", "value")


def read_runs(path: str | Path):
    """``(values, labels)`` for :func:`sweeper.stats.rank_candidates`, or a one-line error naming
    the row (1-based, the header is row 1)."""
    import numpy as np

    from sweeper.stats import Label

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SweeperError(f"--runs: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweeperError(f"--runs: cannot read {path}: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise SweeperError(f"{path}: the file is empty; expected a header with {', '.join(REQUIRED)}")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise SweeperError(f"{path}: missing column(s) {', '.join(missing)} (the header has: {', '.join(header)})")
    reader.fieldnames = header
    extra = [h for h in header if h not in (*REQUIRED, "fold")]
    seen: dict[tuple[str, int, int], int] = {}
    cells: dict[str, dict[int, list[float]]] = {}
    labels: dict[str, dict[str, str]] = {}
    for number, rec in enumerate(reader, start=2):
        if None in rec:
            raise SweeperError(f"{path}: row {number}: more cells than the header has columns")
        name = (rec.get("candidate") or "").strip()
        if not name:
            raise SweeperError(f"{path}: row {number}: candidate is empty")
        seed = _integer(rec.get("seed"), "seed", path, number)
        fold = _integer(rec.get("fold") or "0", "fold", path, number) if "fold" in header else 0
        raw = (rec.get("value") or "").strip()
        try:
            value = float(raw)
        except ValueError:
            raise SweeperError(f"{path}: row {number}: value {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise SweeperError(f"{path}: row {number}: value {raw!r} is not finite (leave the run out instead)")
        key = (name, seed, fold)
        if key in seen:
            where = f"seed {seed}" + (f" fold {fold}" if "fold" in header else "")
            raise SweeperError(f"{path}: row {number}: candidate {name!r} {where} repeats row {seen[key]}")
        seen[key] = number
        cells.setdefault(name, {}).setdefault(seed, []).append(value)
        labels.setdefault(name, {c: (rec.get(c) or "").strip() for c in extra})
    if not cells:
        raise SweeperError(f"{path}: no rows under the header")
    seeds = sorted({s for runs in cells.values() for s in runs})
    row_of = {s: r for r, s in enumerate(seeds)}
    values = np.full((len(seeds), len(cells)), np.nan)
    out_labels = []
    for j, (name, runs) in enumerate(cells.items()):
        for seed, folds in runs.items():
            values[row_of[seed], j] = sum(folds) / len(folds)
        meta = labels[name]
        out_labels.append(Label(key=name, arch=meta.get("arch", ""), encoder=meta.get("encoder", ""),
                                extra={k: v for k, v in meta.items() if k not in ("arch", "encoder")}))
    return values, out_labels


def _integer(raw: str | None, column: str, path: Path, number: int) -> int:
    text = (raw or "").strip()
    try:
        value = int(text)
    except ValueError:
        try:
            as_float = float(text)
        except ValueError:
            raise SweeperError(f"{path}: row {number}: {column} {text!r} is not a whole number") from None
        if not as_float.is_integer():
            raise SweeperError(f"{path}: row {number}: {column} {text!r} is not a whole number") from None
        value = int(as_float)
    return value
