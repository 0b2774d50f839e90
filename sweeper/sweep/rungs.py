"""Rungs of fidelity: every candidate a cheap look, only the promising ones the full budget.

A space declares ``screening: {rungs: [{epochs: 1}, {epochs: 3}, {epochs: 8}], keep: 0.33}``.
Every screened candidate first trains with the first rung's epochs; once every run of a rung has
settled, the best ``keep`` of them (at least one; ties broken by the screening order) train with
the next rung's epochs, and the last rung is the recipe's full budget, whose runs are the
ordinary screening runs that racing and the table use.

Two choices make the result the same whatever the workers do:

- **Synchronous promotion.** A rung is judged only when all its runs are in, so which
  candidates go on never depends on the order in which workers finish (Optuna's asynchronous
  ``SuccessiveHalvingPruner`` promotes against whatever has finished so far).
- **A rung's result is the run a fresh start would give.** Under a constant learning rate
  (zoo-50m's recipe) a run of 3 epochs is the first 3 epochs of a run of 8, bit for bit (all
  40 rung runs of the calibration in ``benchmarks/catalogue.py``), so a promoted candidate goes
  on from its previous rung's saved state (:mod:`sweeper.sweep.states`) and trains only the
  epochs it adds: with rungs 1, 3, 8 and keep 1/2 (zoo-50m) a candidate costs 1 + 2/2 + 5/4 =
  3.25 epochs on average instead of 8 (4.5 if every rung trained from scratch). Under any
  other schedule the learning rate of an epoch depends on the total, so each rung trains from
  scratch with its own epochs; that is also the fallback whenever a state is missing.

A candidate stopped at a rung is ranked only among the runs of that rung, apart from the table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sweeper.errors import SweeperError

#: The keys of ``screening:``.
SCREENING_KEYS = ("rungs", "keep", "continue")
#: A rung's keys: its budget in epochs.
RUNG_KEYS = ("epochs",)


@dataclass(frozen=True)
class Rungs:
    """The cheaper rungs before the full budget: their epochs, increasing and each below the
    recipe's, and the fraction of a rung's candidates that go on to the next."""

    epochs: tuple[int, ...]
    keep: float
    #: ``continue: false`` makes every rung train from scratch even where it could go on from the
    #: one before (to spare the disk its saved states). It changes no result, so a study does not
    #: pin it: the space's value applies at every resume.
    go_on: bool = field(default=True, compare=False)

    def sizes(self, n: int) -> list[int]:
        """How many candidates train at each rung, the full budget last, out of ``n`` screened."""
        out = [n]
        for _ in self.epochs:
            out.append(promoted_count(out[-1], self.keep))
        return out

    def cost_epochs(self, n: int, full_epochs: int, *, continued: bool = False) -> int:
        """Training epochs the whole screen costs for ``n`` candidates (one seed, one fold);
        ``continued``: each rung goes on from the one before, so it adds only its extra epochs."""
        budgets = (*self.epochs, full_epochs)
        added = [e - (budgets[i - 1] if continued and i else 0) for i, e in enumerate(budgets)]
        return sum(size * e for size, e in zip(self.sizes(n), added))


def state_bytes(params: int, optimizer: str, momentum: float = 0.0) -> int:
    """Bytes of one rung's saved state for a model of ``params`` float32 parameters: the weights
    and the optimizer's per-parameter buffers (Adam/AdamW: two moments; SGD: one with momentum),
    and sometimes a copy of the best epoch's weights, counted here (an upper bound)."""
    buffers = 2 if optimizer in ("adam", "adamw") else int(momentum > 0)
    return 4 * params * (2 + buffers)


def continues(space) -> bool:
    """Whether a space's screen lets each rung go on from the one before: it has rungs, an
    enumerated catalogue, and a constant learning rate (any schedule depends on the epochs, so a
    shorter run is not the start of a longer one). Where the states are kept: :mod:`sweeper.sweep.states`."""
    return (space.screening is not None and space.screening.go_on and not space.hparams
            and space.base.scheduler == "none")


def promoted_count(n: int, keep: float) -> int:
    """How many of a rung's ``n`` candidates go on: ``ceil(keep * n)``, at least one.

    ``1e-9`` absorbs float error, so that keep 0.25 of 8 is 2, not 3."""
    return min(n, max(1, math.ceil(keep * n - 1e-9)))


def promote(order: Sequence[Any], scores: dict[Any, float], keep: float) -> list[Any]:
    """The candidates of a rung that go on, in the screening order: the best ``keep`` by score
    (a candidate with no score, a failed run, ranks last); ties go to the earlier candidate."""
    position = {c: i for i, c in enumerate(order)}
    ranked = sorted(order, key=lambda c: (-_finite(scores.get(c)), position[c]))
    chosen = set(ranked[:promoted_count(len(order), keep)])
    return [c for c in order if c in chosen]


def describe(rungs: Rungs | None) -> str:
    """A screen by rungs in words, for messages: ``rungs 1, 3 epochs, keep 0.5``."""
    if rungs is None:
        return "no rungs"
    return f"rungs {', '.join(map(str, rungs.epochs))} epochs, keep {rungs.keep:g}"


def _finite(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else -math.inf


def parse_screening(value: Any, source: str, full_epochs: int) -> Rungs | None:
    """``screening:`` of a space file. Rungs are ``{epochs: N}`` mappings or plain integers; a
    last rung equal to the recipe's epochs is the full budget itself and may be given or not."""
    from sweeper.sweep.fields import check_keys

    where = f"{source}: screening"
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SweeperError(f"{where} must be a mapping with rungs and keep")
    check_keys(value, SCREENING_KEYS, source, "screening.")
    raw = value.get("rungs")
    if not isinstance(raw, (list, tuple)) or not raw:
        raise SweeperError(f"{where}.rungs must be a list of rungs, e.g. [{{epochs: 1}}, {{epochs: 3}}]")
    epochs = []
    for i, rung in enumerate(raw):
        if isinstance(rung, dict):
            check_keys(rung, RUNG_KEYS, source, f"screening.rungs[{i}].")
            rung = rung.get("epochs")
        if isinstance(rung, bool) or not isinstance(rung, int) or rung < 1:
            raise SweeperError(f"{where}.rungs[{i}]: epochs must be a positive integer, got {rung!r}")
        if epochs and rung <= epochs[-1]:
            raise SweeperError(f"{where}.rungs[{i}]: rungs must increase; {rung} epochs comes after {epochs[-1]}")
        epochs.append(rung)
    keep = value.get("keep", 1 / 3)
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep < 1:
        raise SweeperError(f"{where}.keep: {keep!r} must be a fraction strictly between 0 and 1")
    go_on = value.get("continue", True)
    if not isinstance(go_on, bool):
        raise SweeperError(f"{where}.continue: {go_on!r} must be true or false")
    return check_rungs(Rungs(tuple(epochs), float(keep), go_on), full_epochs, where)


def check_rungs(rungs: Rungs | None, full_epochs: int, where: str) -> Rungs | None:
    """The rungs against the recipe's epochs (again after ``--epochs``): none may be above it, and
    a last rung equal to it is the full budget. None when no cheaper rung is left."""
    if rungs is None:
        return None
    above = [e for e in rungs.epochs if e > full_epochs]
    if above:
        raise SweeperError(f"{where}.rungs: a rung of {above[0]} epochs is above the recipe's {full_epochs} "
                           "epochs (the last rung is the full budget)")
    cheaper = tuple(e for e in rungs.epochs if e < full_epochs)
    return Rungs(cheaper, rungs.keep, rungs.go_on) if cheaper else None
