"""The ledger a plan reads answers what the plain functions of records.py answer, update by update."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
from optuna.trial import TrialState

from sweeper.sweep.ledger import Ledger
from sweeper.sweep.records import (
    REPEAT,
    RUNG,
    SCREEN,
    CandidateKey,
    TrialRecord,
    Unit,
    completed_runs,
    held_units,
    runs_matrix,
)

KEYS = [CandidateKey.of(a, e) for a in ("unet", "fpn", "pspnet") for e in ("resnet18", "mobilenet_v2")]


def random_unit(rng: random.Random, folds) -> Unit:
    rung = rng.choice([None, None, None, 1, 3])
    phase = RUNG if rung is not None else rng.choice([SCREEN, REPEAT])
    return Unit(rng.choice(KEYS), rng.randrange(4), rng.choice(folds), phase, rung=rung)


def random_record(rng: random.Random, number: int, folds, state=None) -> TrialRecord:
    state = state or rng.choice([TrialState.COMPLETE] * 6 + [TrialState.RUNNING, TrialState.WAITING,
                                                             TrialState.PRUNED, TrialState.FAIL])
    value = round(rng.uniform(0.2, 0.8), 3) if state == TrialState.COMPLETE else None
    return TrialRecord(number=number, state=state, value=value, unit=random_unit(rng, folds),
                       params_count=rng.choice([None, 1_000_000, 2_000_000]),
                       fail_kind=rng.choice(["oom", "killed", "nan"]) if state == TrialState.FAIL else None,
                       duplicate_of=0 if rng.random() < 0.05 else None)


def finish(rng: random.Random, r: TrialRecord) -> TrialRecord:
    """What another read shows for a trial that was running: a new record, finished."""
    state = rng.choice([TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL])
    return replace(r, state=state, value=round(rng.uniform(0.2, 0.8), 3) if state == TrialState.COMPLETE else None,
                   fail_kind=None if state == TrialState.COMPLETE else "oom")


def assert_same(led: Ledger, records, folds) -> None:
    held = held_units(records)
    keys = {r.unit.key for r in records if r.unit is not None} | {"nobody|seed=0|fold=0"}
    for key in keys:
        assert led.holds(key) == (key in held)
        assert led.finished(key) == any(r.holds_unit and r.state.is_finished() and r.unit.key == key
                                        for r in records)
        assert led.done(key) == any(r.holds_unit and not r.is_running and r.unit.key == key for r in records)
    for phase in (SCREEN, REPEAT, RUNG):
        assert led.done_count(phase) == sum(r.holds_unit and not r.is_running and r.unit.phase == phase
                                            for r in records)
    assert [r.number for r in led.running] == [r.number for r in records if r.is_running]
    assert [r.number for r in led.waiting] == [r.number for r in records if r.is_waiting]
    assert led.running_phase(SCREEN, RUNG) == any(r.is_running and r.unit.phase in (SCREEN, RUNG) for r in records)
    for rung in (None, 1, 3):
        plain = completed_runs(records, rung=rung)
        mine = led.runs(rung)
        assert list(mine) == list(plain)  # the same candidates in the same order
        assert mine == plain
        if plain:
            values, seeds = runs_matrix(plain)
            got, got_seeds = led.matrix(rung)
            assert got_seeds == seeds
            np.testing.assert_array_equal(got, values)
    used: dict = {}
    for r in records:
        if r.holds_unit and r.unit.rung is None:
            used.setdefault(r.unit.candidate, {}).setdefault(r.unit.seed, set()).add(r.unit.fold)
    for key in KEYS:
        assert led.full_seeds(key) == used.get(key, {})
    partial = {(k, s) for k, seeds in used.items() for s, got in seeds.items() if not set(folds) <= got}
    assert led.partial_seeds() == partial


@pytest.mark.parametrize("folds", [(0,), (0, 1, 2)])
@pytest.mark.parametrize("seed", range(6))
def test_ledger_matches_the_plain_reading_after_every_read(seed, folds):
    """A study read again and again, as the runner's cache hands it over: new trials appended,
    running ones finishing out of order (a lower trial number finishing last), the same unit run
    twice. The ledger, updated at each read, answers exactly what the plain functions do."""
    rng = random.Random(seed)
    records: list[TrialRecord] = []
    led = Ledger(folds)
    for _ in range(40):
        for _ in range(rng.randrange(4)):
            records.append(random_record(rng, len(records), folds))
        for i, r in enumerate(records):
            if not r.state.is_finished() and rng.random() < 0.3:
                records[i] = finish(rng, r)
        assert led.update(records) is led
        assert_same(led, records, folds)


def test_ledger_starts_again_for_records_it_did_not_fold():
    """Other record objects for the same trial numbers (another study, a fresh read) are not
    mistaken for the ones folded: the ledger rebuilds from the list it is given."""
    rng = random.Random(7)
    first = [random_record(rng, n, (0,), state=TrialState.COMPLETE) for n in range(30)]
    other = [random_record(rng, n, (0,), state=TrialState.COMPLETE) for n in range(20)]
    led = Ledger()
    led.update(first)
    assert_same(led, first, (0,))
    led.update(other)  # fewer trials, other contents
    assert_same(led, other, (0,))
    led.update(first[:10])  # the same objects, but some folded ones are gone
    assert_same(led, first[:10], (0,))


def test_a_later_copy_of_a_unit_never_replaces_its_first_run():
    """Two COMPLETE trials of one unit: the first by trial number is its run, even when it is
    the one that finished last (it was running at an earlier read)."""
    unit = Unit(KEYS[0], 0, 0, SCREEN)
    early = TrialRecord(number=0, state=TrialState.RUNNING, unit=unit)
    late = TrialRecord(number=1, state=TrialState.COMPLETE, value=0.5, unit=unit)
    led = Ledger()
    led.update([early, late])
    assert led.runs()[KEYS[0]].runs == ((0, 0.5),)
    done = replace(early, state=TrialState.COMPLETE, value=0.7)
    led.update([done, late])
    assert led.runs()[KEYS[0]].runs == ((0, 0.7),) == completed_runs([done, late])[KEYS[0]].runs
