"""``sweeper tune``: a search space run as an Optuna study, screening then racing repeats.

Every Optuna trial is one *unit*: one candidate trained with one seed on one fold. A trial's
user attributes hold what defines and describes it (``unit``, ``candidate``, ``arch``,
``encoder``, ``seed``, ``fold``, ``phase``, the fully resolved ``config``, ``params_count``,
per-epoch ``history``, ``per_class_iou``, ``wall_time_s``, ``images_per_s``, ``versions``...),
so optuna-dashboard shows everything, and ``sweeper report`` needs nothing else.

Phases:

1. *Screening*: each candidate once, with the first seed (common to all candidates). Pure
   architecture spaces are enumerated; spaces with hyper-parameter ranges are sampled by a
   seeded TPE. Trials report val mIoU per epoch and may be pruned.
2. *Repeats*: further seeds, in the same order for every candidate (common random numbers),
   only for candidates that :func:`sweeper.stats.next_candidates` still finds tied with the best
   (racing), one unit at a time so each result informs the next choice. Repeats are never pruned.

Several workers (processes, machines) may run the same command on one storage. A worker claims a
unit by enqueueing it and running ``study.optimize(n_trials=1)``, which pops the oldest waiting
trial atomically. If two workers claim the same unit in the same instant, the trial with the
higher number sees the lower one and ends as PRUNED with ``duplicate_of`` set, before training:
no unit is trained twice. Finished trials are never re-run; a trial that FAILed because of the
run itself (out of memory, NaN loss, a pair that does not build) is not retried either, since
the same seed fails the same way; a trial killed with its worker is retried (heartbeats on RDB
storages; on a journal file, RUNNING trials of dead local processes are failed at start).
"""

from __future__ import annotations

import math
import os
import random
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import SweeperError
from .space import SearchSpace
from .train import check_encoder_weights

DEFAULT_STORAGE = "sweeper.db"
RUN_FAIL_KINDS = ("build", "oom", "nan", "dataloader", "error")
#: RDB storages: a RUNNING trial whose worker sent no heartbeat for GRACE_PERIOD_S seconds is
#: failed and retried by the next worker. ``SWEEPER_HEARTBEAT_S`` and ``SWEEPER_GRACE_S`` override
#: them (tests use seconds; a cluster with slow storage may want more).
HEARTBEAT_INTERVAL_S = 20
GRACE_PERIOD_S = 60


@dataclass(frozen=True)
class Unit:
    """One training run to do: ``candidate`` key, seed, fold, phase and the candidate's knobs."""

    candidate: str
    arch: str
    encoder: str
    seed: int
    fold: int
    phase: str
    hparams: tuple = ()

    @property
    def key(self) -> str:
        return f"{self.candidate}|seed={self.seed}|fold={self.fold}"

    def user_attrs(self) -> dict:
        return {"unit": self.key, "candidate": self.candidate, "arch": self.arch, "encoder": self.encoder,
                "seed": self.seed, "fold": self.fold, "phase": self.phase, "hparams": dict(self.hparams)}


@dataclass
class SweepSummary:
    """What one ``tune`` invocation did, and the ranking of everything in the study."""

    study_name: str
    storage: str
    trained: int = 0
    failed: int = 0
    pruned: int = 0
    ranking: Any = None
    candidates: int = 0
    messages: list[str] = field(default_factory=list)


def candidate_key(arch: str, encoder: str, hparams: dict | None = None) -> str:
    """``unet/resnet18``, plus ``name=value`` pairs for hyper-parameters (sorted, 4 digits)."""
    key = f"{arch}/{encoder}"
    for name, value in sorted((hparams or {}).items()):
        key += f" {name}={_short(value)}"
    return key


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# --------------------------------------------------------------------------- storage


