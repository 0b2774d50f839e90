"""A study's ranked table: its finished runs grouped by candidate, seeds as rows, then ranked by
:func:`sweeper.stats.rank_candidates` (which knows nothing of Optuna)."""

from __future__ import annotations

from sweeper.sweep.records import TrialRecord, completed_runs, runs_matrix


def rank_records(trial_records: list[TrialRecord], *, rope: float = 0.01, alpha: float = 0.05,
                 baseline: float | None = None):
    """The ranked table of every candidate with a finished run (None when there is none).

    ``baseline`` is the study's majority-class mIoU (:class:`~sweeper.sweep.records.StudyRecord`)."""
    from sweeper import stats

    runs = completed_runs(trial_records)
    if not runs:
        return None
    values, _ = runs_matrix(runs)
    labels = [stats.Label(key=str(key), arch=key.arch, encoder=key.encoder_label, params=c.params,
                          extra={"hparams": dict(key.hparams)}) for key, c in runs.items()]
    ranking = stats.rank_candidates(values, labels, rope=rope, alpha=alpha, baseline=baseline)
    return ranking._replace(stopped=stopped_at_rungs(trial_records))


def stopped_at_rungs(trial_records: list[TrialRecord]) -> tuple:
    """The candidates a screen by rungs stopped before the full budget, each ranked among every
    candidate of its last rung (by mean over its runs there), cheapest rung first."""
    from sweeper.stats.ranking import Stopped

    reached: dict = {}  # the highest budget a candidate holds a unit at (inf: the full budget)
    for r in trial_records:
        if r.holds_unit:
            budget = float("inf") if r.unit.rung is None else r.unit.rung
            reached[r.unit.candidate] = max(reached.get(r.unit.candidate, 0), budget)
    full = next((r.config.get("epochs") for r in trial_records
                 if r.is_run and r.unit.rung is None and r.config), None)
    out = []
    for epochs in sorted({r.unit.rung for r in trial_records if r.unit is not None and r.unit.rung is not None}):
        runs = completed_runs(trial_records, rung=epochs)
        means = {key: sum(v for _, v in c.runs) / len(c.runs) for key, c in runs.items()}
        ranked = sorted(means, key=lambda k: -means[k])
        for rank, key in enumerate(ranked, 1):
            if reached.get(key) == epochs:
                out.append(Stopped(str(key), key.arch, key.encoder_label, epochs, full, means[key],
                                   len(runs[key].runs), rank, len(ranked)))
    return tuple(out)


def learning_curves(trial_records: list[TrialRecord]) -> list:
    """Validation mIoU per epoch of every finished or pruned run, for
    :func:`sweeper.report.plot_curves` (epochs 0-based, as recorded; NaN where none was measured)."""
    from optuna.trial import TrialState

    from sweeper.report.plots import Curve

    curves = []
    for r in trial_records:
        if not r.history or r.unit is None or r.is_duplicate or r.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        miou = [h["miou"] if h.get("miou") is not None else float("nan") for h in r.history]
        curves.append(Curve(str(r.unit.candidate), r.unit.seed, [h["epoch"] for h in r.history], miou))
    return curves
