"""Sweeper's own cost per unit, training stubbed out, against Optuna's own floor on the same storage.

    python benchmarks/scheduler.py                    # 100, 1,000 and 3,000 trials; SQLite, journal, PostgreSQL
    python benchmarks/scheduler.py --quick            # 100 and 1,000 trials, fewer units per cell
    python benchmarks/scheduler.py --sizes 3000 --storages sqlite --profile

What is timed: ``Runner.run`` with the real :class:`~sweeper.sweep.plans.ScreenThenRace` plan, so
every unit goes through what ``tune`` does between two trainings: read the records, ask the plan
(racing: :func:`sweeper.stats.next_candidates` over every finished run), enqueue the unit, let
``study.optimize(n_trials=1)`` pop it, check for duplicates, write the unit's config and worker,
report 8 epochs (``trial.report`` and the growing ``history`` attribute, as ``on_epoch`` does) and
write the result's attributes. Only ``sweeper.training.train_run`` is replaced, by a stub that
calls ``on_epoch`` 8 times and returns a result at once; no data is prepared (the runner passes
``data`` through to training only). A unit's seconds are the interval from one ``run_unit`` call
to the next (the read and the plan's decision of the next unit included); the table shows their
median, and the mean over the cell's units. A second table splits the mean by component
(exclusive seconds: reading the records, the plan, Optuna's claim, the storage writes, the
runner's own trial logic, garbage collection), over the units from the second on: the first pays
one-time costs (a first full collection of everything the process holds, imports), shown apart.

Each storage is pre-filled (not by running units): 100 candidates (10
architectures x 10 encoders) screened with seed 0, then further seeds round-robin, with the user
attributes sweeper writes (config, worker, an 8-epoch history, per-class IoU, versions...), 8
intermediate values and the arch/encoder params; one trial in 40 is a PRUNED duplicate and one in
100 a FAIL out of memory. Values are seeded: candidate i's mean mIoU is 0.62 - 0.002 i, seed
noise sd 0.015, so racing goes on for the whole run. The cells run in order of size on one
storage per kind, topped up to the size before each. A journal is filled with
``study.add_trials``; RDB storages in one transaction through Optuna's table models and read back
to check (``add_trials`` takes ~20 ms a trial there; ``--fill optuna`` uses it anyway).

The plain alternatives, on the same storage and study, just after sweeper's units:

- ``floor``: ``study.optimize(lambda t: 0.0, n_trials=1)`` per unit: what any Optuna trial costs
  here (ask, tell, the sampler's hooks), with nothing written.
- ``bare``: the same Optuna calls sweeper's unit needs, without sweeper: ``enqueue_trial`` with the
  unit's attributes, then ``optimize(n_trials=1)`` whose objective reports 8 epochs with the
  history attribute and sets the same result attributes. Its trials carry ``empty=True``, so the
  plan ignores them. sweeper minus bare is what sweeper's own logic costs (reading, planning,
  duplicate checks).

PostgreSQL: ``--postgres URL`` (a server you run; a study of a unique name is made there and
deleted after), or by default a private server on 127.0.0.1 started from the machine's
binaries the way the tests do (``tests/pg.py``); without either the row is skipped with a line
saying why. On a shared 2-core machine trust ratios more than absolute seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL_S = 0.25
EPOCHS = 8
ARCHS = ["unet", "unetplusplus", "manet", "linknet", "fpn", "pspnet", "deeplabv3", "deeplabv3plus", "pan", "upernet"]
ENCODERS = ["resnet18", "resnet34", "resnet50", "mobilenet_v2", "efficientnet-b0", "efficientnet-b1",
            "densenet121", "se_resnet50", "resnext50_32x4d", "dpn68"]
CLASSES = [f"class_{i}" for i in range(12)]
SEEDS = 64


# --------------------------------------------------------------------------- the study's contents

def make_space():
    from sweeper.sweep.space import parse_space

    pairs = [f"{a}/{e}" for a in ARCHS for e in ENCODERS]
    return parse_space({"name": "scheduler-bench", "recipe": {"epochs": EPOCHS}, "architectures": {"pairs": pairs},
                        "seeds": SEEDS, "racing": True, "pruner": "none", "trials": len(pairs)},
                       source="benchmarks/scheduler.py")


def candidate_keys():
    from sweeper.sweep.records import CandidateKey

    return [CandidateKey.of(a, e) for a in ARCHS for e in ENCODERS]


def true_value(index: int, seed: int) -> float:
    """A run's mIoU: the candidate's mean plus seeded noise (the same for the stub and the pre-fill)."""
    return 0.62 - 0.002 * index + random.Random(f"{index}-{seed}").gauss(0.0, 0.015)


def epoch_rows(final: float) -> list[dict]:
    return [{"epoch": e, "train_loss": round(1.5 - 0.1 * e, 6), "val_loss": round(1.4 - 0.08 * e, 6),
             "miou": final * (e + 1) / EPOCHS, "pixel_accuracy": 0.5 + 0.05 * e, "seconds": 1.234}
            for e in range(EPOCHS)]


VERSIONS = {"torch": "2.14.1", "segmentation_models_pytorch": "0.6.0", "timm": "1.0.31", "optuna": "5.0.0",
            "sweeper": "0.2.0", "python": "3.11"}


def result_attrs(value: float) -> dict:
    """The attributes a finished run adds (what ``Runner._train`` writes after training)."""
    return {"params_count": 14_328_972, "best_epoch": EPOCHS - 1,
            "per_class_iou": {c: value + 0.001 * i for i, c in enumerate(CLASSES)}, "wall_time_s": 312.5,
            "images_per_s": 41.25, "peak_memory_mb": 2048.5, "device": "cuda", "versions": VERSIONS}


def prefill_trials(space, keys, held: set[str], count: int, start_number: int) -> list:
    """``count`` finished trials as sweeper leaves them, for units not yet ``held``."""
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState

    from sweeper.sweep.records import REPEAT, SCREEN, Unit, clean

    choices = {"arch": CategoricalDistribution(tuple(sorted(ARCHS))),
               "encoder": CategoricalDistribution(tuple(sorted(ENCODERS)))}
    worker = {"host": "gpu-node-07", "pid": 41234, "started": 123456}
    out = []
    number = start_number
    for seed in range(SEEDS):
        for index, key in enumerate(keys):
            if len(out) >= count:
                return out
            unit = Unit(key, seed, 0, SCREEN if seed == 0 else REPEAT)
            if unit.key in held:
                continue
            held.add(unit.key)
            value = true_value(index, seed)
            history = epoch_rows(value)
            attrs = dict(unit.user_attrs(), config=clean(_config_of(space, unit).to_dict()), worker=worker,
                         history=history)
            params = {"arch": key.arch, "encoder": key.encoder}
            common = dict(params=params, distributions=choices, system_attrs={"fixed_params": {}},
                          intermediate_values={e: h["miou"] for e, h in enumerate(history)})
            if seed > 0 and number % 40 == 39:  # a claim race lost: PRUNED before training
                out.append(optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs=dict(
                    unit.user_attrs(), duplicate_of=number - 1), params=params, distributions=choices))
                number += 1
                if len(out) >= count:
                    return out
            if number % 100 == 99:  # a run that failed by itself (its unit is settled)
                out.append(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs=dict(
                    attrs, fail_kind="oom", fail_reason="CUDA out of memory"), **common))
            else:
                out.append(optuna.trial.create_trial(state=TrialState.COMPLETE, value=value,
                                                     user_attrs=dict(attrs, **result_attrs(value)), **common))
            number += 1
    return out


def bulk_add_trials(study, trials: list) -> None:
    """``study.add_trials`` for RDB storages in one transaction, through Optuna's own table models.

    ``add_trials`` queries and writes each attribute in turn (~20 ms a trial here, several minutes
    for the pre-fills); this writes the same rows at once. Only the pre-fill uses it, and it is
    checked: the trials read back through Optuna must equal the ones meant, or the run stops
    (``--fill optuna`` then uses ``add_trials``).
    """
    import json

    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models

    backend = getattr(study._storage, "_backend", study._storage)
    first = len(study.get_trials(deepcopy=False))
    rows = []
    for i, t in enumerate(trials):
        trial = models.TrialModel(number=first + i, study_id=study._study_id, state=t.state)
        trial.datetime_start, trial.datetime_complete = t.datetime_start, t.datetime_complete
        rows.append(trial)
        if t.value is not None:
            value, kind = models.TrialValueModel.value_to_stored_repr(t.value)
            rows.append(models.TrialValueModel(trial=trial, objective=0, value=value, value_type=kind))
        for name, value in t.params.items():
            distribution = t.distributions[name]
            rows.append(models.TrialParamModel(trial=trial, param_name=name,
                                               param_value=distribution.to_internal_repr(value),
                                               distribution_json=distribution_to_json(distribution)))
        for model, attrs in ((models.TrialUserAttributeModel, t.user_attrs),
                             (models.TrialSystemAttributeModel, t.system_attrs)):
            rows += [model(trial=trial, key=key, value_json=json.dumps(value)) for key, value in attrs.items()]
        for step, value in t.intermediate_values.items():
            stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
            rows.append(models.TrialIntermediateValueModel(trial=trial, step=step, intermediate_value=stored,
                                                           intermediate_value_type=kind))
    session = backend.scoped_session()
    try:
        session.add_all(rows)
        session.commit()
    finally:
        session.close()


def check_filled(storage, name: str, trials: list, first: int) -> None:
    import optuna

    back = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)[first:first + len(trials)]

    def view(t):
        return (t.state, t.value, t.params, t.user_attrs, t.intermediate_values)

    if len(back) != len(trials) or any(view(a) != view(b) for a, b in zip(back, trials)):
        raise SystemExit("the bulk pre-fill did not read back as written (an Optuna schema change?); "
                         "run again with --fill optuna")


def _config_of(space, unit):
    from dataclasses import replace

    c = unit.candidate
    return replace(space.base, arch=c.arch, encoder=c.encoder, fold=unit.fold)


# --------------------------------------------------------------------------- the stubbed training

def fake_train_run(config, seed, *, data=None, on_epoch=None, progress=None, save_best=None, on_step=None):
    """What ``train_run`` hands the runner, at once: 8 epochs through ``on_epoch``, then a result."""
    from sweeper.training.loop import EpochMetrics, RunResult

    index = ARCHS.index(config.arch) * len(ENCODERS) + ENCODERS.index(config.encoder)
    value = true_value(index, seed)
    history = []
    for row in epoch_rows(value)[:config.epochs]:
        m = EpochMetrics(epoch=row["epoch"], train_loss=row["train_loss"], val_loss=row["val_loss"],
                         miou=row["miou"], pixel_accuracy=row["pixel_accuracy"],
                         iou=[row["miou"]] * len(CLASSES), seconds=row["seconds"])
        history.append(m)
        if on_step is not None:
            on_step(0, 1)
        if on_epoch is not None:
            on_epoch(m)
    return RunResult(config=config.to_dict(), seed=seed, history=history, best_epoch=len(history) - 1,
                     best_miou=history[-1].miou, params=14_328_972, class_names=CLASSES, wall_time_s=312.5,
                     images_per_s=41.25, peak_memory_mb=2048.5, device="cuda", versions=VERSIONS)


def limited_plan(space, keys, study, units: int):
    """ScreenThenRace that stops after ``units`` units (and never waits: one worker here)."""
    from sweeper.sweep.plans import ScreenThenRace
    from sweeper.sweep.records import Unit, stored_choices

    class Limited(ScreenThenRace):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.left = units
            self.phases: Counter = Counter()

        def next_unit(self, records):
            if self.left <= 0:
                return None
            step = super().next_unit(records)
            if not isinstance(step, Unit):
                self.phases[f"stopped: {step}"] += 1
                return None
            self.left -= 1
            self.phases[step.phase] += 1
            return step

    return Limited(space, keys, rng=random.Random(0), choices=stored_choices(study))


# --------------------------------------------------------------------------- one cell

class Components:
    """Exclusive seconds by component of sweeper's units: a call inside another is counted in its
    own component only (the writes of a trial are not the trial's logic)."""

    NAMES = ("read", "plan", "claim", "writes", "trial", "gc")

    def __init__(self):
        self.seconds = dict.fromkeys(self.NAMES, 0.0)
        self._stack: list[list] = []

    def wrap(self, name: str, function):
        def timed(*args, **kwargs):
            frame = [name, time.perf_counter(), 0.0]  # name, start, seconds of nested components
            self._stack.append(frame)
            try:
                return function(*args, **kwargs)
            finally:
                self._stack.pop()
                spent = time.perf_counter() - frame[1]
                self.seconds[name] += spent - frame[2]
                if self._stack:
                    self._stack[-1][2] += spent

        return timed

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.NAMES, 0.0)


