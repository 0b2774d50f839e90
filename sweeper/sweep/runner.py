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
"""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class RunCounts:
    """What this worker did: new runs trained, failed and pruned, and notes worth printing."""

    trained: int = 0
    failed: int = 0
    pruned: int = 0
    messages: list[str] = field(default_factory=list)


class Runner:
    """One worker's hands on a study: run units one at a time, as a plan asks."""

    def __init__(self, study, data, *, objective: str = "best", params_of: dict[str, int] | None = None,
                 events: Events | None = None, artifacts: Path | None = None, poll_s: float = 2.0):
        self.study = study
        self.data = data
        self.objective = objective  # "best" epoch's or "last" epoch's val mIoU is the trial's value
        self.params_of = params_of or {}  # parameter counts by pair, recorded before training
        self.events = events or (lambda kind, info: None)
        self.artifacts = artifacts
        self.poll_s = poll_s
        self.worker = this_worker()
        self.counts = RunCounts()
        self._plan: BasePlan | None = None
        self._progress = None
        self._signals = HeldSignals()

    def records(self) -> list[records.TrialRecord]:
        return records.read_records(self.study)

    def run(self, plan: BasePlan) -> RunCounts:
        """Follow ``plan`` until it has nothing left; return what this worker did."""
        self._plan = plan
        while True:
            current = self.records()
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
                self.study.optimize(self._objective, n_trials=1, catch=(RunError,), gc_after_trial=True)
            except Exception as exc:  # noqa: BLE001 - only a trial taken over is handled here
                if not _taken_over(exc):
                    raise
                self.counts.messages.append(
                    "a trial of this worker was failed by another one while this one was stopped or paused "
                    "past the heartbeat grace period; its unit was retried there, so this run is dropped")
            self._signals.raise_pending()

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
        for other in self.records():
            if other.number < trial.number and other.holds_unit and other.unit.key == unit.key:
                records.write(trial, duplicate_of=other.number)
                raise optuna.TrialPruned(f"duplicate of trial {other.number}")
        config = plan.config(unit)
        records.write(trial, config=config.to_dict(), worker=self.worker)
        if unit.candidate.pair in self.params_of:
            records.write(trial, params_count=self.params_of[unit.candidate.pair])
        return self._train(trial, unit, config, prunable=plan.prunable(unit))

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
            history.append({"epoch": m.epoch, "train_loss": m.train_loss, "val_loss": m.val_loss, "miou": m.miou,
                            "pixel_accuracy": m.pixel_accuracy, "seconds": round(m.seconds, 3)})
            records.write(trial, history=history)
            self.events("epoch", {"unit": unit, "metrics": m})
            if prunable and trial.should_prune():
                records.write(trial, pruned_at_epoch=m.epoch)
                self.counts.pruned += 1
                self.events("end", {"unit": unit, "trial": trial.number, "state": "pruned", "value": m.miou})
                raise optuna.TrialPruned(f"pruned at epoch {m.epoch}")

        incoming = tempfile.mkdtemp(prefix=".incoming-", dir=self.artifacts) if self.artifacts is not None else None
        weights_file = None
        if incoming is not None:
            c = unit.candidate
            weights_file = Path(incoming) / (f"{c.arch}-{c.encoder}-seed{unit.seed}-fold{unit.fold}"
                                            f"-trial{trial.number}.pt")
        try:
            result = train_run(config, unit.seed, data=self.data, on_epoch=on_epoch, progress=False,
                               save_best=weights_file, on_step=on_step)
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
        for other in self.records():  # a copy retried while this worker was paused finished first
            if other.number != trial.number and other.is_run and other.unit.key == unit.key:
                records.write(trial, duplicate_of=other.number)
                raise optuna.TrialPruned(f"duplicate of trial {other.number}, which finished while this run was "
                                         "paused")
        records.write(trial, params_count=result.params, best_epoch=result.best_epoch,
                      per_class_iou=dict(zip(result.class_names, best.iou)),
                      wall_time_s=round(result.wall_time_s, 3), images_per_s=round(result.images_per_s, 2),
                      peak_memory_mb=round(result.peak_memory_mb, 1), device=result.device,
                      versions=result.versions)
        self.counts.trained += 1
        self.events("end", {"unit": unit, "trial": trial.number, "state": "complete", "value": value,
                            "seconds": result.wall_time_s})
        return value

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
