"""Pruners a space may name, in one table that both the space's validation and the study read.

A pruner stops a screening run early when its per-epoch validation mIoU says it will not lead
(racing repeats are never pruned). Each entry names Optuna's class, its defaults and the options
a space may set; an option's kind says how it is checked (``fraction`` options are real numbers,
the rest whole numbers >= 0, in epochs or trials). ``max_resource: epochs`` means the recipe's
epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sweeper.errors import SweeperError
from sweeper.sweep.fields import check_keys, to_number


@dataclass(frozen=True)
class PrunerEntry:
    """Optuna's class name (``None``: no pruning), its defaults, and which options are real numbers."""

    optuna_class: str | None
    defaults: dict[str, Any] = field(default_factory=dict)
    fractional: tuple[str, ...] = ()

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(self.defaults)


PRUNERS: dict[str, PrunerEntry] = {
    "none": PrunerEntry("NopPruner"),
    "median": PrunerEntry("MedianPruner", {"n_startup_trials": 5, "n_warmup_steps": 1}),
    "successive_halving": PrunerEntry("SuccessiveHalvingPruner", {"min_resource": 1, "reduction_factor": 3}),
    "hyperband": PrunerEntry("HyperbandPruner",
                             {"min_resource": 1, "max_resource": "epochs", "reduction_factor": 3}),
    "wilcoxon": PrunerEntry("WilcoxonPruner", {"p_threshold": 0.1, "n_startup_steps": 2}, ("p_threshold",)),
    "threshold": PrunerEntry("ThresholdPruner", {"lower": None, "upper": None, "n_warmup_steps": 0},
                             ("lower", "upper")),
}


def check_pruner_options(kind: str, options: dict, where: str) -> dict:
    """The options of pruner ``kind`` as numbers, or a one-line error naming ``where.option``."""
    entry = PRUNERS[kind]
    check_keys(options, entry.options, where, "pruner.")
    checked = {}
    for name, raw in options.items():
        number = to_number(raw)
        fractional = name in entry.fractional
        if isinstance(number, bool) or not isinstance(number, (int, float)) \
                or (not fractional and number != int(number)) or number < 0:
            kind_of = "a number" if fractional else "a whole number >= 0"
            raise SweeperError(f"{where}: pruner.{name}: expected {kind_of}, got {raw!r}")
        checked[name] = float(number) if fractional else int(number)
    if kind == "threshold" and "lower" not in checked and "upper" not in checked:
        raise SweeperError(f"{where}: pruner threshold needs lower (prune runs below it) or upper (above it), "
                           "in val mIoU")
    return checked


def make_pruner(kind: str, options: dict, *, epochs: int):
    """Optuna's pruner for a space's ``pruner`` entry; ``epochs`` is the recipe's (hyperband's
    default maximum resource)."""
    import optuna

    entry = PRUNERS[kind]
    kwargs = {**entry.defaults, **options}
    if kwargs.get("max_resource") == "epochs":
        kwargs["max_resource"] = epochs
    return getattr(optuna.pruners, entry.optuna_class)(**kwargs)