def instrument(runner, plan, study, components: Components):
    """Wrap what a unit does: reads of the records, the plan, the claim (enqueue and Optuna's ask
    and tell), the storage writes, the runner's own trial logic, and garbage collections. Returns
    a function that undoes the class-level wrappers."""
    import optuna

    cache = getattr(runner, "_cache", None)  # the runner before this change had no record cache
    if cache is not None:
        cache.read = components.wrap("read", cache.read)
    else:
        runner.records = components.wrap("read", runner.records)
    plan.next_unit = components.wrap("plan", plan.next_unit)
    plan.progress = components.wrap("plan", plan.progress)
    study.enqueue_trial = components.wrap("claim", study.enqueue_trial)
    study.optimize = components.wrap("claim", study.optimize)
    runner._objective = components.wrap("trial", runner._objective)
    store = study._storage
    store.set_trial_param = components.wrap("writes", store.set_trial_param)
    saved = {name: getattr(optuna.trial.Trial, name) for name in ("set_user_attr", "report")}
    for name, method in saved.items():
        setattr(optuna.trial.Trial, name, components.wrap("writes", method))
    collect = gc.collect
    gc.collect = components.wrap("gc", collect)

    def undo():
        for name, method in saved.items():
            setattr(optuna.trial.Trial, name, method)
        gc.collect = collect
        del study.enqueue_trial, study.optimize, store.set_trial_param

    return undo