def mask_url(url: str) -> str:
    """The storage URL with any password replaced by ``***``, for every printed line."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, _, host = rest.rpartition("@")
    if ":" in creds:
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def storage_url(storage: str | None) -> str:
    """``None`` -> ``sqlite:///sweeper.db`` in the working directory; a ``*.db`` path -> SQLite;
    any other path -> a journal file; a URL (``postgresql://...``) is used as is."""
    if storage is None or storage == "":
        return f"sqlite:///{Path(DEFAULT_STORAGE).resolve()}"
    if "://" in storage:
        return storage
    path = Path(storage).expanduser()
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        return f"sqlite:///{path.resolve()}"
    return str(path.resolve())


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg 3 to SQLAlchemy 2.1; use psycopg2 when only it is here."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def is_journal(url: str) -> bool:
    return "://" not in url


def artifact_dir(storage: str | None, explicit: str | os.PathLike | None = None) -> Path:
    """Where a study's weight files live: ``--artifacts``, or beside a SQLite or journal file
    (``sweeper.db`` -> ``sweeper-artifacts/``). A database server has no "beside": its workers
    may be on other machines, so the folder (one they all reach) must be named."""
    if explicit:
        return Path(explicit)
    url = storage_url(storage)
    if url.startswith("sqlite:///"):
        local = Path(url[len("sqlite:///"):])
    elif is_journal(url):
        local = Path(url)
    else:
        raise SweeperError("--artifacts: name a folder for the weight files (one every worker can reach); "
                           "a database server has no folder of its own")
    return local.with_name(f"{local.stem}-artifacts")


def _quiet_optuna() -> None:
    """Optuna's experimental warnings, per-trial lines and failure tracebacks: sweeper reports each
    trial itself (one line, with the reason), and a traceback is not an error message."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def open_storage(storage: str | None, *, must_exist: bool = False):
    """An Optuna storage for a URL or path, with heartbeats and retries on RDB storages.

    ``must_exist`` (commands that only read, such as ``report``) refuses to create a new SQLite
    or journal file at a mistyped path.
    """
    import optuna

    _quiet_optuna()
    url = _with_driver(storage_url(storage))
    shown = mask_url(url)
    if must_exist:
        local = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url if is_journal(url) else None
        if local is not None and not Path(local).is_file():
            raise SweeperError(f"--storage: {local} does not exist (no study has been written there)")
    if is_journal(url):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        parent = Path(url).parent
        if not parent.is_dir():
            raise SweeperError(f"--storage: folder {parent} for the journal file does not exist")
        try:
            return JournalStorage(JournalFileBackend(url))
        except Exception as exc:  # noqa: BLE001
            raise SweeperError(f"--storage {shown}: cannot open the journal file: {_one_line(exc)}") from None
    if url.startswith("sqlite:///"):
        parent = Path(url[len("sqlite:///"):]).parent
        if not parent.is_dir():
            raise SweeperError(f"--storage: folder {parent} for the SQLite file does not exist")
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    # Workers that start together on an empty database race to create Optuna's tables; the
    # loser's CREATE TABLE fails and the schema is there a moment later, so try again.
    for attempt in range(6):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs,
                heartbeat_interval=int(os.environ.get("SWEEPER_HEARTBEAT_S", HEARTBEAT_INTERVAL_S)),
                grace_period=int(os.environ.get("SWEEPER_GRACE_S", GRACE_PERIOD_S)),
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
        except ImportError as exc:
            driver = exc.name or _one_line(exc)
            raise SweeperError(f"--storage {shown}: the database driver is missing ({driver}); install it, "
                               "e.g. pip install psycopg2-binary for postgresql+psycopg2://") from None
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types for a bad URL or server
            text = str(exc)
            if attempt < 5 and ("already exists" in text or "UniqueViolation" in text or "locked" in text):
                time.sleep(0.2 + random.random() * (attempt + 1) * 0.3)
                continue
            raise SweeperError(f"--storage {shown}: cannot open: {_one_line(mask_url(text))}") from None
    raise AssertionError("unreachable")


def _one_line(exc: BaseException | str) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 240 else text[:237] + "..."


def make_pruner(space: SearchSpace):
    import optuna

    spec = space.pruner
    opts = dict(spec.options)
    if spec.type == "none":
        return optuna.pruners.NopPruner()
    if spec.type == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=opts.get("n_startup_trials", 5), n_warmup_steps=opts.get("n_warmup_steps", 1))
    if spec.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=opts.get("min_resource", 1), reduction_factor=opts.get("reduction_factor", 3))
    if spec.type == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=opts.get("min_resource", 1), max_resource=opts.get("max_resource", space.base.epochs),
                                              reduction_factor=opts.get("reduction_factor", 3))
    if spec.type == "threshold":
        return optuna.pruners.ThresholdPruner(lower=opts.get("lower"), upper=opts.get("upper"), n_warmup_steps=opts.get("n_warmup_steps", 0))
    return optuna.pruners.WilcoxonPruner(p_threshold=opts.get("p_threshold", 0.1), n_startup_steps=opts.get("n_startup_steps", 2))


def open_study(space: SearchSpace, storage: str | None, study_name: str | None, *, create: bool = True):
    """Create or resume the study; its user attributes record the space it was made from."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    name = study_name or space.name
    store = open_storage(storage)
    sampler = optuna.samplers.TPESampler(seed=space.screening_seed)
    try:
        if not create:
            return optuna.load_study(study_name=name, storage=store, sampler=sampler, pruner=make_pruner(space))
        return optuna.create_study(study_name=name, storage=store, direction="maximize", sampler=sampler,
                                   pruner=make_pruner(space), load_if_exists=True)
    except KeyError:
        raise SweeperError(f"--study: no study named {name!r} in {mask_url(storage_url(storage))}") from None
    except Exception as exc:  # noqa: BLE001 - connection errors surface here on first use
        if isinstance(exc, SweeperError):
            raise
        raise SweeperError(f"--storage {mask_url(storage_url(storage))}: {_one_line(mask_url(str(exc)))}") from None


# --------------------------------------------------------------------------- candidates


def resolve_candidates(space: SearchSpace, num_classes: int) -> list[tuple[str, str, int]]:
    """``(arch, encoder, params)`` of every pair the space allows that runs at its image size,
    smallest first (the order screening follows when ``trials`` cuts the list)."""
    from . import zoo

    arch = space.architectures
    size = space.base.image_size
    if arch.pairs:
        archs = sorted({a for a, _ in arch.pairs})
        encoders = sorted({e for _, e in arch.pairs})
        result = zoo.list_candidates(archs=archs, encoders=encoders, include_timm=any(e.startswith("tu-") for e in encoders),
                                     classes=num_classes, image_size=size)
        found = {(c.arch, c.encoder): c for c in result.candidates}
        invalid = {(p.arch, p.encoder): p.reason for p in result.invalid}
        for pair in arch.pairs:
            if pair in invalid:
                raise SweeperError(f"{space.source}: architectures.pairs: {pair[0]}/{pair[1]} cannot be built: {invalid[pair]}")
            if pair in found and not found[pair].runs:
                raise SweeperError(f"{space.source}: architectures.pairs: {pair[0]}/{pair[1]} does not run at {size} px: {found[pair].note}")
        chosen = [found[p] for p in arch.pairs if p in found]
    else:
        result = zoo.list_candidates(max_params=arch.max_params, archs=arch.archs or None, encoders=arch.encoders or None,
                                     exclude=arch.exclude or None, include_timm=arch.timm, classes=num_classes, image_size=size)
        chosen = [c for c in zoo.sort_candidates(result.candidates, "params") if c.runs]
    if not chosen:
        raise SweeperError(f"{space.source}: no architecture x encoder pair fits the space at {size} px")
    return [(c.arch, c.encoder, c.params) for c in chosen]


# --------------------------------------------------------------------------- reading a study


def _is_duplicate(trial) -> bool:
    """A trial that never trained: it lost a claim race (``duplicate_of``) or found no work."""
    return trial.user_attrs.get("duplicate_of") is not None or bool(trial.user_attrs.get("empty"))


def _holds_unit(trial) -> bool:
    """Whether this trial settles its unit: finished, in flight, queued, or failed for good."""
    from optuna.trial import TrialState

    if _is_duplicate(trial):
        return False
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get("fail_kind") in RUN_FAIL_KINDS


def collect_runs(trials) -> tuple[list[tuple[str, int, float]], dict[str, dict]]:
    """``(candidate, seed, value)`` per finished seed, and each candidate's metadata.

    With several folds, a seed's value is the mean over its folds. Duplicates never count.
    """
    from optuna.trial import TrialState

    cells: dict[tuple[str, int], list[float]] = {}
    meta: dict[str, dict] = {}
    for t in trials:
        cand = t.user_attrs.get("candidate")
        if t.state != TrialState.COMPLETE or cand is None or _is_duplicate(t) or t.value is None:
            continue
        cells.setdefault((cand, int(t.user_attrs["seed"])), []).append(float(t.value))
        meta.setdefault(cand, {"arch": t.user_attrs.get("arch", ""), "encoder": t.user_attrs.get("encoder", ""),
                               "params": t.user_attrs.get("params_count"), "hparams": t.user_attrs.get("hparams", {})})
    records = [(cand, seed, sum(v) / len(v)) for (cand, seed), v in cells.items()]
    return records, meta


def rank_trials(trials, *, rope: float = 0.01, alpha: float = 0.05):
    """The ranked table of every candidate with a finished run (None when there is none)."""
    from . import stats

    records, meta = collect_runs(trials)
    if not records:
        return None
    values, keys, _ = stats.pivot_runs(records)
    labels = []
    for k in keys:
        hparams = meta[k]["hparams"] or {}
        # Hyper-parameters ride along in the encoder column, so that rows of one pair differ.
        shown = " ".join([meta[k]["encoder"]] + [f"{n}={_short(v)}" for n, v in sorted(hparams.items())])
        labels.append(stats.Label(key=k, arch=meta[k]["arch"], encoder=shown, params=meta[k]["params"],
                                      extra={"hparams": hparams}))
    return stats.rank_candidates(values, labels, rope=rope, alpha=alpha)


# --------------------------------------------------------------------------- the sweep


def unit_config(space: SearchSpace, unit: Unit):
    """The full TrainConfig of a unit: the space's recipe with the unit's knobs."""
    return replace(space.base, arch=unit.arch, encoder=unit.encoder, fold=unit.fold, **dict(unit.hparams))


def _clean(value: Any) -> Any:
    """JSON-safe user attributes: NaN and infinities become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class Sweep:
    """One worker's view of a study: which units are left, and running them one at a time."""

    def __init__(self, space: SearchSpace, study, data, candidates, *, events: Callable[[str, dict], None] | None = None,
                 artifacts: Path | None = None):
        self.space = space
        self.artifacts = artifacts
        self.study = study
        self.data = data
        self.candidates = candidates
        self.params_of = {f"{a}/{e}": p for a, e, p in candidates}
        self.arch_of = {f"{a}/{e}": (a, e) for a, e, _ in candidates}
        self.events = events or (lambda kind, info: None)
        # SWEEPER_WORKER_HOST names the machine in the trial records (tests use it to play a
        # worker on another machine, whose dead processes only heartbeats can detect).
        self.worker = {"host": os.environ.get("SWEEPER_WORKER_HOST") or socket.gethostname(), "pid": os.getpid()}
        self.summary = SweepSummary(study_name=study.study_name, storage="")
        self._rng = random.Random(os.getpid() ^ int(time.time()))

    # -- reading
    def trials(self):
        return self.study.get_trials(deepcopy=False)

    def held_units(self, trials=None) -> set[str]:
        return {t.user_attrs["unit"] for t in (trials or self.trials()) if "unit" in t.user_attrs and _holds_unit(t)}

    def screening_units(self) -> list[Unit]:
        n = max(1, self.space.trials // len(self.space.folds))
        seed = self.space.screening_seed
        return [Unit(f"{a}/{e}", a, e, seed, f, "screen") for a, e, _ in self.candidates[:n] for f in self.space.folds]

    # -- running
    def run_unit(self, unit: Unit | None) -> None:
        """Enqueue ``unit`` (None: a fresh TPE trial) and run the oldest waiting trial."""
        from .train import RunError

        if unit is not None:
            self.study.enqueue_trial(self._fixed_params(unit), user_attrs=unit.user_attrs())
        self.study.optimize(self._objective, n_trials=1, catch=(RunError,), gc_after_trial=True)

    def _fixed_params(self, unit: Unit) -> dict:
        if not self.space.hparams:
            return {}
        params = dict(unit.hparams)
        if len(self.candidates) > 1:
            params["candidate"] = f"{unit.arch}/{unit.encoder}"
        return params

    def _suggest(self, trial) -> tuple[str, str, tuple]:
        """Architecture and hyper-parameters of a trial: sampled (TPE) or fixed by its enqueue."""
        keys = sorted(self.arch_of)
        key = trial.suggest_categorical("candidate", keys) if len(keys) > 1 else keys[0]
        hparams = {}
        for p in self.space.hparams:
            if p.type == "float":
                hparams[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log, step=p.step)
            elif p.type == "int":
                hparams[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
            else:
                hparams[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        arch, encoder = self.arch_of[key]
        return arch, encoder, tuple(sorted(hparams.items()))

    def _objective(self, trial) -> float:
        import optuna

        from .train import RunError, train_run

        attrs = trial.user_attrs
        try:
            if self.space.hparams:
                arch, encoder, hparams = self._suggest(trial)
            elif "unit" in attrs:
                arch, encoder, hparams = attrs["arch"], attrs["encoder"], ()
            else:
                # Another worker took the waiting trial this one meant to run: nothing to do.
                trial.set_user_attr("empty", True)
                raise optuna.TrialPruned("no unit left to run")
        except ValueError as exc:  # a distribution that changed since the study was created
            raise SweeperError(f"study {self.study.study_name!r} was made from a different space ({_one_line(exc)}); "
                               "use a new --study name") from None
        if "unit" in attrs:
            unit = Unit(attrs["candidate"], arch, encoder, int(attrs["seed"]), int(attrs["fold"]), attrs["phase"], hparams)
        else:
            unit = Unit(candidate_key(arch, encoder, dict(hparams)), arch, encoder, self.space.screening_seed,
                        self.space.folds[0], "screen", hparams)
            for name, value in unit.user_attrs().items():
                trial.set_user_attr(name, value)
        for other in self.trials():
            if other.number < trial.number and other.user_attrs.get("unit") == unit.key and _holds_unit(other):
                trial.set_user_attr("duplicate_of", other.number)
                raise optuna.TrialPruned(f"duplicate of trial {other.number}")
        config = unit_config(self.space, unit)
        trial.set_user_attr("config", _clean(config.to_dict()))
        trial.set_user_attr("worker", self.worker)
        if unit.candidate.split(" ")[0] in self.params_of:
            trial.set_user_attr("params_count", self.params_of[unit.candidate.split(" ")[0]])
        prunable = unit.phase == "screen" and self.space.pruner.type != "none"
        history: list[dict] = []
        self.events("start", {"unit": unit, "trial": trial.number, "epochs": config.epochs})

        def on_epoch(m) -> None:
            trial.report(m.miou if math.isfinite(m.miou) else 0.0, m.epoch)
            history.append(_clean({"epoch": m.epoch, "train_loss": m.train_loss, "val_loss": m.val_loss,
                                   "miou": m.miou, "pixel_accuracy": m.pixel_accuracy, "seconds": round(m.seconds, 3)}))
            trial.set_user_attr("history", history)
            self.events("epoch", {"unit": unit, "metrics": m})
            if prunable and trial.should_prune():
                trial.set_user_attr("pruned_at_epoch", m.epoch)
                self.summary.pruned += 1
                self.events("end", {"unit": unit, "trial": trial.number, "state": "pruned", "value": m.miou})
                raise optuna.TrialPruned(f"pruned at epoch {m.epoch}")

        incoming = tempfile.mkdtemp(prefix=".incoming-", dir=self.artifacts) if self.artifacts is not None else None
        weights_file = None
        if incoming is not None:
            weights_file = Path(incoming) / f"{unit.arch}-{unit.encoder}-seed{unit.seed}-fold{unit.fold}-trial{trial.number}.pt"
        try:
            result = train_run(config, unit.seed, data=self.data, on_epoch=on_epoch, progress=False, save_best=weights_file)
            if weights_file is not None:
                self._upload_weights(trial, weights_file)
        except RunError as exc:
            trial.set_user_attr("fail_kind", exc.kind)
            trial.set_user_attr("fail_reason", str(exc))
            self.summary.failed += 1
            self.events("end", {"unit": unit, "trial": trial.number, "state": f"failed ({exc.kind})", "value": None,
                                "reason": str(exc)})
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        finally:
            if incoming is not None:
                shutil.rmtree(incoming, ignore_errors=True)
        best = result.history[result.best_epoch]
        value = result.best_miou if self.space.objective == "best" else result.history[-1].miou
        names = result.class_names
        trial.set_user_attr("params_count", result.params)
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("per_class_iou", _clean(dict(zip(names, best.iou))))
        trial.set_user_attr("wall_time_s", round(result.wall_time_s, 3))
        trial.set_user_attr("images_per_s", round(result.images_per_s, 2))
        trial.set_user_attr("peak_memory_mb", round(result.peak_memory_mb, 1))
        trial.set_user_attr("device", result.device)
        trial.set_user_attr("versions", result.versions)
        self.summary.trained += 1
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
                                          file_path=str(path), study_or_trial=trial, mimetype="application/octet-stream")
        except OSError as exc:
            trial.set_user_attr("weights_error", _one_line(exc))
            self.summary.messages.append(f"trial {trial.number}: weights not saved: {_one_line(exc)}")
            return
        trial.set_user_attr("weights_artifact", artifact_id)

    # -- phases
    def fail_dead_local_trials(self) -> int:
        """RUNNING trials of processes on this host that no longer exist become FAIL (retried)."""
        from optuna.trial import TrialState

        storage = self.study._storage
        host = socket.gethostname()
        failed = 0
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = t.user_attrs.get("worker") or {}
            if worker.get("host") != host or worker.get("pid") == os.getpid() or _pid_alive(worker.get("pid")):
                continue
            storage.set_trial_user_attr(t._trial_id, "stale", True)
            if storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                failed += 1
        return failed

    def _fail_stale(self) -> None:
        import optuna

        self.fail_dead_local_trials()
        try:
            optuna.storages.fail_stale_trials(self.study)
        except Exception:  # noqa: BLE001 - journal storages have no heartbeat
            pass

    def _wait_for_others(self, phase: str | None) -> bool:
        """Wait while other workers run trials of ``phase`` (None: any); True if any were running."""
        from optuna.trial import TrialState

        waited = False
        while True:
            self._fail_stale()
            running = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                       if phase is None or t.user_attrs.get("phase") == phase]
            if not running:
                return waited
            waited = True
            self.events("wait", {"running": len(running)})
            time.sleep(2.0)

    def _waiting(self) -> bool:
        from optuna.trial import TrialState

        return bool(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))

    def screen(self) -> None:
        if self.space.hparams:
            self._screen_sampled()
            return
        units = self.screening_units()
        while True:
            held = self.held_units()
            pending = [u for u in units if u.key not in held]
            if not pending and not self._waiting():
                return
            if pending:
                # Workers that start together pick from the first few at random: fewer collisions.
                self.run_unit(self._rng.choice(pending[: 4]))
            else:
                self.run_unit(None)

    def _screen_sampled(self) -> None:
        """TPE screening: ``trials`` sampled candidates, each then on its other folds."""
        first = self.space.folds[0]
        while True:
            trials = self.trials()
            held = self.held_units(trials)
            sampled = [t for t in trials if t.user_attrs.get("phase") == "screen" and t.user_attrs.get("fold") == first
                       and _holds_unit(t)]
            other_folds = []
            for t in sampled:
                for f in self.space.folds[1:]:
                    u = Unit(t.user_attrs["candidate"], t.user_attrs["arch"], t.user_attrs["encoder"], int(t.user_attrs["seed"]),
                             f, "screen", tuple(sorted((t.user_attrs.get("hparams") or {}).items())))
                    if u.key not in held:
                        other_folds.append(u)
            if other_folds:
                self.run_unit(other_folds[0])
            elif self._waiting():
                self.run_unit(None)
            elif len(sampled) < self.space.trials:
                self.run_unit(None)
            else:
                return

    def next_repeat(self) -> Unit | None:
        """The next (candidate, seed, fold) that racing asks for, or None when all are resolved."""
        import numpy as np

        from . import stats

        trials = self.trials()
        records, _ = collect_runs(trials)
        if not records:
            return None
        values, keys, seeds = stats.pivot_runs(records)
        seeds_used: dict[str, set[int]] = {}
        fixed: dict[str, Unit] = {}
        held = set()
        for t in trials:
            if "candidate" in t.user_attrs and _holds_unit(t):
                seeds_used.setdefault(t.user_attrs["candidate"], set()).add(int(t.user_attrs["seed"]))
                held.add(t.user_attrs["unit"])
                fixed.setdefault(t.user_attrs["candidate"], Unit(
                    t.user_attrs["candidate"], t.user_attrs["arch"], t.user_attrs["encoder"], 0, 0, "repeat",
                    tuple(sorted((t.user_attrs.get("hparams") or {}).items()))))
        max_seeds = len(self.space.seeds)
        if self.space.racing:
            order = stats.next_candidates(values, max_seeds, rope=self.space.rope)
        else:  # uniform repeats for the three best by their screening run (a set fixed after screening)
            rows = {seed: r for r, seed in enumerate(seeds)}
            first = values[rows[self.space.screening_seed]] if self.space.screening_seed in rows else values[0]
            order = [int(i) for i in np.argsort(-np.nan_to_num(first, nan=-np.inf), kind="stable")[:3] if math.isfinite(first[i])]
        for i in order:
            cand = keys[i]
            used = seeds_used.get(cand, set())
            for seed in used:  # folds still missing from a seed already started
                for fold in self.space.folds:
                    unit = replace(fixed[cand], seed=seed, fold=fold)
                    if unit.key not in held:
                        return unit
            fresh = [s for s in self.space.seeds if s not in used]
            if fresh and len(used) < max_seeds:
                return replace(fixed[cand], seed=fresh[0], fold=self.space.folds[0])
        return None

    def repeat(self) -> None:
        if len(self.space.seeds) < 2:
            return
        self._wait_for_others("screen")
        while True:
            unit = self.next_repeat()
            if unit is not None:
                self.run_unit(unit)
                continue
            if self._waiting():
                self.run_unit(None)
                continue
            if not self._wait_for_others(None):
                return


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return True  # unknown: leave it to heartbeats
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_sweep(space: SearchSpace, *, storage: str | None = None, study_name: str | None = None,
              events: Callable[[str, dict], None] | None = None, artifacts: str | os.PathLike | None = None) -> SweepSummary:
    """Screen, then race repeats, then rank: the whole ``tune`` job on one worker.

    Safe to run again (it resumes) and to run in several processes against one storage. With
    ``space.save_weights`` each finished run's best-epoch weights go to the artifact folder
    (:func:`artifact_dir`), recorded in the study so that ``ensemble`` finds them.
    """
    from .train import prepare_data, validate_config

    validate_config(replace(space.base, arch="unet", encoder="resnet18"))
    data = prepare_data(space.base)
    _check_has_labels(data)
    candidates = resolve_candidates(space, data.num_classes)
    for _, encoder, _ in candidates:  # weights that cannot be had fail now, not in trial 1
        try:
            check_encoder_weights(encoder, space.base.encoder_weights)
        except SweeperError as exc:
            raise SweeperError(f"{space.source}: recipe.{exc}") from None
    folder = artifact_dir(storage, artifacts) if space.save_weights else None
    if folder is not None and not folder.parent.is_dir():
        raise SweeperError(f"--artifacts: folder {folder.parent} does not exist")
    study = open_study(space, storage, study_name)
    _check_same_split(study, space, data)
    if folder is not None:
        folder.mkdir(exist_ok=True)
        if "artifacts_dir" not in study.user_attrs:
            study.set_user_attr("artifacts_dir", str(folder.resolve()))
    sweep = Sweep(space, study, data, candidates, events=events, artifacts=folder)
    sweep.summary.storage = mask_url(storage_url(storage))
    sweep.summary.candidates = len(candidates)
    stale = sweep.fail_dead_local_trials()
    if stale:
        sweep.summary.messages.append(f"{stale} trial(s) of dead local workers marked FAIL and retried")
    sweep.screen()
    sweep.repeat()
    sweep.summary.ranking = rank_trials(study.get_trials(deepcopy=False), rope=space.rope)
    return sweep.summary


def _check_has_labels(data) -> None:
    """A training file whose every mask would be background gives a meaningless sweep."""
    fold = data.folds[0]
    if not any(info.classes for info in fold.train_data.images):
        raise SweeperError(f"{fold.train_data.annotation_file}: no image has a usable annotation, so every mask "
                           "would be background (see the warnings above, or run sweeper check)")


def _check_same_split(study, space: SearchSpace, data) -> None:
    """A resumed study must use the split it was made with, or its runs are not comparable."""
    from .splits import split_key

    fold = data.folds[0]
    key = split_key(space.base.split, fold.train_data.images) + f"/{space.base.data.subsample}/{space.base.data.val_json}"
    stored = study.user_attrs.get("split_key")
    if stored is None:
        study.set_user_attr("split_key", key)
        study.set_user_attr("space", space.source)
        study.set_user_attr("recipe", _clean(space.base.to_dict()))
    elif stored != key:
        raise SweeperError(f"study {study.study_name!r} was made with a different data split or data; "
                           "use a new --study name (runs on different splits are not comparable)")


# --------------------------------------------------------------------------- report, noise, dashboard


def load_trials(study_name: str | None, storage: str | None, space: str | None):
    """``(name, trials, rope)`` of a study; with one study in the storage, no name is needed."""
    import optuna

    from .space import load_space

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
    try:
        names = [s.study_name for s in optuna.get_all_study_summaries(store)]
    except Exception as exc:  # noqa: BLE001
        raise SweeperError(f"--storage {mask_url(storage_url(storage))}: {_one_line(mask_url(str(exc)))}") from None
    if study_name not in names:
        if len(names) == 1 and not explicit and space is None:
            study_name = names[0]  # one study there: no need to name it
        else:
            from .errors import did_you_mean

            listed = ", ".join(names) or "none"
            raise SweeperError(f"--study: no study {study_name!r} in {mask_url(storage_url(storage))}"
                               f"{did_you_mean(str(study_name), names)}; studies there: {listed}")
    study = optuna.load_study(study_name=study_name, storage=store)
    return study_name, study.get_trials(deepcopy=False), rope


def publish_to_dashboard(study_name: str, storage: str | None, ranking) -> None:
    """Save the ranked table as the study's note and a CI figure, for optuna-dashboard."""
    import optuna
    from optuna_dashboard import save_note, save_plotly_graph_object

    from . import report

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    note = "# sweeper ranking\n\n" + report.to_markdown(ranking)
    save_note(study, note)
    save_plotly_graph_object(study, report.plotly_figure(ranking), graph_object_id="sweeper-ranking")


def plot_curves(trials, path: Path) -> Path:
    """Validation mIoU per epoch of every finished run, one colour per candidate."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from optuna.trial import TrialState

    fig = Figure(figsize=(8, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colours: dict[str, Any] = {}
    palette = [f"C{i}" for i in range(10)]
    for t in trials:
        history = t.user_attrs.get("history")
        cand = t.user_attrs.get("candidate")
        if not history or cand is None or _is_duplicate(t) or t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        first = cand not in colours
        colour = colours.setdefault(cand, palette[len(colours) % len(palette)])
        xs = [h["epoch"] + 1 for h in history]
        ys = [h["miou"] if h["miou"] is not None else float("nan") for h in history]
        ax.plot(xs, ys, color=colour, alpha=0.8, linewidth=1.2, label=cand if first else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation mIoU (dataset level)")
    ax.set_title("learning curves (one line per run)")
    if colours:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def run_noise(space: SearchSpace, *, arch: str | None, encoder: str | None, n_seeds: int, storage: str | None,
              study_name: str, events=None) -> list[str]:
    """Train one baseline with ``n_seeds`` seeds into the study; lines that say what it means."""
    import numpy as np

    from . import stats
    from .train import prepare_data

    data = prepare_data(space.base)
    if (arch is None) != (encoder is None):
        raise SweeperError("--arch and --encoder go together (or leave both out for the space's smallest candidate)")
    if arch is None:
        arch, encoder, params = resolve_candidates(space, data.num_classes)[0]
    else:
        from .train import _check_names

        _check_names(arch, encoder)
        params = None
    space = replace(space, seeds=tuple(range(n_seeds)), racing=False, hparams=(), folds=space.folds[:1],
                    pruner=replace(space.pruner, type="none"))
    study = open_study(space, storage, study_name)
    _check_same_split(study, space, data)
    sweep = Sweep(space, study, data, [(arch, encoder, params)], events=events)
    sweep.fail_dead_local_trials()
    units = [Unit(f"{arch}/{encoder}", arch, encoder, seed, space.folds[0], "noise") for seed in space.seeds]
    while True:
        held = sweep.held_units()
        pending = [u for u in units if u.key not in held]
        if not pending:
            break
        sweep.run_unit(pending[0])
    records, _ = collect_runs(study.get_trials(deepcopy=False))
    runs = np.array([v for cand, _, v in records if cand == f"{arch}/{encoder}"])
    if len(runs) < 2:
        raise SweeperError(f"only {len(runs)} of {n_seeds} runs finished; see the failed trials in the study")
    sigma = float(np.std(runs, ddof=1))
    lines = [
        f"baseline {arch}/{encoder}: {len(runs)} seeds, mIoU mean {runs.mean():.4f}, sd (sigma) {sigma:.4f}",
        "smallest difference detectable with 80% power at alpha 0.05 (two candidates, paired seeds):",
    ]
    for n in (3, 5, 10):
        lines.append(f"  {n:>2} seeds each: {stats.min_detectable_effect(sigma, n):.4f} mIoU")
    needed = stats.seeds_needed(sigma, space.rope)
    lines.append(f"seeds per candidate to resolve a difference of {space.rope:.3f} (the ROPE): "
                 + (str(needed) if needed is not None else "more than 10000"))
    return lines


def dashboard_command(storage: str | None, *, host: str = "127.0.0.1", port: int = 8080,
                      artifacts: str | os.PathLike | None = None) -> list[str]:
    """The optuna-dashboard command line for a storage (bound to loopback unless told).

    The weight files of the study are served too when their folder exists (``artifacts``, or
    the one beside a SQLite or journal file), so each trial's page lists its weights.
    """
    import shutil
    import sys

    url = storage_url(storage)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        raise SweeperError(f"--storage: {url[len('sqlite:///'):]} does not exist; run sweeper tune first")
    if is_journal(url) and not Path(url).exists():
        raise SweeperError(f"--storage: journal file {url} does not exist; run sweeper tune first")
    exe = shutil.which("optuna-dashboard") or str(Path(sys.executable).with_name("optuna-dashboard"))
    command = [exe, url, "--host", host, "--port", str(port), "--quiet"]
    if is_journal(url):
        command += ["--storage-class", "JournalFileStorage"]
    if artifacts or url.startswith("sqlite:///") or is_journal(url):
        folder = artifact_dir(storage, artifacts)
        if artifacts and not folder.is_dir():
            raise SweeperError(f"--artifacts: folder {folder} does not exist")
        if folder.is_dir():
            command += ["--artifact-dir", str(folder)]
    return command
