"""One training run: an smp model trained on one fold with one seed, scored on the whole val set.

:func:`train_run` knows nothing of Optuna. A caller that wants per-epoch reports (the study
module, for pruning) passes ``on_epoch``; an exception raised there (``optuna.TrialPruned``)
ends the run and propagates unchanged.

A run that fails for a reason of its own (the pair does not build, memory runs out, the loss
becomes NaN, a DataLoader worker dies) raises a :class:`RunError` subclass whose ``kind`` a
caller can record; mistakes in the user's input raise :class:`~sweeper.errors.SweeperError`
before any training starts.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path

from .errors import SweeperError, did_you_mean
from .splits import SplitConfig

LOSSES = ("ce", "dice", "focal", "lovasz", "jaccard", "ce+dice")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "step", "poly")
AMP = ("none", "bf16", "fp16")

#: Testing hook: ``SWEEPER_FAULT=nan|oom|build|worker`` makes every run fail that way, so the
#: fault handling of ``tune`` can be exercised on real runs; ``nan@fpn/*`` limits it to the
#: pairs that match the fnmatch pattern.
FAULT_ENV = "SWEEPER_FAULT"


def _fault(config: "TrainConfig") -> str | None:
    import fnmatch

    value = os.environ.get(FAULT_ENV)
    if not value:
        return None
    kind, _, pattern = value.partition("@")
    if pattern and not fnmatch.fnmatchcase(f"{config.arch}/{config.encoder}", pattern):
        return None
    return kind


class RunError(Exception):
    """A run that ended early for a reason of its own; ``kind`` names the reason."""

    kind = "error"


class BuildError(RunError):
    kind = "build"


class OutOfMemory(RunError):
    kind = "oom"


class NonFiniteLoss(RunError):
    kind = "nan"


class DataLoaderError(RunError):
    kind = "dataloader"


@dataclass
class DataConfig:
    """Where the data is. No ``train_json`` means the built-in demo dataset.

    ``image_root`` defaults to the annotation file's folder. A ``val_json`` replaces the split.
    ``subsample`` keeps the first N images of the training file (after a seeded shuffle), for
    debug runs.
    """

    train_json: str | None = None
    image_root: str | None = None
    val_json: str | None = None
    val_root: str | None = None
    subsample: int | None = None


@dataclass
class TrainConfig:
    """Everything that defines a run besides its seed; recorded in full with every result.

    Defaults are the competition recipe: Adam, lr 1e-4, weight decay 1e-6, cross-entropy, 8
    epochs, batch 8, 256 px. ``encoder_weights`` is None (random init), a path to a local
    weights file, or an smp weight name (``imagenet``), which needs the Hugging Face hub.
    ``augment`` is an augmentation recipe (see :mod:`sweeper.augment`); None is the default
    recipe. ``augment_strength`` scales the probability of every random training step (1 = as
    written, 0 = only the deterministic resize and normalisation). ``device`` is ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
    """

    arch: str = "unet"
    encoder: str = "resnet18"
    encoder_weights: str | None = None
    epochs: int = 8
    batch_size: int = 8
    image_size: int = 256
    optimizer: str = "adam"
    lr: float = 1e-4
    weight_decay: float = 1e-6
    momentum: float = 0.9
    loss: str = "ce"
    scheduler: str = "none"
    amp: str = "none"
    channels_last: bool = False
    deterministic: bool = False
    device: str = "auto"
    num_workers: int | None = None
    augment: dict | None = None
    augment_strength: float = 1.0
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    fold: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        data = dict(data)
        data["data"] = DataConfig(**data.get("data", {}))
        data["split"] = SplitConfig(**data.get("split", {}))
        return cls(**data)


@dataclass
class EpochMetrics:
    """One epoch: mean train loss over its batches, val loss over the val pixels, dataset-level
    mIoU and per-class IoU (NaN where a class is in neither truth nor prediction)."""

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

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PreparedData:
    """Loaded annotation files and the folds of a study: loaded once, shared by every run."""

    folds: list
    class_names: list[str]
    num_classes: int
    source: str


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("torch", "segmentation-models-pytorch", "timm", "albumentations", "numpy", "optuna"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def validate_config(config: TrainConfig) -> None:
    """Refuse bad values before any data is read or any model is built."""
    checks = [("loss", config.loss, LOSSES), ("optimizer", config.optimizer, OPTIMIZERS),
              ("scheduler", config.scheduler, SCHEDULERS), ("amp", config.amp, AMP)]
    for name, value, choices in checks:
        if value not in choices:
            raise SweeperError(f"{name}: unknown value {value!r}{did_you_mean(value, choices)}; choose from {', '.join(choices)}")
    for name in ("epochs", "batch_size", "image_size"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SweeperError(f"{name}: must be a positive integer, got {value!r}")
    if config.image_size % 32:
        raise SweeperError(f"image_size: smp encoders need a multiple of 32, got {config.image_size}")
    if not (isinstance(config.lr, (int, float)) and config.lr > 0 and math.isfinite(config.lr)):
        raise SweeperError(f"lr: must be a positive number, got {config.lr!r}")
    if not (isinstance(config.augment_strength, (int, float)) and 0 <= config.augment_strength <= 10):
        raise SweeperError(f"augment_strength: must be a number in 0..10, got {config.augment_strength!r}")
    if not (isinstance(config.weight_decay, (int, float)) and config.weight_decay >= 0):
        raise SweeperError(f"weight_decay: must be >= 0, got {config.weight_decay!r}")
    _check_names(config.arch, config.encoder)
    resolve_device(config.device)


def _check_names(arch: str, encoder: str) -> None:
    from .zoo import _catalogue_names

    archs, encoders = _catalogue_names(include_timm=False)
    if arch not in archs:
        raise SweeperError(f"arch: unknown architecture {arch!r}{did_you_mean(arch, archs)}")
    if encoder.startswith("tu-"):
        import timm

        if not timm.list_models(encoder[3:].split(".")[0]):
            raise SweeperError(f"encoder: timm has no model {encoder[3:]!r}{did_you_mean(encoder[3:], timm.list_models())}")
    elif encoder not in encoders:
        raise SweeperError(f"encoder: unknown encoder {encoder!r}{did_you_mean(encoder, encoders)}")


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; an unavailable device is an error."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SweeperError(f"--device {device}: no CUDA device is visible here (use cpu or auto)")
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise SweeperError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return device
    raise SweeperError(f"--device: unknown device {device!r} (use auto, cpu, cuda or cuda:N)")


# --------------------------------------------------------------------------- data


def prepare_data(config: TrainConfig) -> PreparedData:
    """Load and validate the annotation files and make the study's folds (same for every run)."""
    from .data import load_coco
    from .splits import make_folds

    data = config.data
    if data.train_json is None and (data.image_root or data.val_json or data.val_root):
        given = next(f"--{k.replace('_', '-')}" for k in ("image_root", "val_json", "val_root") if getattr(data, k))
        raise SweeperError(f"{given} needs --train-json (without it the built-in demo data is used)")
    if data.train_json is None:
        from .demo import demo_dataset_paths

        paths = demo_dataset_paths()
        train_json, root = str(paths[0]), str(paths[1])
    else:
        train_json, root = data.train_json, data.image_root
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        train = load_coco(train_json, root)
        val = None
        if data.val_json:
            val = load_coco(data.val_json, data.val_root, categories=train.categories)
    folds = make_folds(config.split, train, val)
    if data.subsample:
        folds = [_subsample(f, data.subsample, config.split.seed) for f in folds]
    return PreparedData(folds=folds, class_names=train.class_names, num_classes=train.num_classes, source=train_json)