def time_sweeper(study, space, keys, units: int, profile: cProfile.Profile | None):
    from sweeper.sweep.runner import Runner

    runner = Runner(study, None, params_of={k.pair: 14_328_972 for k in keys}, poll_s=0.05)
    plan = limited_plan(space, keys, study, units)
    components = Components()
    undo = instrument(runner, plan, study, components)
    marks: list[float] = []
    original = runner.run_unit

    def run_unit(unit):
        marks.append(time.perf_counter())
        if len(marks) == 2:  # components from the second unit on, as the median: the first pays
            components.reset()  # one-time costs (a first full collection, imports)
        return original(unit)

    runner.run_unit = run_unit
    start = time.perf_counter()
    if profile is not None:
        profile.enable()
    try:
        runner.run(plan)
    finally:
        if profile is not None:
            profile.disable()
        end = time.perf_counter()
        undo()
    marks.append(end)
    # One interval per unit: its claim, trial and writes, then the next read of the records and
    # the plan's next decision (the last one's ends with the read that finds nothing to do).
    per_unit = [b - a for a, b in zip(marks[:-1], marks[1:])]
    done = runner.counts.trained
    counted = max(len(per_unit) - 1, 1)
    shares = {name: seconds / counted for name, seconds in components.seconds.items()}
    shares["rest"] = (end - marks[1]) / counted - sum(shares.values()) if len(marks) > 2 else float("nan")
    return per_unit, (end - start) / max(done, 1), done, plan.phases, shares


