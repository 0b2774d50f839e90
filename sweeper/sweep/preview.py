"""What a tune would do, before it does it: the candidates in screening order, the phases, the
number of runs in the best and the worst case, and what each phase would cost.

Pure logic over the space, its candidates, a study's records (what is already done, when a
storage holds the study) and a cost model (:mod:`sweeper.sweep.estimate`): nothing here trains,
reads a storage or imports torch. The phases follow :class:`~sweeper.sweep.plans.ScreenThenRace`:

- **rungs** (with ``screening.rungs``): every screened candidate at the first rung's epochs, then
  the best ``keep`` of each rung at the next (:meth:`~sweeper.sweep.rungs.Rungs.sizes`);
- **screening**: the candidates that reach the full budget, with the first seed on every fold;
- **racing repeats**: the further seeds. Racing decides after screening, so the best case is no
  repeat at all and the worst case every further seed, on every fold, for every candidate that
  reached the full budget. With ``racing: false`` the three best get every seed (both cases).

Which candidates a rung promotes depends on its results: where the storage does not know yet, a
phase's cost is its size times the screened candidates' mean cost; where it knows (the rungs
before have settled), the cost is that of the very candidates. A unit counts as done once it has
settled (finished, pruned, or failed for good), as the plan counts it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sweeper.sweep.plans import ScreenThenRace, epochs_of
from sweeper.sweep.records import REPEAT, RUNG, SCREEN, CandidateKey, TrialRecord, Unit
from sweeper.sweep.rungs import continues

#: Candidates that get every seed when a space turns racing off (see ``ScreenThenRace``).
UNRACED_TOP = 3


@dataclass(frozen=True)
class PlannedCandidate:
    """One candidate of the space at its place in the screening order (``order`` from 1).
    ``run_s``: one run at the full budget, its wall time in seconds (the mean over the folds)."""

    order: int
    arch: str
    encoder: str
    params: int
    gflops: float | None
    screened: bool
    run_s: float | None = None


@dataclass(frozen=True)
class PhasePlan:
    """One phase: its runs and seconds in the best and the worst case, what is done, what is left.

    Seconds are the sweep's clock: each unit's run plus sweeper's own work around it; None when
    no estimate was made. ``candidates`` is how many candidates train in the phase (the worst
    case for racing); ``known`` says whether they are known by name yet (the storage has the
    results that decide them) or only by number.
    """

    phase: str
    label: str
    epochs: int
    candidates: int
    runs_best: int
    runs_worst: int
    seconds_best: float | None = None
    seconds_worst: float | None = None
    done: int = 0
    remaining_best_s: float | None = None
    remaining_worst_s: float | None = None
    known: bool = True


@dataclass(frozen=True)
class Preview:
    """Everything ``sweeper plan`` shows; :mod:`sweeper.report.plan` only draws it."""

    space: str
    source: str
    study: str
    storage: str | None
    study_exists: bool
    epochs: int
    batch_size: int
    image_size: int
    seeds: tuple[int, ...]
    folds: tuple[int, ...]
    rungs: Any  # sweeper.sweep.rungs.Rungs or None
    racing: bool
    pruner: str
    sampled: bool
    #: How many candidates the screen starts with (enumerated: the first of ``candidates``;
    #: sampled: the trials TPE draws from them).
    screened: int
    images: dict[int, tuple[int, int]]
    candidates: tuple[PlannedCandidate, ...]
    phases: tuple[PhasePlan, ...]
    method: str = "none"
    device: str = ""
    estimate_note: str = ""
    done_by_phase: dict[str, int] = field(default_factory=dict)
    running: int = 0
    #: The study is there and its plan has nothing left to run.
    complete: bool = False
    notes: tuple[str, ...] = ()
    #: Each rung goes on from the one before (:func:`sweeper.sweep.rungs.continues`).
    rungs_continue: bool = False

    @property
    def runs_best(self) -> int:
        return sum(p.runs_best for p in self.phases)

    @property
    def runs_worst(self) -> int:
        return sum(p.runs_worst for p in self.phases)

    @property
    def done(self) -> int:
        return sum(p.done for p in self.phases)

    def _total(self, name: str) -> float | None:
        values = [getattr(p, name) for p in self.phases]
        return None if any(v is None for v in values) else float(sum(values))

    @property
    def seconds_best(self) -> float | None:
        return self._total("seconds_best")

    @property
    def seconds_worst(self) -> float | None:
        return self._total("seconds_worst")

    @property
    def remaining_best_s(self) -> float | None:
        return self._total("remaining_best_s")

    @property
    def remaining_worst_s(self) -> float | None:
        return self._total("remaining_worst_s")


def settled_keys(records: Sequence[TrialRecord]) -> set[str]:
    """Unit keys that are done: finished, pruned or failed for good (not running, not queued)."""
    return {r.unit.key for r in records if r.holds_unit and not r.is_running and not r.is_waiting}


def done_by_phase(records: Sequence[TrialRecord]) -> dict[str, int]:
    """Settled units per phase label: ``rung:1`` (a rung by its epochs), ``screen``, ``repeat``."""
    counted: set[str] = set()
    out: Counter = Counter()
    for r in records:
        if not (r.holds_unit and not r.is_running and not r.is_waiting) or r.unit.key in counted:
            continue
        counted.add(r.unit.key)
        out[f"{RUNG}:{r.unit.rung}" if r.unit.rung is not None else r.unit.phase] += 1
    return dict(out)


def preview_tune(space, candidates: Sequence, *, study: str, storage: str | None = None,
                 records: Sequence[TrialRecord] | None = None, cost=None,
                 images: dict[int, tuple[int, int]] | None = None) -> Preview:
    """The plan of ``tune`` on ``space``: ``candidates`` in screening order (the zoo's
    :class:`~sweeper.zoo.Candidate` of :func:`~sweeper.sweep.candidates.resolve_candidates`),
    ``records`` of the study when a storage holds it (None: no study yet), ``cost`` a
    :class:`~sweeper.sweep.estimate.CostModel` or None (no seconds)."""
    records = list(records or [])
    keys = [CandidateKey.of(c.arch, c.encoder) for c in candidates]
    by_pair = {k.pair: c for k, c in zip(keys, candidates)}
    plan = ScreenThenRace(space, keys, rng=random.Random(0))
    sampled = bool(space.hparams)
    screened = set(plan.screened()) if not sampled else set()
    full = space.base.epochs

    def unit_s(key: CandidateKey, epochs: int, fold: int) -> float:
        return cost.unit_s(by_pair[key.pair], epochs, fold)

    def per_candidate(key: CandidateKey, epochs: int) -> float:
        """One candidate's units at ``epochs``, every fold."""
        return sum(unit_s(key, epochs, f) for f in space.folds)

    planned = tuple(
        PlannedCandidate(order=i + 1, arch=c.arch, encoder=c.encoder, params=c.params, gflops=c.gflops,
                         screened=k in screened,
                         run_s=None if cost is None else sum(cost.run_s(c, full, f) for f in space.folds)
                         / len(space.folds))
        for i, (k, c) in enumerate(zip(keys, candidates)))
    finished = settled_keys(records)
    builder = _Phases(space, cost, finished, per_candidate, unit_s)
    if sampled:
        phases, full_set = builder.sampled(keys, records)
    else:
        phases, full_set = builder.ladder(plan, records)
    phases += builder.racing(full_set, records, pool=list(screened) or keys)
    # The plan itself says whether anything is left (racing may have decided already).
    complete = bool(records) and plan.next_unit(records) is None
    if complete:
        phases = [replace(p, remaining_best_s=None if p.remaining_best_s is None else 0.0,
                          remaining_worst_s=None if p.remaining_worst_s is None else 0.0) for p in phases]
    notes = _notes(space, cost) + (("the study is complete: tune would train nothing new",) if complete else ())
    if continues(space) and screened:
        from sweeper.sweep.rungs import state_bytes

        base = space.base
        peak = sum(state_bytes(by_pair[k.pair].params, base.optimizer, getattr(base, "momentum", 0.0))
                   for k in screened) * len(space.folds)
        notes += (f"the first rung's saved states take up to {_size(peak)} of disk at once (fewer at each later "
                  "rung, none after the screen); `continue: false` under `screening:` trains every rung from scratch "
                  "instead",)
    return Preview(
        space=space.name, source=space.source, study=study, storage=storage, study_exists=bool(records),
        epochs=full, batch_size=space.base.batch_size, image_size=space.base.image_size, seeds=tuple(space.seeds),
        folds=tuple(space.folds), rungs=space.screening, racing=space.racing, pruner=space.pruner.type,
        sampled=sampled, screened=space.trials if sampled else len(screened),
        images=dict(images or (cost.images if cost is not None else {})), candidates=planned,
        phases=tuple(phases), method=cost.method if cost is not None else "none",
        device=cost.device if cost is not None else "", estimate_note=cost.describe() if cost is not None else "",
        done_by_phase=done_by_phase(records), running=sum(r.is_running and r.holds_unit for r in records),
        complete=complete, notes=notes, rungs_continue=continues(space),
    )


