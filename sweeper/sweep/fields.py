"""Checks of single values read from a space file or a flag, each naming where the value came from.

``where`` is the prefix of the error line (``space.yaml: recipe.epochs``, ``--trials``), so that
every refusal names the file and the key.
"""

from __future__ import annotations

import math
from typing import Any

from sweeper.errors import SweeperError, did_you_mean


def check_keys(mapping: dict, allowed: tuple[str, ...], source: str, prefix: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise SweeperError(f"{source}: {prefix}{key}: unknown key{did_you_mean(str(key), allowed)}")


def to_number(value: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; accept it as the number it means."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise SweeperError(f"{where}: {value!r} is not one of {', '.join(choices)}{did_you_mean(str(value), choices)}")
    return value


def expect_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SweeperError(f"{where}: expected true or false, got {value!r}")
    return value


def positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SweeperError(f"{where}: expected a positive integer, got {value!r}")
    return value


def non_negative(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise SweeperError(f"{where}: expected a number >= 0, got {value!r}")
    return float(value)


def int_list(value: Any, where: str, *, minimum: int) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value
    ):
        raise SweeperError(f"{where}: expected a non-empty list of integers >= {minimum}, got {value!r}")
    return tuple(value)


def check_recipe_fields(config) -> None:
    """The recipe fields that ``validate_config`` leaves to the first trial to trip over."""
    for key in ("channels_last", "deterministic"):
        expect_bool(getattr(config, key), key)
    for key in ("weight_decay", "momentum"):
        non_negative(getattr(config, key), key)
    workers = config.num_workers
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise SweeperError(f"num_workers: expected null or an integer >= 0, got {workers!r}")