def time_floor(study, units: int) -> list[float]:
    times = []
    for _ in range(units):
        start = time.perf_counter()
        study.optimize(lambda t: 0.0, n_trials=1)
        times.append(time.perf_counter() - start)
    return times


def time_bare(study, space, keys, units: int) -> list[float]:
    """The calls a unit needs, made directly: enqueue with the unit's attributes, 8 reports with
    the history attribute, the config, worker and result attributes."""
    from sweeper.sweep.records import REPEAT, Unit, clean

    worker = {"host": "bench", "pid": os.getpid(), "started": 1}
    times = []
    for i in range(units):
        unit = Unit(keys[i % len(keys)], 10_000 + i, 0, REPEAT)
        config = clean(_config_of(space, unit).to_dict())
        value = true_value(i % len(keys), 10_000 + i)

        def objective(trial):
            trial.set_user_attr("config", config)
            trial.set_user_attr("worker", worker)
            history = []
            for row in epoch_rows(value):
                trial.report(row["miou"], row["epoch"])
                history.append(row)
                trial.set_user_attr("history", history)
            for name, v in result_attrs(value).items():
                trial.set_user_attr(name, v)
            return value

        start = time.perf_counter()
        study.enqueue_trial({}, user_attrs=dict(unit.user_attrs(), empty=True))
        study.optimize(objective, n_trials=1)
        times.append(time.perf_counter() - start)
    return times


