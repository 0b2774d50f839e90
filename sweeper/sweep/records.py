"""What a study holds, in one place: the unit a trial runs, the record of a trial, the study's own.

Every Optuna trial of a sweeper study runs one *unit*: one candidate (an architecture x encoder
pair, plus hyper-parameters where a space varies them) trained with one seed on one fold. What a
trial did lives in its user attributes, so that optuna-dashboard shows everything and ``report``
needs nothing else. This module is the only place that knows their names: the sweep writes
through :func:`write` and :func:`write_unit`, and every reader goes through
:meth:`TrialRecord.from_trial`, as Optuna's own code goes through ``FrozenTrial``.

Studies written by earlier versions hold the same attributes, so they read the same way.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from typing import Any


@functools.cache
def _states():
    """Optuna's ``TrialState`` and the run failures that recur, imported once on first use (a
    plan asks thousands of records per decision; ``sweeper --help`` imports no optuna)."""
    from optuna.trial import TrialState

    from sweeper.errors import RUN_FAIL_KINDS

    return TrialState, frozenset(RUN_FAIL_KINDS)

#: The phases a unit can belong to: screening (each candidate once), racing repeats (more seeds
#: for the undecided), the seeds of ``sweeper noise``, and a cheaper rung of a screen by rungs
#: (a run with fewer epochs than the recipe's, see :mod:`sweeper.sweep.rungs`).
SCREEN, REPEAT, NOISE, RUNG = "screen", "repeat", "noise", "rung"


def short_value(value: Any) -> str:
    """A hyper-parameter value as it appears in a candidate's name: floats to 4 digits."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def clean(value: Any) -> Any:
    """JSON-safe attribute values: NaN and infinities become None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


@dataclass(frozen=True, order=True)
class CandidateKey:
    """What competes in a ranking: a pair, plus the hyper-parameters a space varies.

    ``str(key)`` is the name shown and stored (``unet/resnet18``, ``fpn/resnet34 lr=0.001``);
    code compares keys, never parses names.
    """

    arch: str
    encoder: str
    hparams: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, arch: str, encoder: str, hparams: dict | tuple | None = None) -> CandidateKey:
        items = hparams.items() if isinstance(hparams, dict) else (hparams or ())
        return cls(arch, encoder, tuple(sorted(items)))

    @property
    def pair(self) -> str:
        """``arch/encoder``: the network, whatever the hyper-parameters."""
        return f"{self.arch}/{self.encoder}"

    @property
    def encoder_label(self) -> str:
        """The encoder column of a table: hyper-parameters ride along so that rows of one pair differ."""
        return " ".join([self.encoder] + [f"{n}={short_value(v)}" for n, v in self.hparams])

    def __str__(self) -> str:
        return self.name

    @functools.cached_property
    def name(self) -> str:
        """The name shown and stored, computed once (keys are compared fields-first anyway)."""
        return " ".join([self.pair] + [f"{n}={short_value(v)}" for n, v in self.hparams])


@dataclass(frozen=True)
class Unit:
    """One training run to do: a candidate, a seed and a fold, in a phase."""

    candidate: CandidateKey
    seed: int
    fold: int
    phase: str
    #: The epochs of a cheaper rung; None for the recipe's full budget (what rankings count).
    rung: int | None = None

    @functools.cached_property
    def key(self) -> str:
        """The unit's identity in the study (two trials with one key are one run)."""
        key = f"{self.candidate}|seed={self.seed}|fold={self.fold}"
        return key if self.rung is None else f"{key}|epochs={self.rung}"

    def user_attrs(self) -> dict:
        c = self.candidate
        attrs = {"unit": self.key, "candidate": str(c), "arch": c.arch, "encoder": c.encoder, "seed": self.seed,
                 "fold": self.fold, "phase": self.phase, "hparams": dict(c.hparams)}
        if self.rung is not None:
            attrs["rung"] = self.rung
        return attrs

    @classmethod
    def from_attrs(cls, attrs: dict) -> Unit | None:
        """The unit a trial's attributes describe; None for a trial that never took one (or whose
        attributes someone edited beyond reading)."""
        if not all(name in attrs for name in ("unit", "arch", "encoder", "seed", "fold")):
            return None
        key = CandidateKey.of(attrs["arch"], attrs["encoder"], attrs.get("hparams") or {})
        rung = attrs.get("rung")
        return cls(key, int(attrs["seed"]), int(attrs["fold"]), attrs.get("phase", SCREEN),
                   None if rung is None else int(rung))


