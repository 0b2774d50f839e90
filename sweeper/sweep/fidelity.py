"""The ``fidelity`` job: train a seeded sample of a space's candidates at every cheap rung and at
the full budget, on the same seeds, and measure how well each rung predicts the full budget.

It is a study like any other: its units go through the :class:`~sweeper.sweep.runner.Runner`
with a :class:`~sweeper.sweep.plans.FixedUnits` plan, into the storage, under the name
``<space>-fidelity``; running it again resumes and trains only what is missing. Each rung is
trained as a screen by rungs trains it (:mod:`sweeper.sweep.rungs`), so what is measured is what
``tune`` would see: under a constant learning rate a candidate's longer budget goes on from its
shorter one's saved state (the same runs for fewer epochs: rungs 1 and 3 of 8 train 8 epochs a
candidate and seed instead of 12), under a schedule each budget trains from scratch. The
statistics are :mod:`sweeper.stats.fidelity`'s.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

from sweeper.errors import SweeperError
from sweeper.sweep.records import RUNG, SCREEN, CandidateKey, Unit

#: The seed of the candidate sample: fixed, so that a resumed or widened (``--candidates``)
#: study keeps its first candidates whatever its training seeds.
SAMPLE_SEED = 0
#: Kendall's tau needs a few candidates to mean anything.
MIN_CANDIDATES = 3


class FidelityReport(NamedTuple):
    """What one ``fidelity`` invocation measured and did.

    ``values`` maps a budget in epochs to a (seeds x candidates) list of val mIoU (None: no
    finished run), rows in ``seeds`` order, columns in ``candidates`` order; ``cost_share`` is
    what a screen by these rungs costs in epochs, as a share of every candidate at the full
    budget (one seed, :meth:`~sweeper.sweep.rungs.Rungs.cost_epochs`, with each rung going on
    from the one before where the recipe allows it).
    """

    study_name: str
    storage: str
    candidates: tuple[str, ...]
    seeds: tuple[int, ...]
    rungs: tuple[int, ...]
    full_epochs: int
    keep: float
    fidelity: Any  # sweeper.stats.fidelity.Fidelity
    best: str  # the full-budget best by mean over the seeds
    values: dict[int, list[list[float | None]]]
    cost_share: float
    trained: int = 0
    failed: int = 0
    messages: tuple[str, ...] = ()
    #: Under a constant learning rate: every epoch before the full budget read from the full runs'
    #: histories as a one-rung screen (:func:`epoch_fidelity`), cheapest first; else empty.
    by_epoch: tuple = ()


def parse_rungs(text: str | None, space) -> Any:
    """The cheap rungs to measure: ``--rungs 1,3`` (checked like a space's ``screening.rungs``,
    keeping the space's ``keep``), else the space's own. A :class:`~sweeper.sweep.rungs.Rungs`."""
    from sweeper.sweep.rungs import parse_screening

    full = space.base.epochs
    keep = space.screening.keep if space.screening is not None else 1 / 3
    if text is None:
        if space.screening is None:
            raise SweeperError(f"--rungs: {space.source} declares no screening rungs; give the cheap budgets in "
                               f"epochs, below the recipe's {full}, e.g. --rungs 1,3")
        return space.screening
    try:
        epochs = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise SweeperError(f"--rungs: expected epochs separated by commas, e.g. 1,3; got {text!r}") from None
    if not epochs:
        raise SweeperError(f"--rungs: expected epochs separated by commas, e.g. 1,3; got {text!r}")
    try:
        go_on = space.screening.go_on if space.screening is not None else True
        rungs = parse_screening({"rungs": epochs, "keep": keep, "continue": go_on}, "--rungs", full)
    except SweeperError as exc:
        raise SweeperError(str(exc).replace("--rungs: screening.rungs", "--rungs", 1)) from None
    if rungs is None:
        raise SweeperError(f"--rungs: no rung is below the recipe's {full} epochs (the full budget is always "
                           "trained); give cheaper ones, e.g. --rungs 1,3")
    return rungs


def check_keep(keep: float | None, rungs) -> Any:
    """``--keep`` over the rungs' own fraction (a fraction strictly between 0 and 1)."""
    if keep is None:
        return rungs
    if not 0 < keep < 1:
        raise SweeperError(f"--keep: {keep!r} must be a fraction strictly between 0 and 1")
    return replace(rungs, keep=float(keep))


def fidelity_seeds(space_seeds: tuple[int, ...], n: int) -> tuple[int, ...]:
    """The first ``n`` seeds: the space's in order (its screening seed first), then the lowest
    unused integers."""
    if n < 1:
        raise SweeperError(f"--seeds: need at least one seed, got {n}")
    seeds = list(space_seeds[:n])
    candidate = 0
    while len(seeds) < n:
        if candidate not in seeds and candidate not in space_seeds:
            seeds.append(candidate)
        candidate += 1
    return tuple(seeds)


def sample_candidates(candidates: list, n: int, seed: int = SAMPLE_SEED) -> list:
    """``n`` of ``candidates`` at random (seeded), kept in their screening order. The sample for
    ``n`` is contained in the sample for any larger ``n`` (a prefix of one seeded permutation)."""
    order = list(range(len(candidates)))
    random.Random(seed).shuffle(order)
    chosen = set(order[:n])
    return [c for i, c in enumerate(candidates) if i in chosen]


def fidelity_units(keys: list[CandidateKey], seeds: tuple[int, ...], rungs: tuple[int, ...], fold: int
                   ) -> list[Unit]:
    """Seed by seed, candidate by candidate, cheapest budget first: an interrupted study holds
    whole seeds of whole candidates. Cheap rungs are RUNG units; the full budget is a SCREEN
    unit, so ``report`` on the study ranks the full-budget runs."""
    units = []
    for seed in seeds:
        for key in keys:
            units += [Unit(key, seed, fold, RUNG, rung=e) for e in rungs]
            units.append(Unit(key, seed, fold, SCREEN))
    return units


def run_fidelity(space, *, n_candidates: int, n_seeds: int = 1, rungs: str | None = None, keep: float | None = None,
                 storage: str | None = None, study_name: str | None = None, n_boot: int | None = None,
                 events: Callable[[str, dict], None] | None = None) -> FidelityReport:
    """Train, resume or just read the fidelity study of ``space``, and measure each cheap rung."""
    from sweeper.sweep.disk import writes_to
    from sweeper.sweep.plans import FixedUnits
    from sweeper.sweep.records import read_records
    from sweeper.sweep.runner import Runner
    from sweeper.sweep.storage import shown_url
    from sweeper.sweep.study import _prepare, check_same_split, name_the_metric, open_study, rung_states
    from sweeper.sweep.workers import fail_dead_local_trials

    if space.hparams:
        raise SweeperError(f"--space: {space.source} varies hparams (sampled by TPE); fidelity measures the rungs "
                           "of an enumerated catalogue of architecture x encoder pairs")
    if n_candidates < MIN_CANDIDATES:
        raise SweeperError(f"--candidates: need at least {MIN_CANDIDATES} candidates for a rank correlation, "
                           f"got {n_candidates}")
    ladder = check_keep(keep, parse_rungs(rungs, space))
    seeds = fidelity_seeds(space.seeds, n_seeds)
    data, candidates = _prepare(space)
    messages = []
    if len(candidates) < MIN_CANDIDATES:
        raise SweeperError(f"--candidates: {space.source} has only {len(candidates)} candidate(s) at "
                           f"{space.base.image_size} px; fidelity needs at least {MIN_CANDIDATES}")
    if len(candidates) < n_candidates:
        messages.append(f"the space has {len(candidates)} candidates: all of them are measured")
    chosen = sample_candidates(candidates, n_candidates)
    keys = [CandidateKey.of(c.arch, c.encoder) for c in chosen]
    space = replace(space, seeds=seeds, racing=False, folds=space.folds[:1], screening=ladder,
                    pruner=replace(space.pruner, type="none", options={}))
    name = study_name or f"{space.name}-fidelity"
    study = open_study(space, storage, name)
    with writes_to(shown_url(storage)):
        check_same_split(study, space, data)
        name_the_metric(study)
        stale = fail_dead_local_trials(study)
    if stale:
        messages.append(f"{stale} trial(s) of dead local workers marked FAIL and retried")
    units = fidelity_units(keys, seeds, ladder.epochs, space.folds[0])
    states, why = rung_states(space, storage, None, study.study_name)
    if why:
        messages.append(why)
    runner = Runner(study, data, objective=space.objective, params_of={c.key: c.params for c in chosen},
                    events=events, states=states)
    counts = runner.run(FixedUnits(space, units))
    messages += counts.messages
    if counts.went_on_note():
        messages.append(counts.went_on_note())
    records = read_records(study)
    values = budget_values(records, keys, seeds, (*ladder.epochs, None))
    report = measure(values, keys, seeds, ladder, space.base.epochs, n_boot=n_boot, continued=states is not None)
    if space.base.scheduler == "none":
        report = report._replace(by_epoch=epoch_fidelity(records, keys, seeds, space.base.epochs, ladder.keep,
                                                         space.objective, n_boot=n_boot))
    return report._replace(study_name=study.study_name, storage=shown_url(storage), trained=counts.trained,
                           failed=counts.failed, messages=tuple(messages))


def budget_values(records, keys: list[CandidateKey], seeds: tuple[int, ...], budgets: tuple[int | None, ...]
                  ) -> dict[int | None, list[list[float | None]]]:
    """Each budget's (seeds x candidates) val mIoU from a study's records (None: no finished run);
    a budget of None is the full one."""
    from sweeper.sweep.records import completed_runs

    out = {}
    for budget in budgets:
        runs = completed_runs(records, rung=budget)
        by = {key: dict(c.runs) for key, c in runs.items()}
        out[budget] = [[by.get(key, {}).get(seed) for key in keys] for seed in seeds]
    return out


def prefix_values(records, keys: list[CandidateKey], seeds: tuple[int, ...], full_epochs: int,
                  objective: str = "best") -> dict[int, list[list[float | None]]]:
    """Each epoch count before the full budget, ``{epochs: (seeds x candidates)}``: the value a
    rung of that many epochs records, read from the full-budget runs' histories (the best epoch
    so far, or that epoch's with ``objective: last``). Exact only under a constant learning rate,
    where a rung's run is the first epochs of the full run bit for bit."""
    from sweeper.sweep.records import completed_runs

    full = {key: c for key, c in completed_runs(records, rung=None).items()}
    history = {(r.unit.candidate, r.unit.seed): r.history for r in records
               if r.is_run and r.unit.rung is None and r.history}
    out: dict[int, list[list[float | None]]] = {}
    for e in range(1, full_epochs):
        rows = []
        for seed in seeds:
            row = []
            for key in keys:
                h = sorted(history.get((key, seed)) or [], key=lambda x: x["epoch"])
                scores = [x["miou"] for x in h[:e] if x.get("miou") is not None]
                done = key in full and len(h) >= e and len(scores) == e
                row.append((max(scores) if objective == "best" else scores[-1]) if done else None)
            rows.append(row)
        out[e] = rows
    return out


def epoch_fidelity(records, keys, seeds, full_epochs: int, keep: float, objective: str = "best", *,
                   n_boot: int | None = None) -> tuple:
    """Every epoch before the full budget as a one-rung screen with ``keep``: a
    :class:`~sweeper.stats.fidelity.RungFidelity` per epoch (tau with its interval, survival of
    the full-budget best), from the full runs alone. It tells which rung to pick at no extra
    training; under a constant learning rate only (:func:`prefix_values`)."""
    import numpy as np

    from sweeper.stats.fidelity import N_BOOT, rung_fidelity

    def array(rows):
        return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)

    full = array(budget_values(records, keys, seeds, (None,))[None])
    out = []
    for e, rows in prefix_values(records, keys, seeds, full_epochs, objective).items():
        one = rung_fidelity(array(rows)[None], full, epochs=(e,), full_epochs=full_epochs, keep=keep,
                            n_boot=n_boot or N_BOOT)
        out.append(one.rungs[0])
    return tuple(out)


