"""Rungs of fidelity: parsing, synchronous promotion that ignores the order workers finish in, and
candidates stopped at a rung kept apart from the full-budget ranking."""

from __future__ import annotations

import random

import pytest
from optuna.trial import TrialState
from stub import follow

from sweeper.errors import SweeperError
from sweeper.sweep.plans import WAIT, ScreenThenRace
from sweeper.sweep.ranking import rank_records
from sweeper.sweep.records import REPEAT, RUNG, SCREEN, CandidateKey, TrialRecord, Unit
from sweeper.sweep.rungs import Rungs, promote, promoted_count
from sweeper.sweep.space import apply_overrides, parse_space

ENCODERS = ["resnet18", "resnet34", "mobilenet_v2"]
KEYS = [CandidateKey.of(a, e) for e in ENCODERS for a in ("unet", "fpn", "pspnet")]  # 9 candidates


def _space(screening=None, **changes):
    raw = {"name": "r", "recipe": {"epochs": 8}, "architectures": {"pairs": ["unet/resnet18"]},
           "seeds": [0, 1, 2], "pruner": "none", "trials": 9}
    if screening is not None:
        raw["screening"] = screening
    raw.update(changes)
    return parse_space(raw, source="r.yaml")


def _value_of(means):
    """A run's mIoU: the candidate's mean, lower at a cheaper rung by an amount of its own, so that
    the order at rung 1 differs from the order at the full budget."""
    def value_of(unit):
        i = KEYS.index(unit.candidate)
        rng = random.Random(f"{unit.candidate}|{unit.seed}|{unit.rung}")
        penalty = 0.0 if unit.rung is None else 0.02 * ((i * 5) % 9) / unit.rung
        return means[unit.candidate] - penalty + rng.gauss(0, 0.002)
    return value_of


def test_screening_keys_parse_and_the_full_budget_rung_is_implicit():
    from sweeper.sweep.rungs import continues

    space = _space({"rungs": [{"epochs": 1}, {"epochs": 3}, {"epochs": 8}], "keep": 0.33})
    assert space.screening == Rungs((1, 3), 0.33) and space.screening.go_on and continues(space)
    # continue: false trains every rung from scratch; it is no part of what a study pins.
    scratch = _space({"rungs": [1, 3], "keep": 0.33, "continue": False})
    assert not scratch.screening.go_on and not continues(scratch) and scratch.screening == space.screening
    assert not continues(_space({"rungs": [1, 3]}, recipe={"epochs": 8, "scheduler": "cosine"}))
    debug = apply_overrides(_space({"rungs": [1, 3], "continue": False}), debug=True)
    assert debug.screening == Rungs((1,), 1 / 3) and not debug.screening.go_on
    assert _space({"rungs": [1, 3]}).screening == Rungs((1, 3), pytest.approx(1 / 3))
    assert _space({"rungs": [8]}).screening is None  # only the full budget: no cheaper rung


@pytest.mark.parametrize(("screening", "message"), [
    ({"rungs": [{"epochs": 3}, {"epochs": 1}]}, "screening.rungs[1]: rungs must increase; 1 epochs comes after 3"),
    ({"rungs": [2, 2]}, "rungs must increase"),
    ({"rungs": [1, 3], "keep": 1.0}, "screening.keep: 1.0 must be a fraction strictly between 0 and 1"),
    ({"rungs": [1, 3], "keep": 0}, "screening.keep: 0"),
    ({"rungs": [1, 12]}, "a rung of 12 epochs is above the recipe's 8 epochs"),
    ({"rungs": [{"epoch": 1}]}, "screening.rungs[0].epoch"),
    ({"rungs": [0]}, "screening.rungs[0]: epochs must be a positive integer"),
    ({"rungs": []}, "screening.rungs must be a list"),
    ({"rung": [1]}, "screening.rung"),
])
def test_bad_rungs_name_the_key(screening, message):
    with pytest.raises(SweeperError, match="r.yaml: ") as err:
        _space(screening)
    assert message in str(err.value)


def test_rungs_with_hparams_or_above_an_epochs_override_are_refused_and_debug_keeps_what_fits():
    with pytest.raises(SweeperError, match="screening.rungs: rungs screen an enumerated catalogue"):
        _space({"rungs": [1]}, hparams={"lr": {"type": "float", "low": 1e-4, "high": 1e-2}})
    space = _space({"rungs": [1, 3]})
    with pytest.raises(SweeperError, match="--epochs: screening.rungs: a rung of 3 epochs is above the recipe's 2"):
        apply_overrides(space, epochs=2)
    assert apply_overrides(space, epochs=3).screening == Rungs((1,), space.screening.keep)
    assert apply_overrides(space, debug=True).screening == Rungs((1,), space.screening.keep)  # 2 epochs