@dataclass(frozen=True)
class TrialRecord:
    """One trial as sweeper reads it. Every field below ``unit`` is stored as a user attribute of
    the same name; None means "not recorded" (a trial still running, or an older study).

    Units: ``wall_time_s`` seconds for the whole run; ``images_per_s`` training images per second;
    ``peak_memory_mb`` CUDA's peak allocation, or the process's peak resident memory on CPU;
    ``history`` one dict per epoch (0-based ``epoch``, losses, dataset-level ``miou``);
    ``best_epoch`` 0-based; ``per_class_iou`` at the best epoch; ``params_count`` parameters.
    """

    number: int
    state: Any  # optuna.trial.TrialState
    value: float | None = None
    unit: Unit | None = None
    config: dict | None = None
    worker: dict | None = None
    params_count: int | None = None
    history: list | None = None
    best_epoch: int | None = None
    per_class_iou: dict | None = None
    wall_time_s: float | None = None
    images_per_s: float | None = None
    peak_memory_mb: float | None = None
    device: str | None = None
    versions: dict | None = None
    pruned_at_epoch: int | None = None
    fail_kind: str | None = None
    fail_reason: str | None = None
    interrupted: bool | None = None
    duplicate_of: int | None = None
    empty: bool | None = None
    weights_artifact: str | None = None
    weights_error: str | None = None
    #: The run's identity by content (:func:`sweeper.sweep.identity.run_key`): config key, seed, fold.
    run_key: str | None = None
    #: ``{"study", "trial"}`` of the run this trial reused instead of training it again.
    reused_from: dict | None = None
    #: The trial of the shorter rung run this one went on from (its saved state), and how many
    #: epochs it carried from it: ``wall_time_s`` then covers only the epochs trained here.
    continued_from: int | None = None
    resumed_epochs: int | None = None

    @classmethod
    def from_trial(cls, trial) -> TrialRecord:
        """The record of an Optuna ``FrozenTrial`` (or anything with the same attributes)."""
        attrs = trial.user_attrs
        stored = {name: attrs.get(name) for name in ATTRS}
        return cls(number=trial.number, state=trial.state, value=trial.value, unit=Unit.from_attrs(attrs), **stored)

    def user_attrs(self) -> dict:
        """The user attributes that hold this record (the inverse of :meth:`from_trial`)."""
        out = self.unit.user_attrs() if self.unit is not None else {}
        out.update({name: clean(getattr(self, name)) for name in ATTRS if getattr(self, name) is not None})
        return out

    # -- what the trial means for its unit
    @property
    def is_duplicate(self) -> bool:
        """A trial that never trained: it lost a claim race (``duplicate_of``) or found no work."""
        return self.duplicate_of is not None or bool(self.empty)

    @property
    def is_run(self) -> bool:
        """A finished run with a value: what rankings count."""
        TrialState, _ = _states()

        return self.state == TrialState.COMPLETE and self.unit is not None and not self.is_duplicate \
            and self.value is not None

    @property
    def holds_unit(self) -> bool:
        """Whether this trial settles its unit: finished, in flight, queued, or failed for good
        (a run error recurs with the same seed; a killed worker's trial is retried)."""
        TrialState, RUN_FAIL_KINDS = _states()

        if self.unit is None or self.is_duplicate:
            return False
        if self.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING):
            return True
        return self.state == TrialState.FAIL and self.fail_kind in RUN_FAIL_KINDS

    @property
    def is_running(self) -> bool:
        TrialState, _ = _states()

        return self.state == TrialState.RUNNING

    @property
    def is_waiting(self) -> bool:
        TrialState, _ = _states()

        return self.state == TrialState.WAITING


#: The names of the record fields stored under their own name as user attributes.
ATTRS = tuple(f.name for f in fields(TrialRecord) if f.name not in ("number", "state", "value", "unit"))


def write_unit(trial, unit: Unit) -> None:
    """Record which unit a trial runs (for a trial that was not enqueued with it)."""
    for name, value in unit.user_attrs().items():
        trial.set_user_attr(name, value)


def write(trial, **values: Any) -> None:
    """Record fields of a trial's :class:`TrialRecord` (``write(trial, fail_kind="oom")``)."""
    for name, value in values.items():
        if name not in ATTRS:
            raise KeyError(f"{name!r} is not a field of a trial record")
        trial.set_user_attr(name, clean(value))


#: The Optuna params that name an enumerated trial's candidate, so that Optuna's own views
#: (importance, slice, contour, ``optuna trials``) see the architecture and the encoder.
CANDIDATE_PARAMS = ("arch", "encoder")


def write_params(trial, params: dict[str, tuple[Any, Any]]) -> None:
    """Record ``{name: (value, distribution)}`` as the trial's Optuna params, exactly these values.

    ``suggest_*`` would let the sampler pick a value for a trial that was not enqueued with it;
    here the unit has already decided, so the value goes to the storage as it is. The storage
    checks the distribution against the study's earlier trials (and refuses a changed one).
    """
    for name, (value, distribution) in params.items():
        trial.storage.set_trial_param(trial._trial_id, name, distribution.to_internal_repr(value), distribution)


def stored_choices(study) -> dict[str, tuple]:
    """The choices of the candidate params the study's trials already use (empty for a new or a
    legacy study): a categorical's choices cannot change within a study."""
    found: dict[str, tuple] = {}
    for t in study.get_trials(deepcopy=False):
        for name in CANDIDATE_PARAMS:
            if name not in found and name in t.distributions:
                found[name] = tuple(t.distributions[name].choices)
        if len(found) == len(CANDIDATE_PARAMS):
            break
    return found