def measure(values: dict, keys: list[CandidateKey], seeds: tuple[int, ...], ladder, full_epochs: int, *,
            n_boot: int | None = None, continued: bool = False) -> FidelityReport:
    """The statistics of :func:`budget_values` (a report without its study's name and counts)."""
    import numpy as np

    from sweeper.stats.fidelity import N_BOOT, rung_fidelity

    def array(rows):
        return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)

    full = array(values[None])
    finished = int(np.isfinite(full).any(axis=0).sum())
    if finished < MIN_CANDIDATES:
        raise SweeperError(f"only {finished} of {len(keys)} candidates finished a full-budget run; fidelity needs "
                           f"at least {MIN_CANDIDATES} (see the failed trials in the study)")
    cheap = np.stack([array(values[e]) for e in ladder.epochs])
    fidelity = rung_fidelity(cheap, full, epochs=ladder.epochs, full_epochs=full_epochs, keep=ladder.keep,
                             n_boot=n_boot or N_BOOT)
    n = len(keys)
    return FidelityReport(
        study_name="", storage="", candidates=tuple(str(k) for k in keys), seeds=tuple(seeds), rungs=ladder.epochs,
        full_epochs=full_epochs, keep=ladder.keep, fidelity=fidelity, best=str(keys[fidelity.best]),
        values={(full_epochs if e is None else e): rows for e, rows in values.items()},
        cost_share=ladder.cost_epochs(n, full_epochs, continued=continued) / (n * full_epochs))
