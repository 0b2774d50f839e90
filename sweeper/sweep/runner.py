"""The runner: claims the unit a plan names, trains it, and records what happened.

A worker claims a unit by enqueueing it and running ``study.optimize(n_trials=1)``, which pops
the oldest waiting trial atomically. If two workers claim the same unit in the same instant, the
trial with the higher number sees the lower one and ends as PRUNED with ``duplicate_of`` set,
before training: no unit is trained twice. Finished trials are never re-run; a trial that FAILed
because of the run itself (out of memory, NaN loss, a pair that does not build) is not retried
either, since the same seed fails the same way; a trial killed with its worker is retried
(heartbeats on RDB storages; on a journal file, RUNNING trials of dead local processes are
failed at start).

The runner knows nothing of screening or racing: that is the plan's (:mod:`.plans`).

Its own cost per unit stays flat in the size of the study (``benchmarks/scheduler.py``): a
finished trial's record is parsed once (:class:`RecordCache`), and the full garbage collection
after each trial leaves the long-lived objects of earlier trials out (:class:`FlatCollections`).
"""

from __future__ import annotations

import contextlib
import gc
import math
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeper.errors import Interrupted, SweeperError, one_line
from sweeper.sweep import records
from sweeper.sweep.disk import writes_to
from sweeper.sweep.plans import SAMPLE, WAIT, BasePlan
from sweeper.sweep.records import Unit
from sweeper.sweep.workers import fail_stale_trials, heartbeat_grace_s, this_worker

Events = Callable[[str, dict], None]

#: The signals that stop a worker the way Ctrl-C does: a scheduler's SIGTERM (SLURM, Kubernetes)
#: and a closed terminal's SIGHUP.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class HeldSignals:
    """Stop signals while Optuna runs one trial: raised inside the objective, held elsewhere.

    Inside the objective a signal raises :class:`~sweeper.errors.Interrupted` at once, and the
    trial ends FAIL ``interrupted``. While Optuna itself saves (``ask``, the ``tell`` after the
    objective) an exception would leave the trial RUNNING (Optuna's ``_run_trial`` then fails
    with ``UnboundLocalError``), so the signal waits until Optuna has finished and is raised then.
    """

    def __init__(self):
        self.pending: int | None = None
        self.live = False
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.live:
            self.live = False  # a second signal while the interruption is written waits
            raise Interrupted(signum)
        self.pending = self.pending or signum

    def __enter__(self) -> HeldSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @contextlib.contextmanager
    def deliver(self):
        """The objective's window: signals raise here (one that came during ``ask`` at once)."""
        if self.pending:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)
        self.live = True
        try:
            yield
        finally:
            self.live = False

    def raise_pending(self) -> None:
        if self.pending:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)


class RecordCache:
    """The study's trials as :class:`~sweeper.sweep.records.TrialRecord` objects, each finished
    trial parsed once.

    A finished trial never changes: Optuna refuses every write to it (``UpdateFinishedTrialError``
    on every storage), and sweeper writes only to the RUNNING trial of its own worker. So its
    record, and its unit's key, are kept by trial number, as long as the state read matches the
    state kept; unfinished trials (RUNNING, WAITING) are parsed at every read, since they change.
    Every read still asks the storage for the whole list (Optuna's own cache makes that one query
    for the new and unfinished trials), so nothing another worker did is missed.
    """

    def __init__(self, study):
        self.study = study
        self._finished: dict[int, tuple[records.TrialRecord, str | None]] = {}
        # The same, by the identity of Optuna's frozen trial: the storages hand out the same
        # object for a finished trial at every read (deepcopy=False), and matching it by identity
        # skips two attribute reads per trial. The trial is kept alongside, so its id stays its own.
        self._by_object: dict[int, tuple[Any, tuple[records.TrialRecord, str | None]]] = {}

    def read(self) -> list[tuple[records.TrialRecord, str | None]]:
        """``(record, unit key or None)`` of every trial, by trial number."""
        out = []
        kept, by_object = self._finished, self._by_object
        for t in self.study.get_trials(deepcopy=False):
            known = by_object.get(id(t))
            if known is not None and known[0] is t:
                out.append(known[1])
                continue
            entry = kept.get(t.number)
            if entry is None or entry[0].state is not t.state:
                record = records.TrialRecord.from_trial(t)
                entry = (record, record.unit.key if record.unit is not None else None)
                if t.state.is_finished():
                    kept[t.number] = entry
            if t.state.is_finished():
                by_object[id(t)] = (t, entry)
            out.append(entry)
        return out

    def records(self) -> list[records.TrialRecord]:
        return [record for record, _ in self.read()]

    def with_unit(self, key: str) -> list[records.TrialRecord]:
        """The trials (as read now) whose unit has this key, by trial number."""
        return [record for record, k in self.read() if k == key]


