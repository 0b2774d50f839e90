"""``sweeper ablate``: run an ablation's arms into a study and read its result.

Everything is checked before the storage is touched: the baseline (a missing study or trial),
every change (an unknown key, a value of the wrong type, a change equal to the baseline, several
keys changed outside a bundle). The runs are ordinary trials, reused by content like any other
(a baseline that is a tune's ★ reuses the tune's runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sweeper.errors import SweeperError
from sweeper.sweep.records import StudyRecord, read_records, write_study


@dataclass
class AblationSummary:
    """What ``sweeper ablate`` did, and the arms' result (:class:`ArmsTable`; None without runs)."""

    study_name: str
    storage: str
    trained: int = 0
    reused: int = 0
    failed: int = 0
    table: Any = None
    messages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ArmRow:
    """One change arm of the table: its name, key, mean mIoU and effect against the baseline."""

    name: str
    key: str
    mean: float
    effect: Any  # sweeper.stats.ablation.ArmEffect


@dataclass(frozen=True)
class ArmsTable:
    """An ablation's result: the baseline's config and runs, then each change's effect."""

    baseline: str
    baseline_mean: float
    baseline_n: int
    baseline_config: dict
    arms: tuple  # of ArmRow, the largest effect first
    rope: float
    result: Any  # sweeper.stats.ablation.AblationResult


def plan_arms(space, storage: str | None, changes: Sequence = (), baseline: str | None = None):
    """``(space with the baseline's config, arms, first seeds)``, every check done, nothing written."""
    from sweeper.sweep.ablation import Ablation, baseline_config, parse_cli_change, resolve_arms

    ablation = space.ablation
    given = _cli_baseline(baseline) if baseline is not None else None
    if ablation is None:
        if given is None:
            raise SweeperError(f"{space.source}: no ablation section; add ablation: {{baseline: ..., changes: [...]}} "
                               "or give --baseline and --change")
        ablation = Ablation(given, ())
    elif given is not None:
        ablation = replace(ablation, baseline=given)
    cli = tuple(parse_cli_change(text) for text in changes)
    ablation = replace(ablation, changes=ablation.changes + cli)
    if not ablation.changes:
        raise SweeperError(f"{space.source}: ablation.changes is empty; list at least one change "
                           "(or --change key=value)")
    base = baseline_config(ablation, space, storage)
    arms = resolve_arms(base, ablation.changes, f"{space.source}: ablation.changes")
    return replace(space, base=base, hparams=(), screening=None, ablation=ablation), arms, ablation.first_seeds


def _cli_baseline(text: str) -> dict:
    """``--baseline arch/encoder``, ``--baseline STUDY`` (its ★) or ``--baseline STUDY#N`` (trial N)."""
    if "/" in text:
        return {"pair": text}
    name, sep, number = text.partition("#")
    if sep:
        if not number.isdigit():
            raise SweeperError(f"--baseline: {text!r}: after # comes a trial number (e.g. demo#12)")
        return {"study": name, "trial": int(number)}
    return {"study": name}


def run_ablation(space, *, storage: str | None = None, study_name: str | None = None, changes: Sequence = (),
                 baseline: str | None = None, events: Callable[[str, dict], None] | None = None) -> AblationSummary:
    """Run (or resume) an ablation: every arm on the first seeds, extra seeds to undecided arms."""
    import random

    from sweeper.sweep.disk import writes_to
    from sweeper.sweep.plans import AblationArms
    from sweeper.sweep.runner import Runner
    from sweeper.sweep.storage import shown_url
    from sweeper.sweep.study import check_same_split, name_the_metric, open_study, trivial_miou
    from sweeper.sweep.workers import fail_dead_local_trials
    from sweeper.training import check_encoder_weights, prepare_data

    space, arms, first = plan_arms(space, storage, changes, baseline)
    for arm in arms:
        weights = arm.values.get("encoder_weights", space.base.encoder_weights)
        try:
            check_encoder_weights(arm.values.get("encoder", space.base.encoder), weights)
        except SweeperError as exc:
            raise SweeperError(f"{space.source}: ablation {arm.name}: {exc}") from None
    data = prepare_data(space.base)

    study = open_study(space, storage, study_name or f"{space.name}")
    with writes_to(shown_url(storage)):
        check_same_split(study, space, data)
        name_the_metric(study)
        if StudyRecord.from_study(study).baseline_miou is None:
            write_study(study, baseline_miou=trivial_miou(data))
        write_study(study, ablation={"baseline": str(arms[0].key), "first_seeds": first, "rope": space.rope,
                                     "arms": [{"name": a.name, "key": str(a.key), "values": a.values} for a in arms]})
        fail_dead_local_trials(study)
    summary = AblationSummary(study_name=study.study_name, storage=shown_url(storage))
    runner = Runner(study, data, objective=space.objective, events=events)
    counts = runner.run(AblationArms(space, arms, first_seeds=first, rng=random.Random()))
    summary.trained, summary.failed = counts.trained, counts.failed
    summary.reused = counts.reused
    summary.messages += counts.messages
    summary.table = arms_table(study, rope=space.rope)
    return summary


def arms_table(study, *, rope: float | None = None) -> ArmsTable | None:
    """The result of an ablation study from its records (None when it is not one, or has no runs)."""
    import numpy as np

    from sweeper.stats.ablation import compare_to_baseline
    from sweeper.sweep.records import columns_matrix, completed_runs

    record = StudyRecord.from_study(study)
    if not record.ablation:
        return None
    records = read_records(study)
    runs = completed_runs(records)
    by_name = {str(k): k for k in runs}
    arms = record.ablation["arms"]
    keys = [by_name.get(a["key"]) for a in arms]
    if keys[0] is None:
        return None
    values, _ = columns_matrix(runs, keys)
    rope = record.ablation.get("rope", 0.01) if rope is None else rope
    result = compare_to_baseline(values, rope=rope)
    config = next((r.config for r in records if r.is_run and r.unit.candidate == keys[0] and r.config), {}) or {}
    rows = [ArmRow(arms[e.index]["name"], arms[e.index]["key"], float(np.nanmean(values[:, e.index])), e)
            for e in result.arms]
    rows.sort(key=lambda row: -(row.effect.effect if np.isfinite(row.effect.effect) else -np.inf))
    base = values[:, 0]
    return ArmsTable(baseline=arms[0]["key"], baseline_mean=float(np.nanmean(base)),
                     baseline_n=int(np.isfinite(base).sum()), baseline_config=config, arms=tuple(rows), rope=rope,
                     result=result)