class _Phases:
    """The phases' arithmetic, sharing the space, the cost and what is done."""

    def __init__(self, space, cost, finished: set[str], per_candidate, unit_s):
        self.space, self.cost, self.finished = space, cost, finished
        self.per_candidate, self.unit_s = per_candidate, unit_s
        self.folds = tuple(space.folds)

    def _mean(self, pool: Sequence[CandidateKey], epochs: int) -> float | None:
        """The mean cost of one candidate's units at ``epochs`` over ``pool`` (every fold)."""
        if self.cost is None or not pool:
            return None
        return sum(self.per_candidate(k, epochs) for k in pool) / len(pool)

    def _exact(self, units: Sequence[Unit], epochs: int) -> tuple[float | None, float | None]:
        """``(seconds, remaining seconds)`` of these very units."""
        if self.cost is None:
            return None, None
        seconds = [self.unit_s(u.candidate, epochs, u.fold) for u in units]
        left = [s for s, u in zip(seconds, units) if u.key not in self.finished]
        return float(sum(seconds)), float(sum(left))

    def _done(self, units: Sequence[Unit]) -> int:
        return sum(u.key in self.finished for u in units)

    def ladder(self, plan: ScreenThenRace, records) -> tuple[list[PhasePlan], list[CandidateKey] | int]:
        """Rungs and screening of an enumerated space, walking the ladder as far as the records
        decide it; the full budget's candidates (their keys, or only their number)."""
        from sweeper.sweep.records import completed_runs
        from sweeper.sweep.rungs import promote

        space = self.space
        rungs = space.screening
        cheaper = epochs_of(rungs)
        budgets = (*cheaper, space.base.epochs)
        went_on = continues(space)
        screened = plan.screened()
        sizes = rungs.sizes(len(screened)) if rungs is not None else [len(screened)]
        alive: list[CandidateKey] | None = list(screened)
        phases = []
        for level, epochs in enumerate(budgets):
            is_rung = level < len(cheaper)
            trained = epochs - budgets[level - 1] if went_on and level else epochs  # what a unit adds
            label = (f"rung {level + 1} of {len(cheaper) + 1}" if is_rung else "screening") + f" ({_epochs(epochs)})"
            runs = sizes[level] * len(self.folds)
            if alive is not None:
                units = plan.rung_units(alive, level)
                seconds, left = self._exact(units, trained)
                phases.append(PhasePlan(RUNG if is_rung else SCREEN, label, epochs, len(alive), runs, runs, seconds,
                                        seconds, self._done(units), left, left))
                if is_rung:
                    if all(u.key in self.finished for u in units):  # promotion is decided: ScreenThenRace.ladder
                        found = completed_runs(records, rung=epochs)
                        scores = {k: sum(v for _, v in c.runs) / len(c.runs) for k, c in found.items()}
                        alive = promote(alive, scores, rungs.keep)
                    else:
                        alive = None
            else:
                mean = self._mean(screened, trained)
                seconds = None if mean is None else mean * sizes[level]
                phases.append(PhasePlan(RUNG if is_rung else SCREEN, label, epochs, sizes[level], runs, runs, seconds,
                                        seconds, 0, seconds, seconds, known=False))
        return phases, (alive if alive is not None else sizes[-1])

    def sampled(self, keys: Sequence[CandidateKey], records) -> tuple[list[PhasePlan], int]:
        """Screening of a space with hyper-parameter ranges: ``trials`` samples (TPE), each on
        every fold; its cost is the mean over the candidates it samples from."""
        space = self.space
        runs = space.trials * len(self.folds)
        done = len({r.unit.key for r in records if r.unit is not None and r.unit.phase == SCREEN
                    and r.unit.key in self.finished})
        mean = self._mean(keys, space.base.epochs)
        per_run = None if mean is None else mean / len(self.folds)
        seconds = None if per_run is None else per_run * runs
        left = None if per_run is None else per_run * max(0, runs - done)
        label = f"screening ({_epochs(space.base.epochs)}, sampled by TPE)"
        return [PhasePlan(SCREEN, label, space.base.epochs, space.trials, runs, runs, seconds, seconds, done, left,
                          left, known=False)], space.trials

    def racing(self, full_set: list[CandidateKey] | int, records, *, pool: Sequence[CandidateKey]) -> list[PhasePlan]:
        """Racing repeats: none in the best case; in the worst, every further seed on every fold of
        every candidate at the full budget (``racing: false``: the three best, in both cases)."""
        space = self.space
        seeds = tuple(space.seeds)
        if len(seeds) < 2:
            return []
        epochs = space.base.epochs
        known = not isinstance(full_set, int)
        n_full = len(full_set) if known else full_set
        further = len(seeds) - 1
        repeats = [u for u in self._repeat_units(full_set)] if known else []
        done = sum(1 for r in records if r.unit is not None and r.unit.phase == REPEAT
                   and r.unit.key in self.finished)
        label = f"racing repeats ({_epochs(epochs)}, seeds {_seeds(seeds[1:])})"
        if not space.racing:
            top = min(UNRACED_TOP, n_full)
            runs = top * further * len(self.folds)
            mean = self._mean(list(full_set) if known else pool, epochs)
            seconds = None if mean is None else mean * top * further
            left = None if mean is None else seconds * max(0, runs - done) / max(runs, 1)
            return [PhasePlan(REPEAT, label + ", the three best", epochs, top, runs, runs, seconds, seconds, done, left,
                              left, known=False)]
        runs_worst = n_full * further * len(self.folds)
        # Best case: no repeat beyond those done and the other folds of seeds already started.
        owed = [u for u in self._started(records, full_set) if u.key not in self.finished] if known else []
        runs_best = done + len(owed)
        if known:
            worst, left_worst = self._exact(repeats, epochs)
            _, left_best = self._exact(owed, epochs)
            per_unit = None if worst is None else worst / max(len(repeats), 1)
        else:
            mean = self._mean(pool, epochs)
            per_unit = None if mean is None else mean / len(self.folds)
            worst = None if mean is None else mean * n_full * further
            left_worst = None if per_unit is None else per_unit * max(0, runs_worst - done)
            left_best = None if mean is None else 0.0
        best = None if per_unit is None else per_unit * done + left_best
        return [PhasePlan(REPEAT, label, epochs, n_full, runs_best, runs_worst, best, worst, done, left_best,
                          left_worst, known=known)]

    def _repeat_units(self, keys: Sequence[CandidateKey]) -> list[Unit]:
        return [Unit(k, s, f, REPEAT) for k in keys for s in self.space.seeds[1:] for f in self.folds]

    def _started(self, records, keys: Sequence[CandidateKey]) -> list[Unit]:
        """Repeat units that racing must still run whatever it decides: the other folds of every
        seed already started (a seed is scored as the mean over its folds)."""
        used: dict[CandidateKey, set[int]] = {}
        for r in records:
            if r.holds_unit and r.unit.rung is None and r.unit.seed != self.space.screening_seed:
                used.setdefault(r.unit.candidate, set()).add(r.unit.seed)
        return [Unit(k, s, f, REPEAT) for k in keys for s in sorted(used.get(k, ())) for f in self.folds]


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def _seeds(seeds: Sequence[int]) -> str:
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(str(s) for s in seeds)


