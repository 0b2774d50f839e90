"""Plans: what to run next, decided from the study's records alone.

A plan is asked again before every unit, by every worker, with the records as they are in the
storage then. Its answer depends on nothing else (no memory of what this worker did), which is
what lets several workers on machines of their own follow one plan, and a killed sweep resume
where it was. The :class:`~sweeper.sweep.runner.Runner` claims, trains and records the unit a
plan names, and knows nothing of screening or racing; Optuna's ``BasePruner`` and
``BaseSampler`` are the model: one method to implement, a few optional hooks.

The answer is one of:

- a :class:`~sweeper.sweep.records.Unit`: run it;
- :data:`SAMPLE`: run a fresh trial whose candidate the sampler (TPE) chooses, see :meth:`BasePlan.sample`;
- :data:`WAIT`: other workers are running units whose results decide what comes next, or
  queued trials should run first (the runner runs those, else waits);
- ``None``: nothing is left to run.
"""

from __future__ import annotations

import abc
import math
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sweeper.sweep.records import REPEAT, SCREEN, CandidateKey, TrialRecord, Unit, held_units


class Step(str):
    """An answer of a plan that is not a unit."""


WAIT = Step("wait")
SAMPLE = Step("sample")


class BasePlan(abc.ABC):
    """What to run next. Subclasses implement :meth:`next_unit`; the hooks have defaults."""

    #: The search space the plan runs (its recipe, seeds, folds and pruner).
    space: Any

    @abc.abstractmethod
    def next_unit(self, records: Sequence[TrialRecord]) -> Unit | Step | None:
        """The next unit to run, :data:`SAMPLE`, :data:`WAIT`, or None when nothing is left."""

    def config(self, unit: Unit):
        """The full TrainConfig of a unit: the space's recipe with the unit's knobs."""
        c = unit.candidate
        return replace(self.space.base, arch=c.arch, encoder=c.encoder, fold=unit.fold, **dict(c.hparams))

    def prunable(self, unit: Unit) -> bool:
        """Whether the pruner may stop this unit early (never, by default)."""
        return False

    def params(self, unit: Unit) -> dict:
        """Optuna params to enqueue a unit with, so that the sampler sees them (none by default)."""
        return {}

    def progress(self, records: Sequence[TrialRecord]) -> tuple[str, int, int | None]:
        """``(phase, units settled, units in the phase or None when not known ahead)``, for a live
        view; by default the units settled so far, of an unknown total."""
        return "units", sum(r.holds_unit and not r.is_running for r in records), None

    def sample(self, trial, unit: Unit | None) -> Unit | None:
        """The unit of a trial the runner popped: ``unit`` if it was enqueued with one; plans that
        answer :data:`SAMPLE` ask the trial's sampler here. None: the trial has nothing to run (a
        unit another worker took first)."""
        return unit


class FixedUnits(BasePlan):
    """Exactly these units, in order, each once (``sweeper noise``: one baseline, N seeds)."""

    def __init__(self, space, units: Sequence[Unit]):
        self.space = space
        self.units = list(units)

    def progress(self, records):
        held = {r.unit.key for r in records if r.holds_unit and not r.is_running}
        return "runs", sum(u.key in held for u in self.units), len(self.units)

    def next_unit(self, records):
        held = held_units(list(records))
        return next((u for u in self.units if u.key not in held), None)