# --------------------------------------------------------------------------- storages

class Storage:
    """One kind of storage: how to open it, and how to clean up."""

    def __init__(self, kind: str, url: str, cleanup=None):
        self.kind, self.url, self.cleanup = kind, url, cleanup or (lambda: None)

    def open(self):
        from sweeper.sweep.storage import open_storage

        return open_storage(self.url)

    def open_for_fill(self):
        """The storage for pre-filling: SQLite without waiting for the disk at each commit (the
        timed part always goes through :meth:`open`, as ``tune`` does)."""
        store = self.open()
        if self.kind == "sqlite":
            from sqlalchemy import event

            def no_sync(connection, record):
                connection.execute("PRAGMA synchronous=OFF")

            event.listen(store.engine, "connect", no_sync)
            store.engine.dispose()
        return store


def postgres_storage(option: str, folder: Path) -> tuple[Storage | None, str]:
    if option == "none":
        return None, "postgres: skipped (--postgres none)"
    if option != "auto":
        return Storage("postgres", option), ""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from pg import PostgresServer, find_bindir
    except ImportError as exc:
        return None, f"postgres: skipped (tests/pg.py not importable: {exc})"
    import importlib.util

    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is None:
        return None, "postgres: skipped (no driver: pip install psycopg2-binary)"
    bindir = find_bindir()
    if bindir is None:
        return None, "postgres: skipped (no server binaries; give --postgres URL of a server)"
    server = PostgresServer(bindir)
    try:
        url = server.start()
    except Exception as exc:  # noqa: BLE001 - report and go on with the other storages
        server.stop()
        return None, f"postgres: skipped (could not start a private server: {exc})"
    return Storage("postgres", url, server.stop), f"postgres: private server {bindir} (fsync off, as in the tests)"


def storages(names: list[str], option: str, folder: Path) -> tuple[list[Storage], list[str]]:
    out, notes = [], []
    for name in names:
        if name == "sqlite":
            out.append(Storage("sqlite", f"sqlite:///{folder / 'bench.db'}"))
        elif name == "journal":
            out.append(Storage("journal", str(folder / "bench.journal")))
        elif name == "postgres":
            store, note = postgres_storage(option, folder)
            notes.append(note)
            if store is not None:
                out.append(store)
        else:
            raise SystemExit(f"--storages: unknown storage {name!r} (sqlite, journal, postgres)")
    return out, notes


# --------------------------------------------------------------------------- the run