def _notes(space, cost) -> tuple[str, ...]:
    notes = []
    if space.pruner.type != "none":
        notes.append(f"the {space.pruner.type} pruner may stop screening runs early: their times are an upper bound")
    if space.screening is not None:
        notes.append("which candidates a rung promotes depends on its results: a rung not yet decided is costed "
                     "at the screened candidates' mean")
        if continues(space):
            notes.append("each rung goes on from the one before (constant learning rate): a promoted candidate "
                         "trains only the epochs it adds; on a database server this needs --artifacts")
        elif not space.hparams:
            notes.append(f"each rung trains from scratch: the {space.base.scheduler} learning-rate schedule "
                         "depends on the epochs")
    if space.hparams:
        names = ", ".join(p.name for p in space.hparams)
        notes.append(f"TPE samples {names}: costs are at the recipe's values and the candidates' mean")
    if cost is not None and cost.load is not None and cost.load[0] > cost.load[1] and cost.device == "cpu":
        notes.append(f"the machine was busy while timing (load {cost.load[0]:.1f} on {cost.load[1]} cores): the "
                     "times are those of a machine this busy")
    if cost is not None:
        notes.append(f"each unit adds ~{cost.unit_overhead_s:.1f} s of sweeper's own work (claim, records) to its "
                     "run; loading the data and ranking are not counted")
    return tuple(notes)
