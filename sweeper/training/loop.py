"""One training run: an smp model trained on one fold with one seed, scored on the whole val set.

:func:`train_run` knows nothing of Optuna. A caller that wants per-epoch reports (the study
module, for pruning) passes ``on_epoch``; an exception raised there (``optuna.TrialPruned``)
ends the run and propagates unchanged.

A run that fails for a reason of its own (the pair does not build, memory runs out, the loss
becomes NaN, a DataLoader worker dies) raises a :class:`~sweeper.errors.RunError` subclass
whose ``kind`` a caller can record; mistakes in the user's input raise
:class:`~sweeper.errors.SweeperError` before any training starts.
"""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from sweeper.errors import DataLoaderError, NonFiniteLoss, OutOfMemory, SweeperError, one_line
from sweeper.training import faults
from sweeper.training.build import build_loss, build_model, build_optimizer, build_scheduler
from sweeper.training.config import TrainConfig, resolve_device, validate_config
from sweeper.training.loaders import PreparedData, make_loaders, prepare_data
from sweeper.training.state import TrainState, capture_rng, restore_rng, save_state
from sweeper.versions import library_versions


@dataclass
class EpochMetrics:
    """One epoch: mean train loss over its batches, val loss averaged over the val images,
    dataset-level mIoU and per-class IoU (NaN where a class is in neither truth nor prediction),
    and the epoch's seconds including validation."""

    epoch: int
    train_loss: float
    val_loss: float
    miou: float
    pixel_accuracy: float
    iou: list[float]
    seconds: float


@dataclass
class RunResult:
    """What a run produced. ``best_miou`` is the highest epoch mIoU (``best_epoch``, 0-based).

    ``images_per_s`` counts training images only; ``peak_memory_mb`` is CUDA's peak allocation
    on CUDA, and the process's peak resident memory on CPU (which includes everything else the
    process holds).
    """

    config: dict
    seed: int
    history: list[EpochMetrics]
    best_epoch: int
    best_miou: float
    params: int
    class_names: list[str]
    wall_time_s: float
    images_per_s: float
    peak_memory_mb: float
    device: str
    versions: dict[str, str]
    #: Epochs carried from the run this one went on from (0: trained from scratch).
    resumed_epochs: int = 0
    #: Why ``save_state_to`` could not be written (None: written, or not asked for).
    state_error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _is_oom(exc: BaseException) -> bool:
    import torch

    text = str(exc).lower()
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in text or (
        "can't allocate memory" in text)


