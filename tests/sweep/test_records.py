"""The trial record: one view of a trial, written and read through one schema, and older studies."""

from __future__ import annotations

import math

import pytest
from optuna.trial import TrialState

from sweeper.sweep.records import (
    ATTRS,
    REPEAT,
    SCREEN,
    CandidateKey,
    StudyRecord,
    TrialRecord,
    Unit,
    completed_runs,
    held_units,
    write,
    write_study,
)


def test_candidate_key_names_pairs_and_hyperparameters():
    key = CandidateKey.of("fpn", "resnet34", {"lr": 0.00123456, "loss": "dice"})
    assert str(key) == "fpn/resnet34 loss=dice lr=0.001235"
    assert key.pair == "fpn/resnet34" and key.encoder_label == "resnet34 loss=dice lr=0.001235"
    assert key == CandidateKey.of("fpn", "resnet34", (("lr", 0.00123456), ("loss", "dice")))
    assert str(CandidateKey.of("unet", "resnet18")) == "unet/resnet18"


def _full_record(number: int) -> TrialRecord:
    unit = Unit(CandidateKey.of("unet", "resnet18", {"lr": 0.001}), 3, 1, REPEAT, rung=2)
    return TrialRecord(
        number=number, state=TrialState.COMPLETE, value=0.5, unit=unit, config={"arch": "unet", "lr": 0.001},
        worker={"host": "h", "pid": 7}, params_count=1234, history=[{"epoch": 0, "miou": 0.5}], best_epoch=0,
        per_class_iou={"background": 0.9, "cat": 0.1}, wall_time_s=1.5, images_per_s=10.0, peak_memory_mb=100.0,
        device="cpu", versions={"torch": "x"}, pruned_at_epoch=None, fail_kind="oom", fail_reason="why",
        interrupted=True, duplicate_of=2, empty=True, weights_artifact="a-b-c", weights_error="disk full",
        run_key="abc|seed=3|fold=1", reused_from={"study": "s", "trial": 4}, continued_from=1, resumed_epochs=1,
    )


def test_every_field_round_trips_through_a_real_sqlite_storage(tmp_path):
    import optuna

    record = _full_record(0)
    assert set(ATTRS) <= set(record.user_attrs()) | {"pruned_at_epoch"}  # every stored field is written
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'r.db'}", study_name="r")
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.5, user_attrs=record.user_attrs()))
    again = TrialRecord.from_trial(optuna.load_study(study_name="r",
                                                     storage=f"sqlite:///{tmp_path / 'r.db'}").trials[0])
    assert again == record
    trial = optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.5, user_attrs=again.user_attrs())
    trial.number = 0
    assert TrialRecord.from_trial(trial) == record


def test_write_refuses_names_outside_the_schema_and_cleans_nan(tmp_path):
    import optuna

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'w.db'}", study_name="w")
    trial = study.ask()
    with pytest.raises(KeyError, match="not a field"):
        write(trial, candiate="typo")
    write(trial, history=[{"epoch": 0, "miou": math.nan}])
    assert study.trials[0].user_attrs["history"] == [{"epoch": 0, "miou": None}]
    with pytest.raises(KeyError, match="not a field"):
        write_study(study, split="x")
    write_study(study, split_key="k", recipe={"lr": math.inf})
    assert StudyRecord.from_study(study) == StudyRecord(split_key="k", recipe={"lr": None})


def _record(number, state, unit, value=None, **fields):
    return TrialRecord(number=number, state=state, value=value, unit=unit, **fields)


def test_which_trials_hold_their_unit_and_which_runs_count():
    a = CandidateKey.of("unet", "resnet18")
    b = CandidateKey.of("fpn", "resnet18")
    u = [Unit(a, 0, 0, SCREEN), Unit(b, 0, 0, SCREEN), Unit(a, 1, 0, REPEAT), Unit(a, 1, 1, REPEAT),
         Unit(b, 1, 0, REPEAT), Unit(b, 2, 0, REPEAT)]
    records = [
        _record(0, TrialState.COMPLETE, u[0], 0.5),
        _record(1, TrialState.COMPLETE, u[1], 0.4),
        _record(2, TrialState.COMPLETE, u[2], 0.6),
        _record(3, TrialState.COMPLETE, u[3], 0.8),          # a second fold of seed 1: averaged
        _record(4, TrialState.FAIL, u[4], fail_kind="nan"),   # failed for good: held, not a run
        _record(5, TrialState.FAIL, u[5]),                   # killed with its worker: retried
        _record(6, TrialState.PRUNED, u[0], duplicate_of=0),  # lost a claim race
        _record(7, TrialState.PRUNED, None, empty=True),
    ]
    assert held_units(records) == {x.key for x in u[:5]}
    runs = completed_runs(records)
    assert list(runs) == [a, b]
    assert runs[a].runs == ((0, 0.5), (1, 0.7)) and runs[b].runs == ((0, 0.4),)


def test_a_unit_with_two_complete_trials_counts_once_the_first_by_number():
    """A paused worker's run and the copy retried while it was paused, both COMPLETE (a storage
    that let both finish): the unit counts once, as its first COMPLETE trial by number, whatever
    the order of the records."""
    a = CandidateKey.of("unet", "resnet18")
    screen, repeat, other_fold = Unit(a, 0, 0, SCREEN), Unit(a, 1, 0, REPEAT), Unit(a, 1, 1, REPEAT)
    records = [
        _record(5, TrialState.COMPLETE, repeat, 0.9),        # the resumed original, finished last
        _record(2, TrialState.COMPLETE, repeat, 0.6),        # the first COMPLETE of the unit: counted
        _record(0, TrialState.COMPLETE, screen, 0.5),
        _record(1, TrialState.FAIL, repeat),                 # the paused trial, failed by another worker
        _record(3, TrialState.COMPLETE, other_fold, 0.8),
        _record(4, TrialState.COMPLETE, screen, 0.1),        # a second COMPLETE of the screening unit
    ]
    runs = completed_runs(records)
    assert runs[a].runs == ((0, 0.5), (1, 0.7))  # seed 1 = mean of folds 0 (0.6, not 0.9) and 1
    assert completed_runs(records[::-1])[a].runs == runs[a].runs


def test_a_study_written_by_sweeper_0_1_reads_as_records(legacy_study):
    import optuna

    study = optuna.load_study(study_name="legacy", storage=f"sqlite:///{legacy_study / 'legacy.db'}")
    records = [TrialRecord.from_trial(t) for t in study.trials]
    assert len(records) == 6 and all(r.is_run for r in records)
    for r, t in zip(records, study.trials):
        assert str(r.unit.candidate) == t.user_attrs["candidate"] and r.unit.key == t.user_attrs["unit"]
        assert r.weights_artifact and r.history and r.config["arch"] == r.unit.candidate.arch
    assert StudyRecord.from_study(study).split_key