def run_storage(store: Storage, sizes: list[int], units: int, floor_units: int, profile_top: int,
                fill: str) -> list[dict]:
    import optuna

    from sweeper.sweep.records import read_records

    space = make_space()
    keys = candidate_keys()
    name = f"scheduler-bench-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(study_name=name, storage=store.open(), direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0))
    rows = []
    held: set[str] = set()
    try:
        for size in sizes:
            have = len(study.get_trials(deepcopy=False))
            held |= {r.unit.key for r in read_records(study) if r.unit is not None}
            start = time.perf_counter()
            if size > have:
                filler = optuna.load_study(study_name=name, storage=store.open_for_fill())
                trials = prefill_trials(space, keys, held, size - have, have)
                if store.kind == "journal" or fill == "optuna":
                    filler.add_trials(trials)
                else:
                    bulk_add_trials(filler, trials)
                    check_filled(store.open(), name, trials, have)
                del filler
            fill_s = time.perf_counter() - start
            # A fresh study object, as a worker that starts now: its cache is empty.
            study = optuna.load_study(study_name=name, storage=store.open(),
                                      sampler=optuna.samplers.TPESampler(seed=0))
            gc.collect()
            profile = cProfile.Profile() if profile_top and size == sizes[-1] else None
            per_unit, mean_s, done, phases, shares = time_sweeper(study, space, keys, units, profile)
            floor = time_floor(study, floor_units)
            bare = time_bare(study, space, keys, floor_units)
            row = {"storage": store.kind, "trials": size, "fill_s": fill_s, "units": done, "shares": shares,
                   "first_s": per_unit[0] if per_unit else float("nan"),
                   "phases": dict(phases), "sweeper_s": statistics.median(per_unit) if per_unit else float("nan"),
                   "sweeper_mean_s": mean_s, "floor_s": statistics.median(floor), "bare_s": statistics.median(bare)}
            rows.append(row)
            print_row(row)
            if profile is not None:
                text = io.StringIO()
                pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(profile_top)
                print(f"\nprofile: {store.kind}, {size} trials, {done} units, by cumulative time\n"
                      + _trim(text.getvalue()))
                text = io.StringIO()
                pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(profile_top)
                print(f"profile: {store.kind}, {size} trials, by own time\n" + _trim(text.getvalue()))
    finally:
        with_errors_ignored(lambda: optuna.delete_study(study_name=name, storage=store.open()))
    return rows


def _trim(report: str) -> str:
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(line.replace(str(ROOT) + "/", "").replace(sys.prefix + "/", "")[:150]
                     for line in lines[start:] if line.strip())


def with_errors_ignored(call) -> None:
    try:
        call()
    except Exception:  # noqa: BLE001 - clean-up only
        pass


HEADER = (f"{'storage':<9} {'trials':>6} {'fill s':>7} {'units':>5} {'sweeper s/unit':>14} {'(mean)':>7} "
          f"{'floor s':>8} {'bare s':>7} {'sw/floor':>8} {'sw/bare':>7}  racing?")


def print_row(row: dict) -> None:
    racing = ",".join(f"{k} {v}" for k, v in sorted(row["phases"].items()))
    print(f"{row['storage']:<9} {row['trials']:>6} {row['fill_s']:>7.1f} {row['units']:>5} "
          f"{row['sweeper_s']:>14.3f} {row['sweeper_mean_s']:>7.3f} {row['floor_s']:>8.3f} {row['bare_s']:>7.3f} "
          f"{row['sweeper_s'] / row['floor_s']:>8.1f} {row['sweeper_s'] / row['bare_s']:>7.2f}  {racing}",
          flush=True)


COMPONENTS = {
    "read": "reading the records (get_trials and parsing)",
    "plan": "the plan's next_unit and progress",
    "claim": "enqueue_trial and Optuna's ask/tell around the objective",
    "writes": "storage writes in the trial (user attrs, reports, params)",
    "trial": "the runner's own trial logic and the training stub",
    "gc": "garbage collection after the trial",
    "rest": "the rest of the loop (events, run_unit, signals)",
}


