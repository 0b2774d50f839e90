"""Runs reused by content: a run already finished in any study of the storage is not trained again.

The runner asks :class:`ReuseIndex` for a unit's :func:`~sweeper.sweep.identity.run_key` before
training it. A hit is recorded in the asking study as a COMPLETE trial with the original's
results and ``reused_from`` naming the original (study and trial number), so the new study ranks
it like its own runs and the experiment record (:func:`experiment_record`) shows who trained it.

The index is read from the storage when the runner starts and again, at most every
``refresh_s`` seconds, when a unit misses it: a run a teammate finished in the last few seconds
may be trained a second time, never one finished before.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

#: The result fields a reused trial copies from the original.
RESULT_FIELDS = ("params_count", "history", "best_epoch", "per_class_iou", "wall_time_s", "images_per_s",
                 "peak_memory_mb", "device", "versions")


@dataclass(frozen=True)
class Original:
    """A finished run that another unit may reuse: where it is and what it recorded."""

    study: str
    number: int
    attrs: dict

    def value(self, objective: str) -> float | None:
        """The run's value under ``objective``: the best epoch's or the last epoch's val mIoU."""
        history = self.attrs.get("history") or []
        scores = [h.get("miou") for h in history]
        scores = [s for s in scores if s is not None and math.isfinite(s)]
        if not scores:
            return None
        return max(scores) if objective == "best" else history[-1].get("miou")

    @property
    def pointer(self) -> dict:
        return {"study": self.study, "trial": self.number}


class ReuseIndex:
    """Finished runs of every study of one storage, by run key."""

    def __init__(self, storage, *, refresh_s: float = 10.0):
        self.storage = storage  # an Optuna BaseStorage
        self.refresh_s = refresh_s
        self._runs: dict[str, Original] = {}
        self._read_at = -math.inf

    def refresh(self) -> None:
        from optuna.trial import TrialState

        runs: dict[str, Original] = {}
        for study in self.storage.get_all_studies():
            trials = self.storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.COMPLETE,))
            for t in trials:
                attrs = t.user_attrs
                key = attrs.get("run_key")
                if not key or t.value is None or attrs.get("duplicate_of") is not None or key in runs:
                    continue
                origin = attrs.get("reused_from")
                if isinstance(origin, dict):  # a reuse points at the run that trained it
                    runs[key] = Original(origin.get("study", study.study_name), int(origin.get("trial", t.number)),
                                         attrs)
                else:
                    runs[key] = Original(study.study_name, t.number, attrs)
        self._runs = runs
        self._read_at = time.monotonic()

    def find(self, run_key: str) -> Original | None:
        if run_key not in self._runs and time.monotonic() - self._read_at >= self.refresh_s:
            self.refresh()
        return self._runs.get(run_key)

    def __len__(self) -> int:
        return len(self._runs)


def reused_attrs(original: Original) -> dict[str, Any]:
    """The record fields a reusing trial writes: the original's results and where they come from."""
    out = {name: original.attrs.get(name) for name in RESULT_FIELDS if original.attrs.get(name) is not None}
    out["reused_from"] = original.pointer
    return out


#: The experiment record's columns (``sweeper runs``).
RECORD_COLUMNS = ("config_key", "seed", "fold", "value", "study", "trial", "date", "candidate", "reused_from")


def experiment_record(storage) -> list[dict]:
    """Every finished run of every study of the storage, oldest first: one row per trial, with the
    run's config key (empty for runs of sweeper versions before run keys), seed, fold, value,
    study, trial number, completion date (UTC, ISO 8601) and, for a reused run, its original."""
    from optuna.trial import TrialState

    from sweeper.sweep.records import TrialRecord

    rows = []
    for study in storage.get_all_studies():
        for t in storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.COMPLETE,)):
            record = TrialRecord.from_trial(t)
            if not record.is_run:
                continue
            origin = record.reused_from
            rows.append({
                "config_key": (record.run_key or "").split("|", 1)[0],
                "seed": record.unit.seed,
                "fold": record.unit.fold,
                "value": t.value,
                "study": study.study_name,
                "trial": t.number,
                "date": t.datetime_complete.isoformat(timespec="seconds") if t.datetime_complete else "",
                "candidate": str(record.unit.candidate),
                "reused_from": f"{origin['study']}#{origin['trial']}" if isinstance(origin, dict) else "",
            })
    rows.sort(key=lambda r: (r["date"], r["study"], r["trial"]))
    return rows