class FlatCollections:
    """A full garbage collection after each trial whose cost does not grow with the study.

    A collection after each trial frees what training left in reference cycles (a model, its
    optimizer, an exception's frames holding tensors: GPU memory that Python's own thresholds,
    which count objects and not bytes, would leave for later). A plain ``gc.collect()`` also
    walks every object still alive, which grows with the trials read (Optuna's cached trials and
    their attributes): ~0.1 s per unit at 3,000 trials. So after each collection the survivors,
    alive by definition, are moved to the permanent generation (``gc.freeze``) and the next
    collection walks only what came after. Reference counting still frees frozen objects; only a
    cycle among them, should one form later, waits for :meth:`close`, which unfreezes everything
    (the next collection then sees it). Where someone else already froze objects (a pre-fork
    server), freezing is left to them and collections are plain.
    """

    def __init__(self):
        self.freezing = gc.get_freeze_count() == 0

    def collect(self) -> None:
        gc.collect()
        if self.freezing:
            gc.freeze()

    def close(self) -> None:
        if self.freezing:
            gc.unfreeze()


@dataclass
class RunCounts:
    """What this worker did: new runs trained, failed and pruned, and notes worth printing."""

    trained: int = 0
    failed: int = 0
    pruned: int = 0
    #: Runs recorded from a finished run of the same content elsewhere in the storage, not trained.
    reused: int = 0
    #: Runs that went on from a shorter rung's saved state, and the epochs they did not train again.
    went_on: int = 0
    epochs_carried: int = 0
    messages: list[str] = field(default_factory=list)

    def went_on_note(self) -> str | None:
        """A line on the runs that went on from their previous rung (None when none did)."""
        if not self.went_on:
            return None
        return (f"{self.went_on} run(s) went on from their previous rung's saved state: {self.epochs_carried} "
                "epoch(s) not trained again")