def _subsample(fold, n: int, seed: int):
    """Keep about ``n`` images of a fold (80% train, 20% val, at least 2 each), seeded."""
    import numpy as np

    from .splits import Fold

    rng = np.random.default_rng(seed)
    n_val = max(2, n // 5)
    n_train = max(2, n - n_val)
    train_idx = np.sort(rng.permutation(fold.train_idx)[:n_train])
    val_idx = np.sort(rng.permutation(fold.val_idx)[:n_val])
    return Fold(fold.index, fold.train_data, train_idx, fold.val_data, val_idx)


class _CrashingDataset:
    """Wraps a dataset so that a DataLoader worker process dies on its first item (testing)."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        import torch

        if torch.utils.data.get_worker_info() is not None:
            os._exit(3)
        return self.inner[i]

    def set_epoch(self, epoch):
        self.inner.set_epoch(epoch)


def _scaled_recipe(recipe: dict | None, strength: float) -> dict | None:
    """The recipe with every training step's ``p`` multiplied by ``strength`` (capped at 1)."""
    if strength == 1.0:
        return recipe
    from .augment import default_recipe

    recipe = default_recipe() if recipe is None else recipe
    steps = []
    for step in recipe["train"]:
        if isinstance(step, str):
            step = {"name": step}
        step = dict(step)
        if step.get("name") not in ("Resize", "Normalize", "PadIfNeeded", "LongestMaxSize", "SmallestMaxSize"):
            step["p"] = min(1.0, float(step.get("p", 0.5)) * strength)  # albumentations default p: 0.5
        steps.append(step)
    return {**recipe, "train": steps}


def _loaders(config: TrainConfig, fold, seed: int, device: str):
    import torch

    from .augment import build_transforms
    from .data import SegmentationDataset
    from .seeding import make_generator, worker_init_fn

    train_tf, val_tf = build_transforms(_scaled_recipe(config.augment, config.augment_strength), size=config.image_size)
    train_ds = SegmentationDataset(fold.train_data, fold.train_idx, train_tf, seed=seed)
    val_ds = SegmentationDataset(fold.val_data, fold.val_idx, val_tf, seed=seed)
    if len(train_ds) < config.batch_size:
        raise SweeperError(
            f"batch_size {config.batch_size} is larger than the {len(train_ds)} training images of fold {fold.index}"
        )
    workers = config.num_workers
    if workers is None:
        workers = 0 if device == "cpu" else min(4, os.cpu_count() or 1)
    if _fault(config) == "worker":
        train_ds, workers = _CrashingDataset(train_ds), max(1, workers)
    common = dict(num_workers=workers, pin_memory=device.startswith("cuda"), worker_init_fn=worker_init_fn)
    train = torch.utils.data.DataLoader(
        train_ds, batch_size=config.batch_size, shuffle=True, drop_last=True,
        generator=make_generator(seed), **common,
    )
    val = torch.utils.data.DataLoader(val_ds, batch_size=config.batch_size, shuffle=False, **common)
    return train_ds, train, val


# --------------------------------------------------------------------------- model, loss, optimiser


def build_model(config: TrainConfig, num_classes: int):
    """The smp model of ``config``, with local or hub encoder weights if asked for.

    A pair that smp refuses raises :class:`BuildError`; weights that cannot be had (hub offline,
    a file that does not fit) raise :class:`SweeperError`, as they are the user's to fix.
    """
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import segmentation_models_pytorch as smp

    weights = config.encoder_weights
    hub_name = None
    if weights and not _looks_like_path(weights):
        hub_name = _check_hub_weights(smp, config.encoder, weights)
    if _fault(config) == "build":
        raise BuildError(f"{config.arch}/{config.encoder}: simulated build failure ({FAULT_ENV}=build)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = smp.create_model(
                config.arch, encoder_name=config.encoder, encoder_weights=hub_name,
                classes=num_classes, in_channels=3,
            )
    except OSError as exc:  # the hub could not be reached
        raise SweeperError(
            f"encoder_weights {weights!r} for {config.encoder} could not be downloaded ({type(exc).__name__}); "
            "download the file once where the hub is reachable and set encoder_weights to its path"
        ) from None
    except (torch.OutOfMemoryError, MemoryError) as exc:
        raise OutOfMemory(f"{config.arch}/{config.encoder}: out of memory while building: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - smp raises many types for incompatible pairs
        raise BuildError(f"{config.arch}/{config.encoder} cannot be built: {' '.join(str(exc).split())}") from None
    if weights and hub_name is None:
        load_encoder_weights(model, weights)
    return model


def check_encoder_weights(encoder: str, weights: str | None) -> None:
    """Refuse weights that cannot be had (a missing file, an unknown name, the hub off) up front."""
    if not weights:
        return
    if _looks_like_path(weights):
        if not Path(weights).expanduser().is_file():
            raise SweeperError(f"encoder_weights: file {weights} does not exist")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import segmentation_models_pytorch as smp
    _check_hub_weights(smp, encoder, weights)


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith((".pth", ".pt", ".bin", ".safetensors", ".ckpt")) or Path(value).exists()


def _check_hub_weights(smp, encoder: str, name: str) -> str:
    """Fail fast (no network round trip) where hub weights cannot be had."""
    if encoder.startswith("tu-"):
        available = ["imagenet (the timm default tag)"]
    else:
        available = list(smp.encoders.encoders[encoder]["pretrained_settings"])
        if name not in available:
            raise SweeperError(
                f"encoder_weights: {encoder} has no weights named {name!r}{did_you_mean(name, available)}; "
                f"smp knows {', '.join(available) or 'none'}, or give a local file path"
            )
    # Downloads happen only on request: without HF_HUB_OFFLINE=0 sweeper never asks the hub, so
    # a machine without network fails here at once instead of after ~30 s of retries.
    if os.environ.get("HF_HUB_OFFLINE", "").lower() not in ("0", "false", "no", "off"):
        raise SweeperError(
            f"encoder_weights {name!r} for {encoder} come from the Hugging Face hub, and hub downloads are off "
            "(set HF_HUB_OFFLINE=0 to allow them); or download the file once and set encoder_weights to its path"
        )
    return name


def load_encoder_weights(model, path: str) -> None:
    """Load a local weights file into the encoder (or the whole model, if its keys say so).

    Accepts a plain state dict, one nested under ``state_dict``/``model``, safetensors, and
    keys prefixed ``encoder.`` (a whole smp model). ``torch.load`` runs with
    ``weights_only=True``: a checkpoint never executes code.
    """
    import torch

    file = Path(path).expanduser()
    if not file.is_file():
        raise SweeperError(f"encoder_weights: file {file} does not exist")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file), device="cpu")
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt or unsafe files raise many types
        raise SweeperError(f"encoder_weights: cannot read {file}: {' '.join(str(exc).split())[:200]}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise SweeperError(f"encoder_weights: {file} holds no state dict")
    target = model.encoder
    if any(k.startswith("encoder.") for k in state):
        if any(k.startswith(("decoder.", "segmentation_head.")) for k in state):
            target = model
        else:
            state = {k.removeprefix("encoder."): v for k, v in state.items()}
    try:
        target.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise SweeperError(f"encoder_weights: {file} does not fit {model.encoder.__class__.__name__}: {' '.join(first[:2])[:300]}") from None


def build_loss(config: TrainConfig):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from segmentation_models_pytorch import losses

    if config.loss == "ce":
        if config.deterministic:
            # The 2-D NLL kernel on CUDA has no deterministic mode; the unreduced one does.
            ce = torch.nn.CrossEntropyLoss(reduction="none")
            return lambda logits, target: ce(logits, target).mean()
        return torch.nn.CrossEntropyLoss()
    if config.loss == "ce+dice":
        ce = build_loss(replace(config, loss="ce"))
        dice = losses.DiceLoss(mode="multiclass")
        return lambda logits, target: ce(logits, target) + dice(logits, target)
    factory = {"dice": losses.DiceLoss, "focal": losses.FocalLoss, "lovasz": losses.LovaszLoss, "jaccard": losses.JaccardLoss}
    return factory[config.loss](mode="multiclass")


def build_optimizer(config: TrainConfig, params):
    import torch

    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=config.momentum > 0)