def train_run(
    config: TrainConfig,
    seed: int,
    *,
    data: PreparedData | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    progress: bool | None = None,
    save_best: str | os.PathLike | None = None,
    on_step: Callable[[int, int], None] | None = None,
    resume: TrainState | None = None,
    save_state_to: str | os.PathLike | None = None,
) -> RunResult:
    """Train ``config`` with ``seed`` and score every epoch on the fold's whole val set.

    ``data`` (from :func:`~.loaders.prepare_data`) is loaded here when not given. ``on_epoch`` is
    called after each epoch's validation. ``progress`` shows rich bars (default: when stderr is
    a terminal). ``save_best`` writes the model's state dict at its best epoch (the one
    ``best_miou`` was measured on) to that file, for ensembles and later use. ``on_step(step,
    steps)`` is called after each training step (0-based, of ``steps`` an epoch), for a live view.
    """
    import torch

    from sweeper.seeding import seed_everything, set_deterministic

    validate_config(config)
    device = resolve_device(config.device)
    data = data or prepare_data(config)
    if not 0 <= config.fold < len(data.folds):
        raise SweeperError(f"fold: {config.fold} is out of range; the split has {len(data.folds)} fold(s)")
    fold = data.folds[config.fold]
    fault = faults.fault_for(config)

    set_deterministic(config.deterministic)
    start = time.perf_counter()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    seed_everything(seed)
    model = build_model(config, data.num_classes)
    params = sum(p.numel() for p in model.parameters())
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    criterion = build_loss(config)
    optimizer = build_optimizer(config, model.parameters())
    seed_everything(seed)
    train_ds, train_loader, val_loader = make_loaders(config, fold, seed, device)
    scheduler = build_scheduler(config, optimizer, len(train_loader))
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp)
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    scaler = torch.amp.GradScaler(device_type, enabled=config.amp == "fp16" and device_type == "cuda")
    check_every = 1 if device_type == "cpu" else 25  # a finiteness check syncs the GPU

    history: list[EpochMetrics] = []
    best_state: dict | None = None
    trained_images = 0
    train_seconds = 0.0
    keep_best = save_best is not None or save_state_to is not None
    if resume is not None:
        history = [EpochMetrics(**h) for h in resume.history]
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        scaler.load_state_dict(resume.scaler)
        best_state = resume.best_model or (_cpu_copy(model) if keep_best else None)
        trained_images, train_seconds = resume.trained_images, resume.train_seconds
        restore_rng(resume.rng, train_loader.generator)
    first_epoch = len(history)
    bar = _Bars(progress, config.epochs, len(train_loader), f"{config.arch}/{config.encoder} seed {seed}")

    def forward(images):
        with torch.autocast(device_type, dtype=amp_dtype, enabled=amp_dtype is not None):
            return model(images)

    try:
        with bar:
            for epoch in range(first_epoch, config.epochs):
                epoch_start = time.perf_counter()
                model.train()
                train_ds.set_epoch(epoch)
                running = torch.zeros((), device=device)
                steps = 0
                for step, (images, masks) in enumerate(train_loader):
                    images = images.to(device, non_blocking=True, memory_format=memory_format)
                    masks = masks.to(device, non_blocking=True)
                    faults.maybe_run_out_of_memory(fault)
                    logits = forward(images)
                    loss = faults.maybe_poison_loss(fault, criterion(logits.float(), masks))
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    if scheduler is not None:
                        scheduler.step()
                    running += loss.detach()
                    steps += 1
                    trained_images += images.shape[0]
                    if steps % check_every == 0 and not torch.isfinite(running):
                        raise NonFiniteLoss(f"training loss became {running.item()} at epoch {epoch} step {step}")
                    bar.step()
                    if on_step is not None:
                        on_step(step, len(train_loader))
                if not torch.isfinite(running):
                    raise NonFiniteLoss(f"training loss became {running.item()} at epoch {epoch}")
                train_seconds += time.perf_counter() - epoch_start
                val_loss, scores = _evaluate(model, val_loader, criterion, data.num_classes, device, memory_format,
                                             forward)
                metrics = EpochMetrics(
                    epoch=epoch, train_loss=float(running.item() / max(steps, 1)), val_loss=val_loss,
                    miou=scores.miou, pixel_accuracy=scores.pixel_accuracy, iou=list(scores.iou),
                    seconds=time.perf_counter() - epoch_start,
                )
                if keep_best and _improves(metrics.miou, history):
                    best_state = _cpu_copy(model)
                history.append(metrics)
                bar.epoch(metrics)
                if on_epoch is not None:
                    on_epoch(metrics)
    except RuntimeError as exc:
        if _is_oom(exc):
            if device_type == "cuda":
                torch.cuda.empty_cache()
            raise OutOfMemory(f"out of memory on {device}: {one_line(exc, 200)}") from None
        if "DataLoader worker" in str(exc):
            raise DataLoaderError(one_line(exc)) from None
        raise
    except MemoryError as exc:
        raise OutOfMemory(f"out of memory on {device}: {exc}") from None
    finally:
        if config.deterministic:
            set_deterministic(False)

    best = max(range(len(history)), key=lambda i: _rank_score(history[i].miou))
    if save_best is not None and best_state is not None:
        tmp = Path(f"{save_best}.tmp-{os.getpid()}")
        torch.save(best_state, tmp)
        os.replace(tmp, save_best)
    state_error = None
    if save_state_to is not None:
        try:
            save_state(TrainState(
                config=config.to_dict(), seed=int(seed), epochs=len(history), history=[asdict(h) for h in history],
                model=_cpu_copy(model), optimizer=optimizer.state_dict(), scaler=scaler.state_dict(),
                rng=capture_rng(train_loader.generator), best_model=None if best == len(history) - 1 else best_state,
                trained_images=trained_images, train_seconds=train_seconds), save_state_to)
        except (OSError, RuntimeError) as exc:  # a full disk costs the next rung its head start, not this run
            state_error = one_line(exc, 200)
    if device_type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return RunResult(
        config=config.to_dict(), seed=int(seed), history=history, best_epoch=best,
        best_miou=history[best].miou, params=params, class_names=data.class_names,
        wall_time_s=time.perf_counter() - start,
        images_per_s=trained_images / train_seconds if train_seconds > 0 else 0.0,
        peak_memory_mb=peak, device=device, versions=library_versions(),
        resumed_epochs=first_epoch, state_error=state_error,
    )


def _cpu_copy(model) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _rank_score(miou: float) -> float:
    """How epochs compete for ``best_epoch``: by mIoU, NaN last."""
    return miou if not math.isnan(miou) else -1.0


def _improves(miou: float, history: list[EpochMetrics]) -> bool:
    """Whether this epoch becomes the best one, by the rule that picks ``best_epoch`` (the first
    of equal values wins)."""
    return all(_rank_score(miou) > _rank_score(h.miou) for h in history)


def _evaluate(model, loader, criterion, num_classes, device, memory_format, forward):
    """Val loss averaged over images and scores from one confusion matrix of the whole set."""
    import torch

    from sweeper.metrics import ConfusionMeter

    model.eval()
    meter = ConfusionMeter(num_classes)
    total, images = 0.0, 0
    with torch.inference_mode():
        for batch, masks in loader:
            batch = batch.to(device, non_blocking=True, memory_format=memory_format)
            masks = masks.to(device, non_blocking=True)
            logits = forward(batch).float()
            total += float(criterion(logits, masks)) * batch.shape[0]
            images += batch.shape[0]
            meter.update(logits.argmax(1), masks)
    return total / max(images, 1), meter.compute()


class _Bars:
    """Epoch and step bars on stderr, or nothing (tests, pipes, workers)."""

    def __init__(self, enabled: bool | None, epochs: int, steps: int, label: str):
        from sweeper import console

        self.enabled = console.err.is_terminal if enabled is None else enabled
        self.epochs, self.steps, self.label = epochs, steps, label
        self._progress = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            from sweeper import console

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=console.err, transient=True)
            self._progress.__enter__()
            self._epochs = self._progress.add_task(self.label, total=self.epochs)
            self._steps = self._progress.add_task("  steps", total=self.steps)
        return self

    def step(self):
        if self._progress:
            self._progress.advance(self._steps)

    def epoch(self, metrics: EpochMetrics):
        if self._progress:
            self._progress.update(self._epochs, advance=1, description=f"{self.label} mIoU {metrics.miou:.3f}")
            self._progress.reset(self._steps)

    def __exit__(self, *exc):
        if self._progress:
            self._progress.__exit__(*exc)
        return False