def test_promoted_count_and_ties_go_to_the_earlier_candidate():
    assert [promoted_count(n, 0.33) for n in (1, 2, 3, 9, 40)] == [1, 1, 1, 3, 14]
    assert promoted_count(8, 0.25) == 2
    order = ["a", "b", "c", "d"]
    assert promote(order, {"a": 0.5, "b": 0.7, "c": 0.7, "d": 0.1}, 0.25) == ["b"]
    assert promote(order, {"a": 0.5, "c": 0.9}, 0.5) == ["a", "c"]  # no score (a failed run) ranks last


def test_a_screen_by_rungs_climbs_them_and_races_at_the_full_budget_only():
    means = dict(zip(KEYS, [0.70, 0.71, 0.60, 0.72, 0.50, 0.55, 0.69, 0.40, 0.45]))
    space = _space({"rungs": [1, 3], "keep": 0.34})
    plan = ScreenThenRace(space, KEYS, rng=random.Random(0))
    value_of = _value_of(means)
    records = follow(plan, value_of)
    by_phase = {}
    for r in records:
        by_phase.setdefault((r.unit.phase, r.unit.rung), []).append(r.unit)
    assert [u.candidate for u in by_phase[(RUNG, 1)]] == KEYS  # alone, a worker follows the order exactly
    # Rung 1 -> 3: the best 4 of 9 by their rung-1 value (ceil(0.34 * 9)); rung 3 -> full: 2 of 4.
    at1 = {u.candidate: value_of(u) for u in by_phase[(RUNG, 1)]}
    top4 = sorted(at1, key=lambda k: -at1[k])[:4]
    assert {u.candidate for u in by_phase[(RUNG, 3)]} == set(top4)
    at3 = {u.candidate: value_of(u) for u in by_phase[(RUNG, 3)]}
    assert {u.candidate for u in by_phase[(SCREEN, None)]} == set(sorted(at3, key=lambda k: -at3[k])[:2])
    assert all(plan.config(u).epochs == e for (_, e), units in by_phase.items() if e for u in units)
    assert all(plan.config(u).epochs == 8 for u in by_phase[(SCREEN, None)])
    # Racing repeats only the candidates that reached the full budget.
    repeated = {u.candidate for u in by_phase.get((REPEAT, None), [])}
    assert repeated <= {u.candidate for u in by_phase[(SCREEN, None)]}
    # The ranking holds exactly the full-budget candidates; the others are listed apart, each
    # ranked at the last rung it reached.
    ranking = rank_records(records, rope=0.01)
    assert {r.candidate.key for r in ranking.rows} == {str(u.candidate) for u in by_phase[(SCREEN, None)]}
    stopped = {s.key: s for s in ranking.stopped}
    assert len(stopped) == 7 and {s.epochs for s in stopped.values()} == {1, 3}
    assert all(s.of == (9 if s.epochs == 1 else 4) for s in stopped.values())
    worst = min(at1, key=at1.get)
    assert stopped[str(worst)].rank == 9 and stopped[str(worst)].epochs == 1


def _settled(units, values, order):
    """Records of ``units`` finished in the trial order ``order`` (a permutation of indices)."""
    return [TrialRecord(number=n, state=TrialState.COMPLETE, value=values[units[i].candidate], unit=units[i])
            for n, i in enumerate(order)]


def test_promotion_waits_for_the_whole_rung_and_ignores_the_order_workers_finish_in():
    space = _space({"rungs": [1, 3], "keep": 0.34})
    plan = ScreenThenRace(space, KEYS, rng=random.Random(0))
    rung1 = [Unit(k, 0, 0, RUNG, rung=1) for k in KEYS]
    values = {k: v for k, v in zip(KEYS, [0.3, 0.9, 0.1, 0.8, 0.2, 0.7, 0.4, 0.6, 0.5])}
    # While one rung-1 run is still running, nothing of rung 3 starts, whatever has finished.
    partial = _settled(rung1, values, range(8))
    running = TrialRecord(number=8, state=TrialState.RUNNING, unit=rung1[8])
    assert plan.next_unit(partial + [running]) is WAIT
    promoted = set()
    for seed in range(5):
        order = list(range(9))
        random.Random(seed).shuffle(order)
        _, units, _ = plan.ladder(_settled(rung1, values, order))
        promoted.add(frozenset(u.candidate for u in units))
    assert promoted == {frozenset(KEYS[i] for i in (1, 3, 5, 7))}


def test_a_failed_rung_run_is_not_promoted_and_a_killed_one_is_retried():
    space = _space({"rungs": [1], "keep": 0.5})
    keys = KEYS[:2]
    plan = ScreenThenRace(space, keys, rng=random.Random(0))
    oom = TrialRecord(number=0, state=TrialState.FAIL, unit=Unit(keys[0], 0, 0, RUNG, rung=1), fail_kind="oom")
    killed = TrialRecord(number=1, state=TrialState.FAIL, unit=Unit(keys[1], 0, 0, RUNG, rung=1),
                         fail_kind="worker_lost")
    assert plan.next_unit([oom, killed]) == Unit(keys[1], 0, 0, RUNG, rung=1)
    done = TrialRecord(number=2, state=TrialState.COMPLETE, value=0.1, unit=Unit(keys[1], 0, 0, RUNG, rung=1))
    assert plan.next_unit([oom, killed, done]) == Unit(keys[1], 0, 0, SCREEN)


