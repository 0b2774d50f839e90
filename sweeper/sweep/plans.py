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

from sweeper.sweep.ledger import Ledger
from sweeper.sweep.records import REPEAT, RUNG, SCREEN, CandidateKey, TrialRecord, Unit, held_units


def epochs_of(rungs) -> tuple[int, ...]:
    """The cheaper rungs' epochs of a space's ``screening`` (none without rungs)."""
    return () if rungs is None else rungs.epochs


def previous_rung(unit: Unit, rungs: tuple[int, ...]) -> Unit | None:
    """The shorter run ``unit`` may go on from (:mod:`sweeper.sweep.states`): the same candidate,
    seed and fold at the rung before, the last rung for the full budget's screening run; None at
    the first rung, for repeats, and without rungs."""
    if not rungs or unit.phase not in (RUNG, SCREEN):
        return None
    if unit.rung is None:
        return replace(unit, phase=RUNG, rung=rungs[-1])
    if unit.rung not in rungs:
        return None
    i = rungs.index(unit.rung)
    return replace(unit, rung=rungs[i - 1]) if i > 0 else None


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
        config = replace(self.space.base, arch=c.arch, encoder=c.encoder, fold=unit.fold, **dict(c.hparams))
        return config if unit.rung is None else replace(config, epochs=unit.rung)

    def prunable(self, unit: Unit) -> bool:
        """Whether the pruner may stop this unit early (never, by default)."""
        return False

    def params(self, unit: Unit) -> dict:
        """Optuna params to enqueue a unit with, so that the sampler sees them (none by default)."""
        return {}

    def continues_from(self, unit: Unit) -> Unit | None:
        """The shorter unit whose saved state this unit may go on from (none by default)."""
        return None

    def saves_state(self, unit: Unit) -> bool:
        """Whether this unit's run saves its state at its end, for a longer one (never by default)."""
        return False

    def live_states(self, records: Sequence[TrialRecord]) -> set[str]:
        """The unit keys whose saved states may still be gone on from; the runner deletes the
        others (none by default)."""
        return set()

    def trial_params(self, unit: Unit) -> dict[str, tuple[Any, Any]]:
        """Optuna params to record on a unit's trial as they are, ``{name: (value, distribution)}``,
        for Optuna's own views (none by default)."""
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
        self._rungs = epochs_of(getattr(space, "screening", None))
        self._keys = {u.key for u in self.units}

    def continues_from(self, unit):
        source = previous_rung(unit, self._rungs)
        return source if source is not None and source.key in self._keys else None

    def saves_state(self, unit):
        return unit.phase == RUNG and any(self.continues_from(u) == unit for u in self.units)

    def live_states(self, records):
        """The state of each run whose longer run has not settled yet."""
        settled = {r.unit.key for r in records if r.holds_unit and not r.is_running}
        return {source.key for u in self.units if u.key not in settled
                for source in (self.continues_from(u),) if source is not None}

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
       TPE (``trials`` samples). Screening units may be pruned. With ``screening.rungs`` an
       enumerated screen climbs the rungs first (:mod:`sweeper.sweep.rungs`): only the candidates
       promoted from the last cheaper rung are screened at the full budget.
    2. *Repeats*, once no screening unit is running: further seeds, in the same order for every
       candidate (common random numbers), for candidates that
       :func:`sweeper.stats.next_candidates` still finds unresolved (racing), highest mean
       first, one unit at a time so that each result informs the next choice. With
       ``racing: false``, the three best by their screening run get every seed. Repeats are
       never pruned.
    """

    def __init__(self, space, candidates: Sequence[CandidateKey], *, rng: random.Random | None = None,
                 choices: dict[str, tuple] | None = None):
        self.space = space
        self.candidates = list(candidates)
        # The arch and encoder params' choices: the study's own when it has some (a categorical's
        # choices are fixed for a study's life), else every value of the space's candidates, so
        # that a later ``--trials`` that screens more of them still fits.
        self.choices = {"arch": tuple(sorted({c.arch for c in self.candidates})),
                        "encoder": tuple(sorted({c.encoder for c in self.candidates}))}
        self.choices.update(choices or {})
        # Workers that start together pick from the first few pending units at random: fewer
        # claim collisions. Seeded by the caller; the set screened does not depend on it.
        self.rng = rng or random.Random()
        self._ledger: Ledger | None = None
        self._rung_memo: dict[int, tuple[tuple, list[Unit]]] = {}

    def read(self, records) -> Ledger:
        """The records as this plan reads them (:class:`~sweeper.sweep.ledger.Ledger`: each finished
        trial folded in once, so that a decision costs the same at 100 trials as at 3,000)."""
        if self._ledger is None:
            self._ledger = Ledger(self.space.folds)
        return self._ledger.update(records)

    # -- the plan
    def next_unit(self, records):
        records = records if isinstance(records, list) else list(records)
        led = self.read(records)
        step = self._screen(records, led)
        if step is not None:
            return step
        if len(self.space.seeds) < 2:
            return None
        if led.running_phase(SCREEN, RUNG):
            return WAIT  # racing needs every screening result
        unit = self._next_repeat(led)
        if unit is not None:
            return unit
        return WAIT if led.running else None

    def prunable(self, unit):
        return unit.phase == SCREEN and self.space.pruner.type != "none"

    def continues_from(self, unit):
        if self.space.hparams:
            return None
        return previous_rung(unit, epochs_of(self.space.screening))

    def saves_state(self, unit):
        return unit.phase == RUNG and not self.space.hparams

    def live_states(self, records):
        """While the screen climbs its rungs: the states of the level being trained (a rung's run
        may be promoted) and those its unsettled runs go on from. The states of candidates a rung
        did not promote are dropped once the next level begins, and all of them after the screen."""
        if self.space.hparams or self.space.screening is None:
            return set()
        led = self.read(records)
        _, units, _ = self._ladder(led)
        live = {u.key for u in units if u.phase == RUNG}
        for u in units:
            source = self.continues_from(u)
            if source is not None and not led.finished(u.key):
                live.add(source.key)
        return live

    def progress(self, records):
        """Screening has a known size; racing's depends on the verdicts, so only its count shows."""
        led = self.read(records)
        screened = led.done_count(SCREEN)
        if not self.space.hparams:
            level, units, _ = self._ladder(led)
            settled = sum(led.done(u.key) for u in units)
            if settled < len(units):
                rungs = self.space.screening
                if rungs is None:
                    return "screening", settled, len(units)
                epochs = (*rungs.epochs, self.space.base.epochs)[level]
                return f"screening rung {level + 1} of {len(epochs_of(rungs)) + 1} ({epochs} epochs)", settled, \
                    len(units)
        elif screened < self.space.trials * len(self.space.folds):
            return "screening", screened, self.space.trials * len(self.space.folds)
        return "racing repeats", led.done_count(REPEAT), None

    def params(self, unit):
        if not self.space.hparams:
            return {}
        params = dict(unit.candidate.hparams)
        if len(self.candidates) > 1:
            params["candidate"] = unit.candidate.pair
        return params

    def trial_params(self, unit):
        """Enumerated spaces record arch and encoder as categoricals (spaces with hyper-parameter
        ranges have the sampler's own ``candidate`` param). A value outside the study's choices
        (a space widened since the study began) is left out rather than refused."""
        if self.space.hparams:
            return {}
        from optuna.distributions import CategoricalDistribution

        c = unit.candidate
        values = {"arch": c.arch, "encoder": c.encoder}
        return {name: (value, CategoricalDistribution(self.choices[name])) for name, value in values.items()
                if value in self.choices[name]}

    def sample(self, trial, unit):
        if not self.space.hparams:
            return unit
        key = self._suggest(trial)
        if unit is not None:
            return replace(unit, candidate=key)
        return Unit(key, self.space.screening_seed, self.space.folds[0], SCREEN)

    # -- screening
    def screened(self) -> list[CandidateKey]:
        """The enumerated screen's candidates: the first ``trials`` (trials counts every fold's run)."""
        return self.candidates[:max(1, self.space.trials // len(self.space.folds))]

    def rung_units(self, candidates: Sequence[CandidateKey], level: int) -> list[Unit]:
        """The units of one rung of the screen (the last level is the full budget)."""
        candidates = tuple(candidates)
        kept = self._rung_memo.get(level)
        if kept is not None and kept[0] == candidates:
            return list(kept[1])
        rungs = epochs_of(self.space.screening)
        seed = self.space.screening_seed
        if level < len(rungs):
            units = [Unit(c, seed, f, RUNG, rung=rungs[level]) for c in candidates for f in self.space.folds]
        else:
            units = [Unit(c, seed, f, SCREEN) for c in candidates for f in self.space.folds]
        self._rung_memo[level] = (candidates, units)
        return list(units)

    def screening_units(self) -> list[Unit]:
        """The enumerated screen at the full budget when it has no rungs; with rungs, the first
        rung's units (who goes on depends on their results)."""
        return self.rung_units(self.screened(), 0)

    def ladder(self, records) -> tuple[int, list[Unit], bool]:
        """Where the enumerated screen stands: ``(level, its units, whether every one of them has
        settled)``, at the first level not yet settled (the last level when all are).

        Promotion from a rung is decided only when all its units have settled (none running nor
        queued), from their values alone: workers finishing in another order change nothing.
        """
        return self._ladder(self.read(records))

    def _ladder(self, led: Ledger) -> tuple[int, list[Unit], bool]:
        from sweeper.sweep.rungs import promote

        rungs = self.space.screening
        alive = self.screened()
        levels = len(epochs_of(rungs))
        for level in range(levels + 1):
            units = self.rung_units(alive, level)
            settled = all(led.finished(u.key) for u in units)
            if not settled or level == levels:
                return level, units, settled
            runs = led.runs(units[0].rung)
            scores = {key: sum(v for _, v in c.runs) / len(c.runs) for key, c in runs.items()}
            alive = promote(alive, scores, rungs.keep)
        raise AssertionError("unreachable")

    def _screen(self, records, led: Ledger):
        if self.space.hparams:
            return self._screen_sampled(records, led)
        level, units, settled = self._ladder(led)
        pending = [u for u in units if not led.holds(u.key)]
        if pending:
            # One worker alone follows the documented order exactly; workers running together
            # pick among the first few pending units, so that they rarely claim the same one.
            return self.rng.choice(pending[:4]) if led.running else pending[0]
        if not settled or led.waiting:
            return WAIT  # a rung's running units decide who goes on; queued units run first
        return None

    def _screen_sampled(self, records, led: Ledger):
        """TPE screening: ``trials`` sampled candidates, each then on its other folds."""
        first = self.space.folds[0]
        sampled = [r for r in records if r.holds_unit and r.unit.phase == SCREEN and r.unit.fold == first]
        for r in sampled:
            for fold in self.space.folds[1:]:
                unit = replace(r.unit, fold=fold)
                if not led.holds(unit.key):
                    return unit
        if led.waiting:
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
    def _next_repeat(self, led: Ledger) -> Unit | None:
        """The next (candidate, seed, fold) that racing asks for, or None when all are resolved."""
        import numpy as np

        from sweeper import stats

        runs = led.runs()
        if not runs:
            return None
        values, seeds = led.matrix()
        keys = list(runs)
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
        partial = led.partial_seeds()
        for key in keys if partial else ():
            for seed in sorted(s for k, s in partial if k == key):
                held = led.full_seeds(key)[seed]
                for fold in self.space.folds:
                    if fold not in held:
                        return Unit(key, seed, fold, REPEAT)
        for i in order:
            key = keys[i]
            used = led.full_seeds(key)
            fresh = [s for s in self.space.seeds if s not in used]
            if fresh and len(used) < max_seeds:
                return Unit(key, fresh[0], self.space.folds[0], REPEAT)
        return None


class AblationArms(BasePlan):
    """``sweeper ablate``: every arm (the baseline first) on the first seeds, seed by seed, then
    extra seeds for the arms whose verdict is still undecided, up to the space's seeds.

    Every arm runs the seeds in the same order, and the baseline runs every seed any arm runs
    (common random numbers): each arm's effect is a mean of paired differences against the
    baseline, and :func:`sweeper.stats.ablation.next_arms` says who needs another seed.
    """

    def __init__(self, space, arms: Sequence[Any], *, first_seeds: int = 3, rng: random.Random | None = None):
        self.space = space  # its base is the baseline's resolved config
        self.arms = list(arms)  # sweeper.sweep.ablation.Arm, baseline first
        self._values = {arm.key: arm.values for arm in self.arms}
        self.first = max(1, min(first_seeds, len(space.seeds)))
        self.rng = rng or random.Random()

    def config(self, unit):
        return replace(self.space.base, fold=unit.fold, **self._values[unit.candidate])

    def progress(self, records):
        done = {r.unit.key for r in records if r.holds_unit and not r.is_running}
        first = self._first_units()
        settled = sum(u.key in done for u in first)
        if settled < len(first):
            return "arms", settled, len(first)
        return "extra seeds", sum(1 for r in records if r.holds_unit and not r.is_running) - len(first), None

    def _first_units(self) -> list[Unit]:
        seeds = self.space.seeds[: self.first]
        return [Unit(arm.key, seed, fold, SCREEN if seed == seeds[0] else REPEAT)
                for seed in seeds for arm in self.arms for fold in self.space.folds]

    def matrix(self, records):
        """``(values, seeds)``: a (seeds x arms) array in arm order, NaN where an arm lacks a seed."""
        from sweeper.sweep.records import columns_matrix, completed_runs

        return columns_matrix(completed_runs(records), [arm.key for arm in self.arms])

    def next_unit(self, records):
        records = list(records)
        held = held_units(records)
        pending = [u for u in self._first_units() if u.key not in held]
        if pending:
            busy = any(r.is_running for r in records)
            return self.rng.choice(pending[:4]) if busy else pending[0]
        if any(r.is_running for r in records):
            return WAIT  # who gets another seed depends on the runs still going
        used: dict[CandidateKey, set[int]] = {}
        for r in records:
            if r.holds_unit:
                used.setdefault(r.unit.candidate, set()).add(r.unit.seed)
        for arm in self.arms:  # a seed started is finished on every fold
            for seed in sorted(used.get(arm.key, ())):
                for fold in self.space.folds:
                    unit = Unit(arm.key, seed, fold, REPEAT)
                    if unit.key not in held:
                        return unit
        from sweeper.stats.ablation import next_arms

        values, _ = self.matrix(records)
        baseline = self.arms[0].key
        for j in next_arms(values, len(self.space.seeds), rope=self.space.rope):
            key = self.arms[j].key
            fresh = [s for s in self.space.seeds if s not in used.get(key, set())]
            if not fresh:
                continue
            seed = fresh[0]
            if seed not in used.get(baseline, set()):
                return Unit(baseline, seed, self.space.folds[0], REPEAT)
            return Unit(key, seed, self.space.folds[0], REPEAT)
        return None
