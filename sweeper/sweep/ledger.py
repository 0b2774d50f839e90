"""What a study's records tell a plan, with each finished trial folded in once.

A plan decides from the records alone (:mod:`sweeper.sweep.plans`) and is asked before every
unit. Read plainly, that is several walks over every record per decision: which units are held,
each rung's finished runs, the seeds each candidate has used. At thousands of trials those walks
were most of sweeper's own cost per unit, and they grew with the study.

A finished trial never changes (see :class:`~sweeper.sweep.runner.RecordCache`, which hands out
the same record object for it at every read). So a :class:`Ledger` folds each finished record in
once, and only the unfinished ones (running or queued: a handful, one per worker) are looked at
again at every call. The per-candidate figures are rebuilt only for the candidates a new record
touched. The answers are exactly those of the plain functions of :mod:`sweeper.sweep.records`
(:func:`~sweeper.sweep.records.held_units`, :func:`~sweeper.sweep.records.completed_runs`,
:func:`~sweeper.sweep.records.runs_matrix`) on the same list; the tests compare the two on
random studies.

It is a cache, not a memory: the plan stays a function of the records. Given a list whose
finished records are not the objects it folded (another study, or records read afresh), it
starts again from that list, which costs what the plain functions cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sweeper.sweep.records import CandidateKey, CandidateRuns, TrialRecord


class _RungRuns:
    """The finished runs of one budget (a cheaper rung's epochs, or None for the full budget)."""

    def __init__(self):
        # unit key -> (trial number, candidate, seed, value, params): the first trial by number
        # that finished the unit with a value (a later copy of the same unit never counts)
        self.units: dict[str, tuple[int, CandidateKey, int, float, int | None]] = {}
        self.by_candidate: dict[CandidateKey, set[str]] = {}
        self.first: dict[CandidateKey, int] = {}  # a candidate's first counted run, by number
        self.built: dict[CandidateKey, CandidateRuns] = {}
        self.columns: dict[CandidateKey, tuple[list[int], list[float]]] = {}
        self.dirty: set[CandidateKey] = set()
        self.reorder = False
        self.seeds: set[int] = set()
        self._runs: dict[CandidateKey, CandidateRuns] | None = None
        self._matrix = None

    def add(self, r: TrialRecord) -> None:
        unit = r.unit
        old = self.units.get(unit.key)
        if old is not None and old[0] <= r.number:
            return
        key = unit.candidate
        self.units[unit.key] = (r.number, key, unit.seed, float(r.value), r.params_count)
        self.by_candidate.setdefault(key, set()).add(unit.key)
        if key not in self.first or r.number < self.first[key]:
            self.first[key] = r.number
            self.reorder = True
        self.seeds.add(unit.seed)
        self.dirty.add(key)
        self._runs = self._matrix = None

    def runs(self) -> dict[CandidateKey, CandidateRuns]:
        if self._runs is None:
            for key in self.dirty:
                self.built[key], self.columns[key] = self._build(key)
            self.dirty.clear()
            if self.reorder:
                self.built = {k: self.built[k] for k in sorted(self.built, key=self.first.__getitem__)}
                self.reorder = False
            self._runs = self.built
        return self._runs

    def _build(self, key: CandidateKey):
        """One candidate's runs as :func:`~sweeper.sweep.records.completed_runs` builds them:
        seeds in the order of their first trial, a seed's folds averaged in trial order, and the
        parameter count of the first trial that recorded one."""
        cells: dict[int, list[float]] = {}
        params = None
        for number, _, seed, value, count in sorted(self.units[u] for u in self.by_candidate[key]):
            cells.setdefault(seed, []).append(value)
            if params is None:
                params = count
        runs = tuple((s, sum(v) / len(v)) for s, v in cells.items())
        return CandidateRuns(key, params, runs), ([s for s, _ in runs], [v for _, v in runs])

    def matrix(self):
        """``(values, seeds)`` as :func:`~sweeper.sweep.records.runs_matrix` gives them."""
        if self._matrix is None:
            import numpy as np

            from sweeper.stats.arrays import as_values

            runs = self.runs()
            seeds = sorted(self.seeds)
            row = {s: i for i, s in enumerate(seeds)}
            values = np.full((len(seeds), len(runs)), np.nan)
            for j, key in enumerate(runs):
                column_seeds, column_values = self.columns[key]
                values[[row[s] for s in column_seeds], j] = column_values
            self._matrix = (as_values(values), seeds)
        values, seeds = self._matrix
        return values.copy(), list(seeds)


class Ledger:
    """A study's records as a plan reads them; :meth:`update` with the records as they are now.

    Held units (what no worker should start again) are split into the finished ones, folded in
    once, and the unfinished ones (running or queued), re-read at every update.
    """

    def __init__(self, folds: Sequence[int] = (0,)):
        self.folds = frozenset(folds)  # the space's folds: a seed counts as whole once held on all
        self._reset()

    def _reset(self) -> None:
        self._folded: dict[int, TrialRecord] = {}
        self._held: set[str] = set()  # units held by finished trials
        self._held_phases: dict[str, int] = {}  # finished held units by phase
        self._rungs: dict[int | None, _RungRuns] = {}
        # full-budget units held by finished trials: candidate -> seed -> folds
        self._seeds: dict[CandidateKey, dict[int, set[int]]] = {}
        self._partial: set[tuple[CandidateKey, int]] = set()  # of those, seeds not yet on every fold
        self._set_transient([])

    def update(self, records: Sequence[TrialRecord]) -> Ledger:
        """Fold in what changed since the last update (everything, if these are other records)."""
        folded = self._folded
        seen = 0
        fresh: list[TrialRecord] = []
        transient: list[TrialRecord] = []
        for r in records:
            old = folded.get(r.number)
            if old is r:
                seen += 1
            elif old is not None:
                return self._rebuild(records)
            elif r.state.is_finished():
                fresh.append(r)
            else:
                transient.append(r)
        if seen != len(folded):
            return self._rebuild(records)
        for r in fresh:
            self._fold(r)
        self._set_transient(transient)
        return self

    def _rebuild(self, records: Sequence[TrialRecord]) -> Ledger:
        self._reset()
        transient = []
        for r in records:
            if r.state.is_finished():
                self._fold(r)
            else:
                transient.append(r)
        self._set_transient(transient)
        return self

    def _fold(self, r: TrialRecord) -> None:
        self._folded[r.number] = r
        if r.holds_unit:
            unit = r.unit
            self._held.add(unit.key)
            self._held_phases[unit.phase] = self._held_phases.get(unit.phase, 0) + 1
            if unit.rung is None:
                got = self._seeds.setdefault(unit.candidate, {}).setdefault(unit.seed, set())
                got.add(unit.fold)
                if self.folds <= got:
                    self._partial.discard((unit.candidate, unit.seed))
                else:
                    self._partial.add((unit.candidate, unit.seed))
        if r.is_run:
            rung = self._rungs.get(r.unit.rung)
            if rung is None:
                rung = self._rungs[r.unit.rung] = _RungRuns()
            rung.add(r)

    def _set_transient(self, records: list[TrialRecord]) -> None:
        held = [r for r in records if r.holds_unit]
        self.running = [r for r in records if r.is_running]
        self.waiting = [r for r in records if r.is_waiting]
        self._transient_held = {r.unit.key for r in held}
        self._waiting_held = {r.unit.key for r in held if r.is_waiting}
        self._waiting_phases: dict[str, int] = {}
        for r in held:
            if r.is_waiting:
                self._waiting_phases[r.unit.phase] = self._waiting_phases.get(r.unit.phase, 0) + 1
        self._transient_seeds: dict[CandidateKey, dict[int, set[int]]] = {}
        for r in held:
            if r.unit.rung is None:
                self._transient_seeds.setdefault(r.unit.candidate, {}).setdefault(r.unit.seed, set()).add(r.unit.fold)

    # -- held units
    def holds(self, key: str) -> bool:
        """Whether a unit is held: no worker should start it again (finished, failed for good,
        running or queued), as :func:`~sweeper.sweep.records.held_units` says."""
        return key in self._held or key in self._transient_held

    def finished(self, key: str) -> bool:
        """Whether a unit is held by a finished trial (none running or queued for it)."""
        return key in self._held

    def done(self, key: str) -> bool:
        """Held and not running: finished, or queued (what a progress count shows as settled)."""
        return key in self._held or key in self._waiting_held

    def done_count(self, phase: str) -> int:
        """How many held units of a phase are not running (finished or queued)."""
        return self._held_phases.get(phase, 0) + self._waiting_phases.get(phase, 0)

    def running_phase(self, *phases: str) -> bool:
        """Whether a unit of one of these phases is running."""
        return any(r.unit is not None and r.unit.phase in phases for r in self.running)

    def full_seeds(self, key: CandidateKey) -> dict[int, set[int]]:
        """The full-budget seeds held for a candidate, each with the folds held (running and
        queued units included)."""
        out = {seed: set(folds) for seed, folds in self._seeds.get(key, {}).items()}
        for seed, folds in self._transient_seeds.get(key, {}).items():
            out.setdefault(seed, set()).update(folds)
        return out

    def partial_seeds(self) -> set[tuple[CandidateKey, int]]:
        """``(candidate, seed)`` of the full-budget seeds held on only some of the folds (running
        and queued units included): each must be finished on the others before a new seed starts."""
        out = set()
        for key, seed in self._partial:
            if not self.folds <= self._seeds[key][seed] | self._transient_seeds.get(key, {}).get(seed, set()):
                out.add((key, seed))
        for key, seeds in self._transient_seeds.items():
            for seed, got in seeds.items():
                if not self.folds <= got | self._seeds.get(key, {}).get(seed, set()):
                    out.add((key, seed))
        return out

    # -- finished runs
    def runs(self, rung: int | None = None) -> dict[CandidateKey, CandidateRuns]:
        """:func:`~sweeper.sweep.records.completed_runs` of these records (read it, don't change it)."""
        found = self._rungs.get(rung)
        return dict(found.runs()) if found is not None else {}

    def matrix(self, rung: int | None = None) -> tuple[Any, list[int]]:
        """:func:`~sweeper.sweep.records.runs_matrix` of :meth:`runs`."""
        import numpy as np

        found = self._rungs.get(rung)
        if found is None:
            return np.full((0, 0), np.nan), []
        return found.matrix()