class Runner:
    """One worker's hands on a study: run units one at a time, as a plan asks."""

    def __init__(self, study, data, *, objective: str = "best", params_of: dict[str, int] | None = None,
                 events: Events | None = None, artifacts: Path | None = None, poll_s: float = 2.0,
                 reuse: bool = True, states=None):
        self.study = study
        self.data = data
        self.objective = objective  # "best" epoch's or "last" epoch's val mIoU is the trial's value
        self.params_of = params_of or {}  # parameter counts by pair, recorded before training
        self.events = events or (lambda kind, info: None)
        self.artifacts = artifacts
        #: Where rung runs save their states for the next rung (a StateFolder), or None: each
        #: rung trains from scratch.
        self.states = states
        self.poll_s = poll_s
        self.worker = this_worker()
        self.counts = RunCounts()
        self._plan: BasePlan | None = None
        self._progress = None
        self._signals = HeldSignals()
        self._cache = RecordCache(study)
        self.reuse = reuse  # record runs finished in any study of the storage instead of training them
        self._reuse = None
        self._fingerprint: str | None = None
        self._collections: FlatCollections | None = None

    def records(self) -> list[records.TrialRecord]:
        """Every trial of the study as it is in the storage now (see :class:`RecordCache`)."""
        return self._cache.records()

    def run(self, plan: BasePlan) -> RunCounts:
        """Follow ``plan`` until it has nothing left; return what this worker did."""
        self._collections = FlatCollections()
        try:
            return self._follow(plan)
        finally:
            self._collections.close()
            self._collections = None

    def _follow(self, plan: BasePlan) -> RunCounts:
        from sweeper.sweep.reuse import ReuseIndex

        self._plan = plan
        if self.reuse:
            self._reuse = ReuseIndex(self.study._storage)
            self._reuse.refresh()
        if self.states is not None:
            self.states.prepare()
        while True:
            current = self.records()
            if self.states is not None:
                self.states.prune(plan.live_states(current))
            self._progress = plan.progress(current)  # for the view, from the records just read
            step = plan.next_unit(current)
            if isinstance(step, Unit):
                self.run_unit(step)
            elif step is SAMPLE:
                self.run_unit(None)
            elif any(r.is_waiting for r in current):
                self.run_unit(None)  # queued trials (another worker's claim, or an orphan) run first
            elif step is WAIT or any(r.is_running for r in current):
                # Also when the plan has nothing left: a trial still RUNNING may belong to a dead or
                # paused worker, and only a worker that waits for it retries it.
                self.wait()
            else:
                return self.counts

    def wait(self) -> None:
        """Fail trials of dead workers, then wait a moment for the others to finish theirs.

        The ``wait`` event names the trials waited for and ``grace_s``: how long a dead worker's
        trial can hold this one (seconds after its last heartbeat; None on a journal file, where
        only dead processes of this machine are seen, and at once).
        """
        grace = heartbeat_grace_s(self.study)
        failed = fail_stale_trials(self.study)
        if failed:
            why = "process gone" if grace is None else f"process gone, or no heartbeat for {grace} s"
            self.counts.messages.append(f"{failed} trial(s) of dead or paused workers marked FAIL ({why}); their "
                                        "units are run again")
        running = [r.number for r in self.records() if r.is_running]
        if running:
            self.events("wait", {"running": len(running), "trials": running, "grace_s": grace})
            time.sleep(self.poll_s)

    def run_unit(self, unit: Unit | None) -> None:
        """Enqueue ``unit`` (None: a fresh trial) and run the oldest waiting trial."""
        from sweeper.errors import RunError

        with writes_to(self.study._storage), self._signals:
            if unit is not None:
                self.study.enqueue_trial(self._plan.params(unit), user_attrs=unit.user_attrs())
            try:
                self.study.optimize(self._objective, n_trials=1, catch=(RunError,))
            except Exception as exc:  # noqa: BLE001 - only a trial taken over is handled here
                if not _taken_over(exc):
                    raise
                self.counts.messages.append(
                    "a trial of this worker was failed by another one while this one was stopped or paused "
                    "past the heartbeat grace period; its unit was retried there, so this run is dropped")
            finally:
                self._collect_garbage()
            self._signals.raise_pending()

    def _collect_garbage(self) -> None:
        """What the trial left in reference cycles is freed before the next unit (Optuna's
        ``gc_after_trial``, at a cost that stays flat in the study's size when run by :meth:`run`)."""
        if self._collections is not None:
            self._collections.collect()
        else:
            gc.collect()

    # -- one trial
    def _objective(self, trial) -> float:
        with self._signals.deliver():
            try:
                return self._run_trial(trial)
            except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP at any moment of the trial
                self._signals.live = False
                with contextlib.suppress(Exception):  # a trial already failed by another worker
                    records.write(trial, interrupted=True)
                raise

    def _run_trial(self, trial) -> float:
        import optuna

        plan = self._plan
        try:
            unit = plan.sample(trial, Unit.from_attrs(trial.user_attrs))
            if unit is not None:
                records.write_params(trial, plan.trial_params(unit))
        except ValueError as exc:  # a distribution that changed since the study was created
            raise SweeperError(f"study {self.study.study_name!r} was made from a different space "
                               f"({one_line(exc, 240)}); use a new --study name") from None
        if unit is None:
            # Another worker took the waiting trial this one meant to run: nothing to do.
            records.write(trial, empty=True)
            raise optuna.TrialPruned("no unit left to run")
        if "unit" not in trial.user_attrs:
            records.write_unit(trial, unit)
        for other in self._cache.with_unit(unit.key):
            if other.number < trial.number and other.holds_unit:
                records.write(trial, duplicate_of=other.number)
                raise optuna.TrialPruned(f"duplicate of trial {other.number}")
        config = plan.config(unit)
        run_key = self._run_key(config, unit.seed)
        records.write(trial, config=config.to_dict(), worker=self.worker, run_key=run_key)
        original = self._reuse.find(run_key) if self._reuse is not None else None
        if original is not None and original.value(self.objective) is not None:
            return self._reuse_run(trial, unit, original)
        if unit.candidate.pair in self.params_of:
            records.write(trial, params_count=self.params_of[unit.candidate.pair])
        return self._train(trial, unit, config, prunable=plan.prunable(unit))

    def _run_key(self, config, seed: int) -> str | None:
        """The run's identity by content (None where the data cannot be read to fingerprint it)."""
        from sweeper.sweep.identity import data_fingerprint, run_key

        if self._fingerprint is None:
            try:
                self._fingerprint = data_fingerprint(config)
            except OSError:
                return None
        return run_key(config, seed, self._fingerprint)

    def _reuse_run(self, trial, unit: Unit, original) -> float:
        """Record a run already finished elsewhere in the storage, instead of training it again."""
        from sweeper.sweep.reuse import reused_attrs

        value = original.value(self.objective)
        self.events("start", {"unit": unit, "trial": trial.number, "epochs": 0, "progress": self._progress})
        records.write(trial, **reused_attrs(original))
        self.counts.reused += 1
        self.events("end", {"unit": unit, "trial": trial.number, "state": f"reused ({original.study} #"
                            f"{original.number})", "value": value, "seconds": 0.0})
        return value

    def _train(self, trial, unit: Unit, config, *, prunable: bool) -> float:
        import optuna

        from sweeper.errors import RunError
        from sweeper.training import train_run

        history: list[dict] = []
        self.events("start", {"unit": unit, "trial": trial.number, "epochs": config.epochs,
                              "progress": self._progress})

        def on_step(step: int, steps: int) -> None:
            self.events("step", {"unit": unit, "step": step, "steps": steps})

        def on_epoch(m) -> None:
            trial.report(m.miou if math.isfinite(m.miou) else 0.0, m.epoch)
            history.append(_epoch_attrs(vars(m)))
            records.write(trial, history=history)
            self.events("epoch", {"unit": unit, "metrics": m})
            if prunable and trial.should_prune():
                records.write(trial, pruned_at_epoch=m.epoch)
                self.counts.pruned += 1
                self.events("end", {"unit": unit, "trial": trial.number, "state": "pruned", "value": m.miou})
                raise optuna.TrialPruned(f"pruned at epoch {m.epoch}")

        resume, source, save_to = self._states_of(unit, config)
        incoming = tempfile.mkdtemp(prefix=".incoming-", dir=self.artifacts) if self.artifacts is not None else None
        weights_file = None
        if incoming is not None:
            c = unit.candidate
            weights_file = Path(incoming) / (f"{c.arch}-{c.encoder}-seed{unit.seed}-fold{unit.fold}"
                                            f"-trial{trial.number}.pt")
        try:
            if resume is not None:
                history += [_epoch_attrs(h) for h in resume.history]
                records.write(trial, history=history, continued_from=source)
                for h in resume.history:  # the carried epochs, reported as a fresh run reports them
                    trial.report(h["miou"] if math.isfinite(h["miou"]) else 0.0, h["epoch"])
            going_on = {"resume": resume} if resume is not None else {}
            if save_to is not None:
                going_on["save_state_to"] = save_to
            result = train_run(config, unit.seed, data=self.data, on_epoch=on_epoch, progress=False,
                               save_best=weights_file, on_step=on_step, **going_on)
            if weights_file is not None:
                self._upload_weights(trial, weights_file)
        except RunError as exc:
            records.write(trial, fail_kind=exc.kind, fail_reason=str(exc))
            self.counts.failed += 1
            self.events("end", {"unit": unit, "trial": trial.number, "state": f"failed ({exc.kind})", "value": None,
                                "reason": str(exc)})
            raise
        finally:
            if incoming is not None:
                shutil.rmtree(incoming, ignore_errors=True)
        best = result.history[result.best_epoch]
        value = result.best_miou if self.objective == "best" else result.history[-1].miou
        for other in self._cache.with_unit(unit.key):  # a copy retried while this worker was paused finished first
            if other.number != trial.number and other.is_run:
                records.write(trial, duplicate_of=other.number)
                raise optuna.TrialPruned(f"duplicate of trial {other.number}, which finished while this run was "
                                         "paused")
        if self.params_of.get(unit.candidate.pair) != result.params:  # else written before training
            records.write(trial, params_count=result.params)
        records.write(trial, best_epoch=result.best_epoch, per_class_iou=dict(zip(result.class_names, best.iou)),
                      wall_time_s=round(result.wall_time_s, 3), images_per_s=round(result.images_per_s, 2),
                      peak_memory_mb=round(result.peak_memory_mb, 1), device=result.device,
                      versions=result.versions)
        if getattr(result, "state_error", None):
            self.counts.messages.append(f"trial {trial.number}: its state was not saved ({result.state_error}); "
                                        "the next rung trains this candidate from scratch")
        if getattr(result, "resumed_epochs", 0):
            records.write(trial, resumed_epochs=result.resumed_epochs)
            self.counts.went_on += 1
            self.counts.epochs_carried += result.resumed_epochs
        self.counts.trained += 1
        self.events("end", {"unit": unit, "trial": trial.number, "state": "complete", "value": value,
                            "seconds": result.wall_time_s})
        return value

    def _states_of(self, unit: Unit, config):
        """``(state to go on from or None, its trial's number, file to save this run's state to or
        None)``. A state goes on only when :func:`~sweeper.training.state.can_resume` allows it (a
        constant learning rate, the same config and seed): otherwise the run trains from scratch,
        which under a constant learning rate gives the same result, only slower."""
        if self.states is None or config.scheduler != "none":
            return None, None, None
        from sweeper.training.state import can_resume, load_state

        save_to = self.states.path(unit.key) if self._plan.saves_state(unit) else None
        source = self._plan.continues_from(unit)
        if source is None:
            return None, None, save_to
        done = [r for r in self._cache.with_unit(source.key) if r.is_run]
        path = self.states.path(source.key)
        state = load_state(path) if done and path.exists() else None
        if state is None or can_resume(state, config.to_dict(), unit.seed) is not None:
            return None, None, save_to
        return state, done[0].number, save_to

    def _upload_weights(self, trial, path: Path) -> None:
        """Store the run's best-epoch weights as an Optuna artifact of its trial.

        A store that fails (a full disk) costs the weights, never the finished run: the trial
        still completes, with ``weights_error`` saying why it has no weights.
        """
        from optuna.artifacts import FileSystemArtifactStore, upload_artifact

        try:
            artifact_id = upload_artifact(artifact_store=FileSystemArtifactStore(str(self.artifacts)),
                                          file_path=str(path), study_or_trial=trial,
                                          mimetype="application/octet-stream")
        except OSError as exc:
            records.write(trial, weights_error=one_line(exc, 240))
            self.counts.messages.append(f"trial {trial.number}: weights not saved: {one_line(exc, 240)}")
            return
        records.write(trial, weights_artifact=artifact_id)



def _epoch_attrs(m: dict) -> dict:
    """An epoch as a trial's ``history`` records it."""
    return {"epoch": m["epoch"], "train_loss": m["train_loss"], "val_loss": m["val_loss"], "miou": m["miou"],
            "pixel_accuracy": m["pixel_accuracy"], "seconds": round(m["seconds"], 3)}


def _taken_over(exc: BaseException | None) -> bool:
    """Whether Optuna refused a write because the trial had been finished by someone else: a
    worker paused (SIGSTOP, a suspended laptop) past the grace period, whose trial another
    worker failed and retried. Optuna reports it as ``UpdateFinishedTrialError``, ``Cannot tell
    a FAIL trial``, or its own ``AssertionError`` while it handles one of those."""
    import optuna

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, optuna.exceptions.UpdateFinishedTrialError) or "Cannot tell a" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