def build_scheduler(config: TrainConfig, optimizer, steps_per_epoch: int):
    """A per-step schedule over the whole run (None for a constant learning rate)."""
    import torch

    total = max(1, config.epochs * steps_per_epoch)
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, total // 3), gamma=0.1)
    if config.scheduler == "poly":
        return torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=total, power=0.9)
    return None


# --------------------------------------------------------------------------- the run


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc).lower() or "can't allocate memory" in str(exc).lower()


def train_run(
    config: TrainConfig,
    seed: int,
    *,
    data: PreparedData | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    progress: bool | None = None,
    save_best: str | os.PathLike | None = None,
) -> RunResult:
    """Train ``config`` with ``seed`` and score every epoch on the fold's whole val set.

    ``data`` (from :func:`prepare_data`) is loaded here when not given. ``on_epoch`` is called
    after each epoch's validation. ``progress`` shows rich bars (default: when stderr is a
    terminal). ``save_best`` writes the model's state dict at its best epoch (the one
    ``best_miou`` was measured on) to that file, for ensembles and later use.
    """
    import torch

    from .seeding import seed_everything, set_deterministic

    validate_config(config)
    device = resolve_device(config.device)
    data = data or prepare_data(config)
    if not 0 <= config.fold < len(data.folds):
        raise SweeperError(f"fold: {config.fold} is out of range; the split has {len(data.folds)} fold(s)")
    fold = data.folds[config.fold]
    fault = _fault(config)

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
    train_ds, train_loader, val_loader = _loaders(config, fold, seed, device)
    scheduler = build_scheduler(config, optimizer, len(train_loader))
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp)
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    scaler = torch.amp.GradScaler(device_type, enabled=config.amp == "fp16" and device_type == "cuda")
    check_every = 1 if device_type == "cpu" else 25

    history: list[EpochMetrics] = []
    best_state: dict | None = None
    trained_images = 0
    train_seconds = 0.0
    bar = _Bars(progress, config.epochs, len(train_loader), f"{config.arch}/{config.encoder} seed {seed}")

    def forward(images):
        with torch.autocast(device_type, dtype=amp_dtype, enabled=amp_dtype is not None):
            return model(images)

    try:
        with bar:
            for epoch in range(config.epochs):
                epoch_start = time.perf_counter()
                model.train()
                train_ds.set_epoch(epoch)
                running = torch.zeros((), device=device)
                steps = 0
                for step, (images, masks) in enumerate(train_loader):
                    images = images.to(device, non_blocking=True, memory_format=memory_format)
                    masks = masks.to(device, non_blocking=True)
                    if fault == "oom":
                        raise torch.OutOfMemoryError("CUDA out of memory (simulated by SWEEPER_FAULT=oom)")
                    logits = forward(images)
                    loss = criterion(logits.float(), masks)
                    if fault == "nan":
                        loss = loss * float("nan")
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
                if not torch.isfinite(running):
                    raise NonFiniteLoss(f"training loss became {running.item()} at epoch {epoch}")
                train_seconds += time.perf_counter() - epoch_start
                val_loss, scores = _evaluate(model, val_loader, criterion, data.num_classes, device, memory_format, forward)
                metrics = EpochMetrics(
                    epoch=epoch, train_loss=float(running.item() / max(steps, 1)), val_loss=val_loss,
                    miou=scores.miou, pixel_accuracy=scores.pixel_accuracy, iou=list(scores.iou),
                    seconds=time.perf_counter() - epoch_start,
                )
                if save_best is not None and _improves(metrics.miou, history):
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                history.append(metrics)
                bar.epoch(metrics)
                if on_epoch is not None:
                    on_epoch(metrics)
    except RuntimeError as exc:
        if _is_oom(exc):
            if device_type == "cuda":
                torch.cuda.empty_cache()
            raise OutOfMemory(f"out of memory on {device}: {' '.join(str(exc).split())[:200]}") from None
        if "DataLoader worker" in str(exc):
            raise DataLoaderError(' '.join(str(exc).split())[:300]) from None
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
    )


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

    from .metrics import ConfusionMeter

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
        from . import console

        self.enabled = console.err.is_terminal if enabled is None else enabled
        self.epochs, self.steps, self.label = epochs, steps, label
        self._progress = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            from . import console

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