class ScreenThenRace(BasePlan):
    """Screening, then racing repeats: the plan of ``sweeper tune``.

    1. *Screening*: each candidate once, with the first seed (common to all candidates), on each
       of the space's folds. Pure architecture spaces are enumerated in the given order (the
       first ``trials`` candidates); spaces with hyper-parameter ranges are sampled by a seeded
       TPE (``trials`` samples). Screening units may be pruned.
    2. *Repeats*, once no screening unit is running: further seeds, in the same order for every
       candidate (common random numbers), for candidates that
       :func:`sweeper.stats.next_candidates` still finds unresolved (racing), highest mean
       first, one unit at a time so that each result informs the next choice. With
       ``racing: false``, the three best by their screening run get every seed. Repeats are
       never pruned.
    """

    def __init__(self, space, candidates: Sequence[CandidateKey], *, rng: random.Random | None = None):
        self.space = space
        self.candidates = list(candidates)
        # Workers that start together pick from the first few pending units at random: fewer
        # claim collisions. Seeded by the caller; the set screened does not depend on it.
        self.rng = rng or random.Random()

    # -- the plan
    def next_unit(self, records):
        records = list(records)
        held = held_units(records)
        step = self._screen(records, held)
        if step is not None:
            return step
        if len(self.space.seeds) < 2:
            return None
        if any(r.is_running and r.unit is not None and r.unit.phase == SCREEN for r in records):
            return WAIT  # racing needs every screening result
        unit = self._next_repeat(records, held)
        if unit is not None:
            return unit
        return WAIT if any(r.is_running for r in records) else None

    def prunable(self, unit):
        return unit.phase == SCREEN and self.space.pruner.type != "none"

    def progress(self, records):
        """Screening has a known size; racing's depends on the verdicts, so only its count shows."""
        done = [r for r in records if r.holds_unit and not r.is_running]
        screened = sum(r.unit.phase == SCREEN for r in done)
        if not self.space.hparams:
            total = len(self.screening_units())
            if screened < total:
                return "screening", screened, total
        elif screened < self.space.trials * len(self.space.folds):
            return "screening", screened, self.space.trials * len(self.space.folds)
        return "racing repeats", sum(r.unit.phase == REPEAT for r in done), None

    def params(self, unit):
        if not self.space.hparams:
            return {}
        params = dict(unit.candidate.hparams)
        if len(self.candidates) > 1:
            params["candidate"] = unit.candidate.pair
        return params

    def sample(self, trial, unit):
        if not self.space.hparams:
            return unit
        key = self._suggest(trial)
        if unit is not None:
            return replace(unit, candidate=key)
        return Unit(key, self.space.screening_seed, self.space.folds[0], SCREEN)

    # -- screening
    def screening_units(self) -> list[Unit]:
        """The enumerated screen: the first ``trials`` candidates (trials counts every fold's run)."""
        n = max(1, self.space.trials // len(self.space.folds))
        seed = self.space.screening_seed
        return [Unit(c, seed, f, SCREEN) for c in self.candidates[:n] for f in self.space.folds]

    def _screen(self, records, held):
        if self.space.hparams:
            return self._screen_sampled(records, held)
        pending = [u for u in self.screening_units() if u.key not in held]
        if pending:
            return self.rng.choice(pending[:4])
        return WAIT if any(r.is_waiting for r in records) else None  # queued units first

    def _screen_sampled(self, records, held):
        """TPE screening: ``trials`` sampled candidates, each then on its other folds."""
        first = self.space.folds[0]
        sampled = [r for r in records if r.holds_unit and r.unit.phase == SCREEN and r.unit.fold == first]
        for r in sampled:
            for fold in self.space.folds[1:]:
                unit = replace(r.unit, fold=fold)
                if unit.key not in held:
                    return unit
        if any(r.is_waiting for r in records):
            return WAIT  # queued trials run before anything new is sampled
        return SAMPLE if len(sampled) < self.space.trials else None

    def _suggest(self, trial) -> CandidateKey:
        """A trial's architecture and hyper-parameters: sampled (TPE) or fixed by its enqueue."""
        pairs = {c.pair: c for c in self.candidates}
        names = sorted(pairs)
        pair = trial.suggest_categorical("candidate", names) if len(names) > 1 else names[0]
        hparams = {}
        for p in self.space.hparams:
            if p.type == "float":
                hparams[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log, step=p.step)
            elif p.type == "int":
                hparams[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log,
                                                    step=int(p.step or 1))
            else:
                hparams[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        return CandidateKey.of(pairs[pair].arch, pairs[pair].encoder, hparams)

    # -- racing
    def _next_repeat(self, records, held) -> Unit | None:
        """The next (candidate, seed, fold) that racing asks for, or None when all are resolved."""
        import numpy as np

        from sweeper import stats
        from sweeper.sweep.records import completed_runs, runs_matrix

        runs = completed_runs(records)
        if not runs:
            return None
        values, seeds = runs_matrix(runs)
        keys = list(runs)
        seeds_used: dict[CandidateKey, set[int]] = {}
        for r in records:
            if r.holds_unit:
                seeds_used.setdefault(r.unit.candidate, set()).add(r.unit.seed)
        max_seeds = len(self.space.seeds)
        if self.space.racing:
            order = stats.next_candidates(values, max_seeds, rope=self.space.rope)
        else:  # uniform repeats for the three best by their screening run (a set fixed after screening)
            rows = {seed: r for r, seed in enumerate(seeds)}
            first = values[rows[self.space.screening_seed]] if self.space.screening_seed in rows else values[0]
            ranked = np.argsort(-np.nan_to_num(first, nan=-np.inf), kind="stable")[:3]
            order = [int(i) for i in ranked if math.isfinite(first[i])]
        # A seed's value is the mean over its folds: finish every seed started, whatever racing
        # now says of its candidate, so that no seed is scored on fewer folds than the others.
        for key in keys:
            for seed in sorted(seeds_used.get(key, set())):
                for fold in self.space.folds:
                    unit = Unit(key, seed, fold, REPEAT)
                    if unit.key not in held:
                        return unit
        for i in order:
            key = keys[i]
            used = seeds_used.get(key, set())
            fresh = [s for s in self.space.seeds if s not in used]
            if fresh and len(used) < max_seeds:
                return Unit(key, fresh[0], self.space.folds[0], REPEAT)
        return None
