"""A stub runner for plans: it "trains" a unit by looking its value up, so a plan's decisions can
be tested without torch or a storage (the way Optuna's FixedTrial tests an objective)."""

from __future__ import annotations

from optuna.trial import TrialState

from sweeper.sweep.plans import SAMPLE, WAIT
from sweeper.sweep.records import TrialRecord, Unit


def follow(plan, value_of, records=None, *, limit=500):
    """Run ``plan`` to its end; ``value_of(unit)`` is a run's mIoU (None: the run fails with an
    out-of-memory error). Returns the records in the order the units ran."""
    records = list(records or [])
    for _ in range(limit):
        step = plan.next_unit(records)
        if step is None:
            return records
        assert step not in (WAIT, SAMPLE), f"a plan over finished records answered {step}"
        assert isinstance(step, Unit)
        value = value_of(step)
        state = TrialState.COMPLETE if value is not None else TrialState.FAIL
        records.append(TrialRecord(number=len(records), state=state, value=value, unit=step,
                                   fail_kind=None if value is not None else "oom"))
    raise AssertionError("the plan did not finish")