def test_a_study_keeps_the_screening_it_began_with(tmp_path):
    """A resumed study promotes by the rule its rungs were run by, whatever the space says now; a
    study of an earlier version without rung runs screened at the full budget, and stays so."""
    import optuna

    from sweeper.sweep.records import StudyRecord
    from sweeper.sweep.study import study_screening

    storage = f"sqlite:///{tmp_path / 's.db'}"
    third, half = _space({"rungs": [1, 3], "keep": 0.33}), _space({"rungs": [1, 3], "keep": 0.5})
    fresh = optuna.create_study(study_name="fresh", storage=storage)
    assert study_screening(fresh, third) == Rungs((1, 3), 0.33)  # a new study takes the space's...
    assert study_screening(fresh, half) == Rungs((1, 3), 0.33)  # ...and keeps it after an edit
    assert StudyRecord.from_study(fresh).screening == {"rungs": [1, 3], "keep": 0.33}

    def legacy(name, phase, rung=None):
        study = optuna.create_study(study_name=name, storage=storage)
        attrs = Unit(KEYS[0], 0, 0, phase, rung=rung).user_attrs()
        study.enqueue_trial({}, user_attrs=attrs)
        study.optimize(lambda t: 0.5, n_trials=1)
        return study

    before_rungs = legacy("before-rungs", SCREEN)
    assert study_screening(before_rungs, half) is None
    assert StudyRecord.from_study(before_rungs).screening == {"rungs": []}
    assert study_screening(before_rungs, half) is None
    with_rungs = legacy("with-rungs", RUNG, rung=1)
    assert study_screening(with_rungs, half) == Rungs((1, 3), 0.5)
    plain = optuna.create_study(study_name="plain", storage=storage)
    assert study_screening(plain, _space()) is None  # begun without rungs...
    assert study_screening(plain, half) is None  # ...a space that gains them later does not reopen it


def test_the_live_states_follow_the_ladder_and_drop_what_was_not_promoted(tmp_path):
    """Which saved rung states a screen still needs: while rung 1 runs, its own; once rung 3 is
    decided, the promoted candidates' rung-1 states until their rung-3 runs settle, plus the
    rung-3 states; after the screen, none. The folder deletes every other state."""
    from sweeper.sweep.states import StateFolder

    space = _space({"rungs": [1, 3], "keep": 0.34})
    plan = ScreenThenRace(space, KEYS, rng=random.Random(0))
    values = dict(zip(KEYS, [0.3, 0.9, 0.1, 0.8, 0.2, 0.7, 0.4, 0.6, 0.5]))
    rung1 = [Unit(k, 0, 0, RUNG, rung=1) for k in KEYS]
    assert plan.live_states([]) == {u.key for u in rung1}
    records = _settled(rung1, values, range(9))
    _, level3, _ = plan.ladder(records)
    promoted = [u.candidate for u in level3]
    assert plan.live_states(records) == {u.key for u in level3} | {Unit(k, 0, 0, RUNG, rung=1).key for k in promoted}
    assert plan.continues_from(level3[0]) == Unit(promoted[0], 0, 0, RUNG, rung=1)
    assert plan.continues_from(rung1[0]) is None and plan.saves_state(rung1[0])
    assert plan.continues_from(Unit(KEYS[0], 1, 0, REPEAT)) is None
    # One rung-3 run settled: its rung-1 state is no longer needed, its own is.
    done3 = records + [TrialRecord(number=9, state=TrialState.COMPLETE, value=0.5, unit=level3[0])]
    live = plan.live_states(done3)
    assert Unit(promoted[0], 0, 0, RUNG, rung=1).key not in live and level3[0].key in live
    artifacts = tmp_path / "artifacts"
    folder = StateFolder(artifacts, "study")
    folder.prepare()
    (artifacts / "weights.pt").write_bytes(b"w")
    for u in rung1 + level3:
        folder.path(u.key).write_bytes(b"x")
    assert folder.prune(live) == len(rung1) + len(level3) - len(live) and folder.held() == len(live)
    everything = follow(plan, lambda u: values[u.candidate] + (u.rung or 8) / 100)
    assert plan.live_states(everything) == set()
    assert folder.prune(set()) == len(live) and folder.held() == 0
    # Nothing left of the states; the run weights beside them stay.
    assert not (artifacts / "rung-states").exists() and (artifacts / "weights.pt").exists()
