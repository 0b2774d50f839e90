"""The jobs on a study: ``tune`` (screen, race, rank), ``noise`` (one baseline, N seeds), and
loading a study to report on.

Each job checks everything it can before the study is opened (the recipe, the data, the
candidates, the weights), so a bad input never leaves a trace in the storage; then it builds a
plan and hands it to a :class:`~sweeper.sweep.runner.Runner`.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sweeper.errors import SweeperError, did_you_mean, one_line
from sweeper.sweep.disk import writes_to
from sweeper.sweep.records import (
    NOISE,
    CandidateKey,
    StudyRecord,
    Unit,
    clean,
    completed_runs,
    read_records,
    stored_choices,
    write_study,
)
from sweeper.sweep.storage import artifact_dir, mask_url, open_storage, shown_url, study_names


@dataclass
class SweepSummary:
    """What one ``tune`` invocation did, and the ranking of everything in the study."""

    study_name: str
    storage: str
    trained: int = 0
    failed: int = 0
    pruned: int = 0
    reused: int = 0  # runs recorded from the same content finished in another study, not trained
    ranking: Any = None
    candidates: int = 0
    messages: list[str] = field(default_factory=list)


def open_study(space, storage: str | None, study_name: str | None, *, create: bool = True):
    """Create or resume the study of a space, with its seeded sampler and its pruner."""
    import optuna

    from sweeper.sweep.pruners import make_pruner

    name = study_name or space.name
    store = open_storage(storage)
    sampler = optuna.samplers.TPESampler(seed=space.screening_seed)
    pruner = make_pruner(space.pruner.type, space.pruner.options, epochs=space.base.epochs)
    try:
        if not create:
            return optuna.load_study(study_name=name, storage=store, sampler=sampler, pruner=pruner)
        return optuna.create_study(study_name=name, storage=store, direction="maximize", sampler=sampler,
                                   pruner=pruner, load_if_exists=True)
    except KeyError:
        raise SweeperError(f"--study: no study named {name!r} in {shown_url(storage)}") from None
    except Exception as exc:  # noqa: BLE001 - connection errors surface here on first use
        if isinstance(exc, SweeperError):
            raise
        with writes_to(shown_url(storage)):
            raise
        raise SweeperError(f"--storage {shown_url(storage)}: {one_line(mask_url(str(exc)), 240)}") from None


def _prepare(space):
    """Recipe, data and candidates checked before any storage is touched."""
    from sweeper.sweep.candidates import resolve_candidates
    from sweeper.training import check_encoder_weights, prepare_data, validate_config
    from sweeper.training.weights import looks_like_path

    validate_config(space.base, pair=False)
    weights = space.base.encoder_weights
    if weights and looks_like_path(weights):  # a file does not depend on the encoder: read it first
        try:
            check_encoder_weights("", weights)
        except SweeperError as exc:
            raise SweeperError(f"{space.source}: recipe.{exc}") from None
    data = prepare_data(space.base)
    check_has_labels(data)
    check_batch_size(space, data)
    candidates = resolve_candidates(space, data.num_classes)
    for c in candidates:  # weights that cannot be had fail now, not in trial 1
        try:
            check_encoder_weights(c.encoder, space.base.encoder_weights)
        except SweeperError as exc:
            raise SweeperError(f"{space.source}: recipe.{exc}") from None
    return data, candidates


def run_sweep(space, *, storage: str | None = None, study_name: str | None = None,
              events: Callable[[str, dict], None] | None = None, artifacts: str | os.PathLike | None = None,
              ) -> SweepSummary:
    """Screen, then race repeats, then rank: the whole ``tune`` job on one worker.

    Safe to run again (it resumes) and to run in several processes against one storage. With
    ``space.save_weights`` each finished run's best-epoch weights go to the artifact folder
    (:func:`~sweeper.sweep.storage.artifact_dir`), recorded in the study so that ``ensemble``
    finds them.
    """
    from sweeper.sweep.plans import ScreenThenRace
    from sweeper.sweep.ranking import rank_records
    from sweeper.sweep.runner import Runner
    from sweeper.sweep.workers import fail_dead_local_trials

    data, candidates = _prepare(space)
    folder = artifact_dir(storage, artifacts) if space.save_weights else None
    if folder is not None and not folder.parent.is_dir():
        raise SweeperError(f"--artifacts: folder {folder.parent} does not exist")
    study = open_study(space, storage, study_name)
    with writes_to(shown_url(storage)):
        check_same_split(study, space, data)
        if folder is not None:
            folder.mkdir(exist_ok=True)
            if StudyRecord.from_study(study).artifacts_dir is None:
                write_study(study, artifacts_dir=str(folder.resolve()))
        if StudyRecord.from_study(study).baseline_miou is None:
            write_study(study, baseline_miou=trivial_miou(data))
        name_the_metric(study)
        stale = fail_dead_local_trials(study)
        order = _study_order(study, space)
        screening = study_screening(study, space)
    summary = SweepSummary(study_name=study.study_name, storage=shown_url(storage), candidates=len(candidates))
    if screening != space.screening:
        from sweeper.sweep.rungs import describe

        summary.messages.append(f"study {study.study_name!r} screens as it began ({describe(screening)}); "
                                f"a new --study screens as the space says ({describe(space.screening)})")
        space = replace(space, screening=screening)
    if order != space.architectures.order:
        from sweeper.sweep.candidates import ORDER_SEED
        from sweeper.zoo.order import order_candidates

        candidates = order_candidates(candidates, order, seed=ORDER_SEED)
        summary.messages.append(f"study {study.study_name!r} screens in the order it began with ({order}); a new "
                                f"--study screens in architectures.order ({space.architectures.order})")
    if stale:
        summary.messages.append(f"{stale} trial(s) of dead local workers marked FAIL and retried")
    states, why = rung_states(space, storage, artifacts, study.study_name)
    if why:
        summary.messages.append(why)
    runner = Runner(study, data, objective=space.objective, params_of={c.key: c.params for c in candidates},
                    events=events, artifacts=folder, states=states)
    plan = ScreenThenRace(space, [CandidateKey.of(c.arch, c.encoder) for c in candidates],
                          rng=random.Random(os.getpid() ^ int(time.time())), choices=stored_choices(study))
    counts = runner.run(plan)
    summary.trained, summary.failed, summary.pruned = counts.trained, counts.failed, counts.pruned
    summary.reused = counts.reused
    summary.messages += counts.messages
    if counts.went_on_note():
        summary.messages.append(counts.went_on_note())
    summary.ranking = rank_records(read_records(study), rope=space.rope,
                                   baseline=StudyRecord.from_study(study).baseline_miou)
    if summary.ranking is not None:
        from sweeper import stats

        top = summary.ranking.rows[0]
        with writes_to(shown_url(storage)):
            write_study(study, ranked_best={"candidate": top.candidate.key, "mean_miou": top.mean, "n": top.n,
                                            "verdicts": {v: summary.ranking.count(v) for v in stats.VERDICTS}})
    return summary


def rung_states(space, storage: str | None, artifacts, study_name: str):
    """``(StateFolder or None, why not or None)``: where a screen by rungs keeps each rung's state
    so that the next rung goes on from it (:mod:`sweeper.sweep.states`). None without rungs, and,
    with a reason to print, under a learning-rate schedule (a shorter run is then not the start
    of a longer one) or on a database server without ``--artifacts`` (no folder to share)."""
    from sweeper.sweep.states import StateFolder

    if space.screening is None or space.hparams or not space.screening.go_on:
        return None, None
    if space.base.scheduler != "none":
        return None, (f"each rung trains from scratch: the recipe's learning-rate schedule ({space.base.scheduler}) "
                      "depends on the epochs, so a shorter run is not the start of a longer one")
    try:
        folder = artifact_dir(storage, artifacts)
    except SweeperError:
        return None, ("each rung trains from scratch: a database server has no folder for the rungs' saved states; "
                      "give --artifacts a folder every worker reaches to let each rung go on from the one before")
    if not folder.parent.is_dir():
        raise SweeperError(f"--artifacts: folder {folder.parent} does not exist")
    return StateFolder(folder, study_name), None


def _study_order(study, space) -> str:
    """The catalogue order a study screens in: the one it began with, so that a resumed study's
    ``--trials`` extends its own list. Studies of sweeper versions before the spread order, with
    trials already, screened smallest first (``params``)."""
    if space.architectures.pairs:
        return space.architectures.order  # explicit pairs keep their own order whatever it says
    stored = StudyRecord.from_study(study).order
    if stored is None:
        stored = "params" if study.get_trials(deepcopy=False) else space.architectures.order
        write_study(study, order=stored)
    return stored


def study_screening(study, space):
    """The screen by rungs a study climbs (:class:`~sweeper.sweep.rungs.Rungs`, or None): the one
    it began with, so that a resumed study promotes by the rule its finished rungs were run by and
    a changed ``keep`` (zoo-50m's went from a third to a half) never reopens a screen. Studies of
    earlier versions record none: one with trials but no rung run screened at the full budget (as
    every study did before rungs); one with rung runs climbs the space's rungs."""
    from sweeper.sweep.records import RUNG
    from sweeper.sweep.rungs import Rungs

    stored = StudyRecord.from_study(study).screening
    if stored is None:
        trials = study.get_trials(deepcopy=False)
        began = space.screening
        if trials and not any(t.user_attrs.get("phase") == RUNG for t in trials):
            began = None
        stored = {"rungs": list(began.epochs), "keep": began.keep} if began is not None else {"rungs": []}
        write_study(study, screening=stored)
    if not stored.get("rungs"):
        return None
    go_on = space.screening.go_on if space.screening is not None else True  # not pinned: no result depends on it
    return Rungs(tuple(int(e) for e in stored["rungs"]), float(stored["keep"]), go_on)


def trivial_miou(data) -> float:
    """mIoU of predicting the majority class everywhere on the first fold's validation images."""
    from sweeper.metrics import majority_class_miou

    fold = data.folds[0]
    return majority_class_miou((fold.val_data.read_mask(int(i)) for i in fold.val_idx), data.num_classes)


def check_has_labels(data) -> None:
    """A training file whose every mask would be background gives a meaningless sweep."""
    fold = data.folds[0]
    if not any(info.classes for info in fold.train_data.images):
        raise SweeperError(f"{fold.train_data.annotation_file}: no image has a usable annotation, so every mask "
                           "would be background (see the warnings above, or run sweeper check)")


def check_batch_size(space, data) -> None:
    """A batch larger than a fold's training images gives no batch at all (the last partial batch
    is dropped): refuse it before the study is opened, naming the field."""
    sizes = [space.base.batch_size]
    sizes += [int(v) for p in space.hparams if p.name == "batch_size"
              for v in (p.choices if p.type == "categorical" else (p.high,))]
    for fold in data.folds:
        if fold.index not in space.folds:
            continue
        n = len(fold.train_idx)
        if max(sizes) > n:
            field = "recipe.batch_size" if space.base.batch_size > n else "hparams.batch_size"
            raise SweeperError(f"{space.source}: {field}: batch size {max(sizes)} is larger than the {n} training "
                               f"images of fold {fold.index}, so no batch would be trained")


#: Recipe fields that may differ between the workers and runs of one study: where it runs, not
#: what it trains (the data and its split are compared by their own key).
RECIPE_FREE = ("device", "num_workers", "data")


def recipe_changes(stored: dict, current: dict) -> list[str]:
    """The recipe keys (``data.subsample``, ``epochs``) whose values differ; keys one side lacks
    (a study of an older sweeper) are not compared."""
    changed = []
    for key in sorted(set(stored) & set(current)):
        if key in RECIPE_FREE:
            continue
        a, b = stored[key], current[key]
        if isinstance(a, dict) and isinstance(b, dict):
            changed += [f"{key}.{k}" for k in recipe_changes(a, b)]
        elif a != b:
            changed.append(key)
    return changed


def name_the_metric(study) -> None:
    """Tell Optuna the objective is mIoU, so the dashboard's axis and ``optuna trials`` say so
    (not "Objective 0"). Written only once the study has passed its checks."""
    if study.metric_names is None:
        study.set_metric_names(["mIoU"])


def check_same_split(study, space, data) -> None:
    """A resumed study must use the split and the recipe it was made with, or its runs are not
    comparable (a 2-epoch repeat averaged with 1-epoch runs, a candidate at another ``lr``)."""
    from sweeper.splits import split_key

    fold = data.folds[0]
    key = (split_key(space.base.split, fold.train_data.images)
           + f"/{space.base.data.subsample}/{space.base.data.val_json}")
    stored = StudyRecord.from_study(study).split_key
    if stored is None:
        write_study(study, split_key=key, space=space.source, recipe=space.base.to_dict())
    elif stored != key:
        raise SweeperError(f"study {study.study_name!r} was made with a different data split or data; "
                           "use a new --study name (runs on different splits are not comparable)")
    recipe = clean(space.base.to_dict())
    stored_recipe = StudyRecord.from_study(study).recipe
    if isinstance(stored_recipe, dict):
        changed = recipe_changes(stored_recipe, recipe)
        if changed:
            shown = ", ".join(f"{k} ({_at(stored_recipe, k)!r} -> {_at(recipe, k)!r})" for k in changed[:6])
            raise SweeperError(f"study {study.study_name!r} was made with another recipe: {shown}; runs of "
                               "different recipes are not comparable: use a new --study name, or undo the change")


def _at(mapping: dict, dotted: str):
    for part in dotted.split("."):
        mapping = mapping.get(part) if isinstance(mapping, dict) else None
    return mapping


def run_noise(space, *, arch: str | None, encoder: str | None, n_seeds: int, storage: str | None,
              study_name: str, events=None) -> list[str]:
    """Train one baseline with ``n_seeds`` seeds into the study; lines that say what it means."""
    import numpy as np

    from sweeper import stats
    from sweeper.sweep.candidates import resolve_candidates
    from sweeper.sweep.plans import FixedUnits
    from sweeper.sweep.runner import Runner
    from sweeper.sweep.workers import fail_dead_local_trials
    from sweeper.training import check_pair_names, prepare_data

    data = prepare_data(space.base)
    if (arch is None) != (encoder is None):
        raise SweeperError("--arch and --encoder go together (or leave both out for the space's smallest candidate)")
    params_of = {}
    if arch is None:
        first = min(resolve_candidates(space, data.num_classes), key=lambda c: (c.params, c.key))
        arch, encoder, params_of = first.arch, first.encoder, {first.key: first.params}
    else:
        check_pair_names(arch, encoder)
    space = replace(space, seeds=tuple(range(n_seeds)), racing=False, hparams=(), folds=space.folds[:1],
                    pruner=replace(space.pruner, type="none", options={}))
    study = open_study(space, storage, study_name)
    with writes_to(shown_url(storage)):
        check_same_split(study, space, data)
        name_the_metric(study)
        fail_dead_local_trials(study)
    key = CandidateKey.of(arch, encoder)
    units = [Unit(key, seed, space.folds[0], NOISE) for seed in space.seeds]
    Runner(study, data, objective=space.objective, params_of=params_of, events=events).run(FixedUnits(space, units))
    runs = completed_runs(read_records(study)).get(key)
    values = np.array([v for _, v in runs.runs]) if runs else np.array([])
    if len(values) < 2:
        raise SweeperError(f"only {len(values)} of {n_seeds} runs finished; see the failed trials in the study")
    sigma = float(np.std(values, ddof=1))
    lines = [
        f"baseline {arch}/{encoder}: {len(values)} seeds, mIoU mean {values.mean():.4f}, sd (sigma) {sigma:.4f}",
        "smallest difference detectable with 80% power at alpha 0.05 (two candidates, paired seeds):",
    ]
    for n in (3, 5, 10):
        lines.append(f"  {n:>2} seeds each: {stats.min_detectable_effect(sigma, n):.4f} mIoU")
    needed = stats.seeds_needed(sigma, space.rope)
    lines.append(f"seeds per candidate to resolve a difference of {space.rope:.3f} (the ROPE): "
                 + (str(needed) if needed is not None else "more than 10000"))
    return lines


def load_study(study_name: str | None, storage: str | None, space: str | None):
    """``(study, rope)`` of an existing study; with one study in the storage, no name is needed.

    The ROPE comes from the space (``--space``, or the default space when its name matches).
    """
    import optuna

    from sweeper.sweep.space import load_space

    store = open_storage(storage, must_exist=True)
    rope = 0.01
    explicit = study_name is not None
    if space is not None or not explicit:
        try:
            spec = load_space(space)
            rope = spec.rope
            study_name = study_name or spec.name
        except SweeperError:
            if space is not None:
                raise
    names = study_names(store, storage)
    if study_name not in names:
        if len(names) == 1 and not explicit and space is None:
            study_name = names[0]  # one study there: no need to name it
        else:
            listed = ", ".join(names) or "none"
            raise SweeperError(f"--study: no study {study_name!r} in {shown_url(storage)}"
                               f"{did_you_mean(str(study_name), names)}; studies there: {listed}")
    return optuna.load_study(study_name=study_name, storage=store), rope


def load_trials(study_name: str | None, storage: str | None, space: str | None):
    """``(name, trials, rope)`` of an existing study (see :func:`load_study`)."""
    study, rope = load_study(study_name, storage, space)
    return study.study_name, study.get_trials(deepcopy=False), rope