def read_records(study) -> list[TrialRecord]:
    return [TrialRecord.from_trial(t) for t in study.get_trials(deepcopy=False)]


def held_units(records: list[TrialRecord]) -> set[str]:
    """Keys of the units that no worker should start again."""
    return {r.unit.key for r in records if r.holds_unit}


@dataclass(frozen=True)
class CandidateRuns:
    """A candidate's finished runs: ``(seed, value)`` with a seed's folds averaged, and its size."""

    key: CandidateKey
    params: int | None
    runs: tuple[tuple[int, float], ...]


def completed_runs(records: list[TrialRecord], *, rung: int | None = None) -> dict[CandidateKey, CandidateRuns]:
    """Every candidate with a finished run at the full budget (or at the cheaper ``rung``, given
    its epochs), in the order of their first runs: the budgets are never mixed.

    With several folds, a seed's value is the mean over its folds. Duplicates never count, and
    a unit counts once: should two trials of one unit both be COMPLETE (a worker paused past the
    grace period whose run was retried elsewhere, on a storage that let both finish), the first
    by trial number is its run.
    """
    cells: dict[CandidateKey, dict[int, list[float]]] = {}
    params: dict[CandidateKey, int | None] = {}
    counted: set[str] = set()
    for r in sorted(records, key=lambda r: r.number):
        if not r.is_run or r.unit.rung != rung or r.unit.key in counted:
            continue
        counted.add(r.unit.key)
        key = r.unit.candidate
        cells.setdefault(key, {}).setdefault(r.unit.seed, []).append(float(r.value))
        if params.get(key) is None:
            params[key] = r.params_count
    return {key: CandidateRuns(key, params[key], tuple((s, sum(v) / len(v)) for s, v in seeds.items()))
            for key, seeds in cells.items()}


def runs_matrix(runs: dict[CandidateKey, CandidateRuns]):
    """``(values, seeds)`` of :func:`completed_runs` in the statistics' convention: a (seeds x
    candidates) array, columns in the order of ``runs``, rows the sorted seeds, NaN where missing."""
    from sweeper import stats

    flat = [(str(key), seed, value) for key, c in runs.items() for seed, value in c.runs]
    values, _, seeds = stats.pivot_runs(flat)
    return values, seeds


def columns_matrix(runs: dict[CandidateKey, CandidateRuns], keys):
    """``(values, seeds)``: a (seeds x keys) array with the columns in the order of ``keys`` (an
    ablation's arms, baseline first), rows the sorted seeds any of them ran, NaN where a key (or a
    None key) has no run of that seed."""
    import numpy as np

    present = [runs[k] for k in keys if k is not None and k in runs]
    seeds = sorted({s for c in present for s, _ in c.runs})
    values = np.full((len(seeds), len(keys)), np.nan)
    row = {s: i for i, s in enumerate(seeds)}
    for j, key in enumerate(keys):
        for seed, value in runs[key].runs if key is not None and key in runs else ():
            values[row[seed], j] = value
    return values, seeds


# --------------------------------------------------------------------------- the study's own record


#: User attributes of the study itself: the data split it was made with (a resumed study must
#: use the same one), the space file and recipe it came from, where its weight files are, and
#: the mIoU of predicting the majority class everywhere on the first fold's validation images, and
#: the ranked best candidate (by mean over seeds) after the last tune, and an ablation's arms.
STUDY_ATTRS = ("split_key", "space", "recipe", "artifacts_dir", "baseline_miou", "ranked_best", "ablation", "order",
               "screening")


@dataclass(frozen=True)
class StudyRecord:
    split_key: str | None = None
    space: str | None = None
    recipe: dict | None = None
    artifacts_dir: str | None = None
    baseline_miou: float | None = None
    #: The ranked table's best after the last tune: ``{"candidate", "mean_miou", "n", "verdicts"}``,
    #: so that anyone reading the storage finds sweeper's answer, not only Optuna's best single run.
    ranked_best: dict | None = None
    #: An ablation study's arms: ``{"baseline": key, "arms": [{"name", "key", "values"}], "first_seeds"}``.
    ablation: dict | None = None
    #: The catalogue order the study screens in (``architectures.order``), fixed at its first run.
    order: str | None = None
    #: The screen by rungs the study climbs, fixed at its first run: ``{"rungs": [epochs...],
    #: "keep": fraction}``, with no rungs for a screen at the full budget.
    screening: dict | None = None

    @classmethod
    def from_study(cls, study) -> StudyRecord:
        attrs = study.user_attrs
        return cls(**{name: attrs.get(name) for name in STUDY_ATTRS})


def write_study(study, **values: Any) -> None:
    for name, value in values.items():
        if name not in STUDY_ATTRS:
            raise KeyError(f"{name!r} is not a field of a study record")
        study.set_user_attr(name, clean(value))
