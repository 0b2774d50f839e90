"""Plans decide from records alone: tested against a stub runner, without training or a storage."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from optuna.trial import TrialState
from stub import follow

from sweeper.sweep.plans import SAMPLE, WAIT, FixedUnits, ScreenThenRace
from sweeper.sweep.records import NOISE, REPEAT, SCREEN, CandidateKey, TrialRecord, Unit
from sweeper.sweep.space import parse_space

KEYS = [CandidateKey.of(a, e) for a, e in [("unet", "resnet18"), ("fpn", "resnet18"), ("pspnet", "resnet18"),
                                           ("linknet", "resnet18"), ("unet", "resnet34"), ("fpn", "resnet34")]]


def _space(**changes):
    raw = {"name": "p", "architectures": {"pairs": ["unet/resnet18"]}, "seeds": [0, 1, 2, 3, 4], "pruner": "none",
           "trials": 6}
    raw.update(changes)
    return parse_space(raw, source="p.yaml")


def _values(means, sd=0.004):
    """A run's value: the candidate's true mean plus seeded noise of its own per seed."""
    def value_of(unit):
        rng = random.Random(f"{unit.candidate}|{unit.seed}|{unit.fold}")
        return means[unit.candidate] + rng.gauss(0, sd)
    return value_of


def _seeds(records):
    seeds = defaultdict(list)
    for r in records:
        seeds[r.unit.candidate].append(r.unit.seed)
    return seeds


def test_screening_runs_the_first_trials_candidates_once_then_races_the_close_ones():
    means = dict(zip(KEYS, [0.90, 0.899, 0.80, 0.70, 0.60, 0.95]))
    plan = ScreenThenRace(_space(trials=5), KEYS, rng=random.Random(0))
    records = follow(plan, _values(means))
    screen = [r.unit for r in records if r.unit.phase == SCREEN]
    assert sorted(map(str, (u.candidate for u in screen))) == sorted(map(str, KEYS[:5]))  # trials cuts the list
    assert all(u.seed == 0 and u.fold == 0 for u in screen) and all(r.unit.phase == REPEAT for r in records[5:])
    seeds = _seeds(records)
    for got in seeds.values():
        assert got[: len(got)] == [0, 1, 2, 3, 4][: len(got)]  # common random numbers, in order
    # The leader runs while anyone is open; its runner-up 0.001 behind gets seeds until the
    # verdict says 5 seeds would not decide it (sd 0.004, ROPE 0.01): the same rule as the table.
    assert len(seeds[KEYS[0]]) >= 2 and len(seeds[KEYS[1]]) >= 2
    from sweeper import stats
    from sweeper.sweep.ranking import rank_records

    for row in rank_records(records, rope=0.01).rows:
        if row.verdict == stats.UNDECIDED:
            assert row.n == 5 or row.seeds_to_decide > stats.verdicts.HOPELESS_FACTOR * 5
    # Far below the best (25 sd and more): screened once, never repeated.
    assert seeds[KEYS[3]] == [0] and seeds[KEYS[4]] == [0]
    assert KEYS[5] not in seeds


def test_uniform_repeats_go_to_the_top_three_by_screening_and_no_one_else():
    means = dict(zip(KEYS, [0.90, 0.80, 0.85, 0.70, 0.60, 0.95]))
    records = follow(ScreenThenRace(_space(racing=False, seeds=[0, 1, 2]), KEYS, rng=random.Random(1)),
                     _values(means, sd=0.001))
    seeds = _seeds(records)
    assert {k for k, s in seeds.items() if len(s) == 3} == {KEYS[5], KEYS[0], KEYS[2]}
    assert all(seeds[k] == [0] for k in (KEYS[1], KEYS[3], KEYS[4]))


def test_racing_waits_for_running_screening_units_and_drains_queued_ones():
    space = _space(trials=2)
    plan = ScreenThenRace(space, KEYS[:2], rng=random.Random(0))
    a, b = (Unit(k, 0, 0, SCREEN) for k in KEYS[:2])
    done = TrialRecord(0, TrialState.COMPLETE, 0.5, a)
    assert plan.next_unit([done]) == b
    running = TrialRecord(1, TrialState.RUNNING, None, b)
    assert plan.next_unit([done, running]) is WAIT
    assert plan.next_unit([done, TrialRecord(1, TrialState.WAITING, None, b)]) is WAIT
    finished = [done, TrialRecord(1, TrialState.COMPLETE, 0.5, b)]
    assert plan.next_unit(finished).phase == REPEAT
    # A repeat in flight elsewhere: nothing else is open, but its result may reopen racing.
    repeats = follow(plan, lambda u: 0.5, finished)
    assert plan.next_unit(repeats) is None
    assert plan.next_unit(repeats + [TrialRecord(99, TrialState.RUNNING, None, Unit(KEYS[0], 4, 0, REPEAT))]) is WAIT


def test_a_run_that_failed_by_itself_is_not_retried_and_a_killed_one_is():
    plan = ScreenThenRace(_space(trials=2, seeds=[0]), KEYS[:2], rng=random.Random(0))
    a, b = (Unit(k, 0, 0, SCREEN) for k in KEYS[:2])
    oom = TrialRecord(0, TrialState.FAIL, None, a, fail_kind="oom")
    assert plan.next_unit([oom]) == b
    assert plan.next_unit([oom, TrialRecord(1, TrialState.COMPLETE, 0.4, b)]) is None
    killed = TrialRecord(0, TrialState.FAIL, None, a)  # no fail_kind: its worker died
    assert plan.next_unit([killed, TrialRecord(1, TrialState.COMPLETE, 0.4, b)]) == a


def test_every_fold_of_a_started_seed_runs_before_a_new_seed():
    space = _space(split={"scheme": "kfold", "n_splits": 3}, folds=[0, 1, 2], trials=6, seeds=[0, 1])
    records = follow(ScreenThenRace(space, KEYS[:2], rng=random.Random(0)), lambda u: 0.5)
    units = {(str(r.unit.candidate), r.unit.seed, r.unit.fold) for r in records}
    assert len(units) == len(records)  # no unit twice
    for key in map(str, KEYS[:2]):
        for seed in {s for c, s, _ in units if c == key}:
            assert {f for c, s, f in units if c == key and s == seed} == {0, 1, 2}


def test_a_sampled_space_asks_the_sampler_until_trials_are_sampled():
    space = _space(hparams={"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}, trials=2, seeds=[0])
    plan = ScreenThenRace(space, KEYS[:1], rng=random.Random(0))
    assert plan.next_unit([]) is SAMPLE

    class FixedTrial:  # what the sampler would answer
        def suggest_float(self, name, low, high, log=False, step=None):
            return 0.001

    unit = plan.sample(FixedTrial(), None)
    assert unit == Unit(CandidateKey.of("unet", "resnet18", {"lr": 0.001}), 0, 0, SCREEN)
    assert plan.params(unit) == {"lr": 0.001}
    one = [TrialRecord(0, TrialState.COMPLETE, 0.5, unit)]
    assert plan.next_unit(one) is SAMPLE
    assert plan.next_unit(one + [TrialRecord(1, TrialState.COMPLETE, 0.5, unit)]) is None


def test_the_config_of_a_unit_is_the_recipe_with_its_knobs_and_only_screening_is_prunable():
    space = _space(pruner={"type": "median"}, recipe={"epochs": 3, "lr": 0.01})
    plan = ScreenThenRace(space, KEYS[:1])
    unit = Unit(CandidateKey.of("fpn", "resnet34", {"lr": 0.002}), 2, 0, REPEAT)
    config = plan.config(unit)
    assert (config.arch, config.encoder, config.lr, config.epochs, config.fold) == ("fpn", "resnet34", 0.002, 3, 0)
    assert not plan.prunable(unit) and plan.prunable(Unit(unit.candidate, 0, 0, SCREEN))
    assert not ScreenThenRace(_space(), KEYS[:1]).prunable(Unit(unit.candidate, 0, 0, SCREEN))


def test_fixed_units_run_in_order_each_once():
    units = [Unit(KEYS[0], s, 0, NOISE) for s in range(3)]
    records = follow(FixedUnits(_space(), units), lambda u: 0.5)
    assert [r.unit for r in records] == units


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_which_units_run_does_not_depend_on_the_claim_order(seed):
    means = dict(zip(KEYS, [0.90, 0.899, 0.80, 0.70, 0.60, 0.95]))
    runs = [{r.unit.key for r in follow(ScreenThenRace(_space(), KEYS, rng=random.Random(s)), _values(means))}
            for s in (seed, seed + 10)]
    assert runs[0] == runs[1]
