"""The array convention of the statistics, and checks of their arguments.

``values`` is a float array of shape ``(runs, candidates)``: row ``r`` holds seed (or fold) ``r``
of every candidate, so rows pair candidates (common random numbers), and NaN marks a missing run.
Higher is better; values are dataset-level mIoU in [0, 1], so every difference, ROPE and sd is in
mIoU (0.01 is one point).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sweeper.errors import SweeperError, did_you_mean


@dataclass(frozen=True)
class Label:
    """What a column of ``values`` is: a label the statistics carry along and never read.

    ``key`` is unique (e.g. ``"unet/resnet34"``); ``params`` is the parameter count (not
    millions) or None when unknown; ``extra`` holds anything else worth exporting (JSON only).
    """

    key: str
    arch: str = ""
    encoder: str = ""
    params: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)


def as_values(values: Any) -> np.ndarray:
    """Return ``values`` as a float (runs, candidates) array, or raise :class:`SweeperError`."""
    try:
        arr = np.array(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise SweeperError(f"values must be numbers (NaN for a missing run): {exc}") from None
    if arr.ndim != 2:
        raise SweeperError(
            f"values must be a 2-D array of shape (runs, candidates), got {arr.ndim}-D "
            f"shape {arr.shape}"
        )
    if np.isinf(arr).any():
        raise SweeperError("values contain inf; use NaN for a missing or failed run")
    return arr


def pivot_runs(
    records: Iterable[tuple[str, int, float | None]],
) -> tuple[np.ndarray, list[str], list[int]]:
    """Build ``values`` from ``(candidate_key, seed, value)`` records, e.g. one per finished trial.

    Returns ``(values, keys, seeds)``: columns follow the first appearance of each key, rows are
    the sorted distinct seeds, and a (key, seed) without a record (or with value None) is NaN. A
    (key, seed) recorded twice raises, because silently keeping one of two runs biases the mean.
    """
    keys: dict[str, int] = {}
    cells: dict[tuple[str, int], float] = {}
    for key, seed, value in records:
        key, seed = str(key), int(seed)
        keys.setdefault(key, len(keys))
        if (key, seed) in cells:
            raise SweeperError(f"candidate {key!r} has two runs for seed {seed}")
        cells[(key, seed)] = math.nan if value is None else float(value)
    seeds = sorted({seed for _, seed in cells})
    row = {seed: r for r, seed in enumerate(seeds)}
    values = np.full((len(seeds), len(keys)), np.nan)
    for (key, seed), value in cells.items():
        values[row[seed], keys[key]] = value
    return as_values(values), list(keys), seeds


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise SweeperError(
            f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}"
            + did_you_mean(value, choices)
        )


def check_fraction(name: str, value: float) -> None:
    if not 0.0 < float(value) < 1.0:
        raise SweeperError(f"{name} must be between 0 and 1 (exclusive), got {value!r}")


def check_rope(rope: float) -> None:
    if not float(rope) >= 0.0:
        raise SweeperError(f"rope must be >= 0 (in mIoU units, e.g. 0.01), got {rope!r}")


def check_n_boot(n_boot: int) -> None:
    if int(n_boot) != n_boot or n_boot < 0:
        raise SweeperError(f"n_boot must be a whole number >= 0, got {n_boot!r}")


def column_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    obs = np.isfinite(x)
    n = obs.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(obs, x, 0.0).sum(axis=0) / n
        dev = np.where(obs, x - mean, 0.0)
        sd = np.sqrt((dev * dev).sum(axis=0) / (n - 1))
    mean = np.where(n > 0, mean, np.nan)
    sd = np.where(n > 1, sd, np.nan)
    return n, mean, sd


def compact(x: np.ndarray) -> np.ndarray:
    """Move each column's finite entries to the top, keeping their order (NaN below)."""
    order = np.argsort(~np.isfinite(x), axis=0, kind="stable")
    return np.take_along_axis(x, order, axis=0)