def print_components(rows: list[dict]) -> None:
    """Where a unit's seconds go: means over each cell's units from the second on."""
    print()
    print("where sweeper's seconds per unit go (means over units 2..N; the first unit pays one-time costs):")
    for name, meaning in COMPONENTS.items():
        print(f"  {name:<7} {meaning}")
    header = f"{'storage':<9} {'trials':>6} " + " ".join(f"{n:>7}" for n in COMPONENTS) + f" {'sum':>7} {'1st':>7}"
    print(header)
    print("-" * len(header))
    for r in rows:
        shares = r["shares"]
        print(f"{r['storage']:<9} {r['trials']:>6} " + " ".join(f"{shares[n]:>7.3f}" for n in COMPONENTS)
              + f" {sum(shares.values()):>7.3f} {r['first_s']:>7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=None, help="trials already in the storage (default 100,1000,3000)")
    parser.add_argument("--storages", default="sqlite,journal,postgres")
    parser.add_argument("--units", type=int, default=None, help="sweeper units timed per cell (default 12)")
    parser.add_argument("--floor-units", type=int, default=None, help="floor and bare trials per cell (default 6)")
    parser.add_argument("--postgres", default="auto", help="auto (a private server), none, or a URL")
    parser.add_argument("--fill", choices=("bulk", "optuna"), default="bulk",
                        help="pre-fill RDB storages in one transaction (bulk, checked) or with study.add_trials")
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 trials, 6 units per cell")
    parser.add_argument("--profile", type=int, nargs="?", const=25, default=0,
                        help="cProfile sweeper's units at the largest size: top N functions (default 25)")
    args = parser.parse_args()
    sizes = [int(s) for s in (args.sizes or ("100,1000" if args.quick else "100,1000,3000")).split(",")]
    units = args.units or (6 if args.quick else 12)
    floor_units = args.floor_units or (3 if args.quick else 6)

    wall = time.perf_counter()
    from sweeper.sweep.storage import quiet_optuna

    quiet_optuna()
    import optuna

    import sweeper.training

    sweeper.training.train_run = fake_train_run  # the runner imports it from the package at each unit
    print(f"cores {os.cpu_count()}  load {' '.join(f'{x:.2f}' for x in os.getloadavg())}  python "
          f"{sys.version.split()[0]}  optuna {optuna.__version__}  goal <= {GOAL_S} s/unit (sweeper's own)")
    print(f"sizes {sizes}  units per cell {units}  floor/bare trials per cell {floor_units}  epochs {EPOCHS}  "
          f"candidates {len(ARCHS) * len(ENCODERS)}  seeds {SEEDS}")
    folder = Path(tempfile.mkdtemp(prefix="sweeper-sched-"))
    stores, notes = storages(args.storages.split(","), args.postgres, folder)
    for note in notes:
        print(note)
    print()
    print(HEADER)
    print("-" * len(HEADER))
    rows = []
    try:
        for store in stores:
            try:
                rows += run_storage(store, sizes, units, floor_units, args.profile, args.fill)
            finally:
                store.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print_components(rows)
    print()
    worst = max((r["sweeper_s"] for r in rows), default=float("nan"))
    own = max((r["sweeper_s"] - r["bare_s"] for r in rows), default=float("nan"))
    print(f"worst sweeper s/unit {worst:.3f} (goal <= {GOAL_S}: {'met' if worst <= GOAL_S else 'NOT met'}); "
          f"worst sweeper - bare {own:.3f} s/unit")
    for kind in dict.fromkeys(r["storage"] for r in rows):
        cells = [r for r in rows if r["storage"] == kind]
        if len(cells) > 1:
            first, last = cells[0], cells[-1]
            per_k = 1000 / (last["trials"] - first["trials"])
            print(f"{kind}: s/unit at {last['trials']} / at {first['trials']} trials: "
                  f"{last['sweeper_s'] / first['sweeper_s']:.2f} (1.00 = flat); growth per 1,000 trials: sweeper "
                  f"{1000 * per_k * (last['sweeper_s'] - first['sweeper_s']):+.1f} ms, Optuna alone (bare) "
                  f"{1000 * per_k * (last['bare_s'] - first['bare_s']):+.1f} ms")
    print(f"total {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
