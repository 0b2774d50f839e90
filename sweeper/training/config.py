"""What defines a run, and the checks that refuse a bad one before any data is read.

:class:`TrainConfig` is recorded in full with every result, so a run can be rebuilt from its
record. Loss, optimizer and scheduler names are checked against the registries of
:mod:`.build`, the same tables the builders read: a new loss is added in one place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from sweeper.errors import SweeperError, did_you_mean
from sweeper.splits import SplitConfig

#: Mixed precision: ``bf16`` and ``fp16`` autocast the forward pass (``fp16`` also scales the
#: loss on CUDA); ``none`` trains in float32.
AMP = ("none", "bf16", "fp16")


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
    written, 0 = only the deterministic resize and normalisation). ``device`` is ``auto`` (CUDA
    when present), ``cpu``, ``cuda`` or ``cuda:N``.
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
    def from_dict(cls, data: dict) -> TrainConfig:
        data = dict(data)
        data["data"] = DataConfig(**data.get("data", {}))
        data["split"] = SplitConfig(**data.get("split", {}))
        return cls(**data)


def validate_config(config: TrainConfig, *, pair: bool = True) -> None:
    """Refuse bad values before any data is read or any model is built.

    ``pair=False`` checks the recipe only and leaves ``arch`` and ``encoder`` unchecked, for a
    recipe that will be crossed with many pairs (a search space). The device is checked either
    way.
    """
    from sweeper.training.build import LOSSES, OPTIMIZERS, SCHEDULERS  # build imports this module

    checks = [("loss", config.loss, LOSSES), ("optimizer", config.optimizer, OPTIMIZERS),
              ("scheduler", config.scheduler, SCHEDULERS), ("amp", config.amp, AMP)]
    for name, value, choices in checks:
        check_choice(name, value, choices)
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
    if pair:
        check_pair_names(config.arch, config.encoder)
    resolve_device(config.device)


def check_choice(name: str, value: str, choices: Iterable[str]) -> None:
    """Refuse ``value`` unless it is one of ``choices`` (a registry's keys); the message lists them."""
    if value not in choices:
        raise SweeperError(
            f"{name}: unknown value {value!r}{did_you_mean(value, choices)}; choose from {', '.join(choices)}"
        )


def check_pair_names(arch: str, encoder: str) -> None:
    """Refuse an architecture or encoder smp does not know (``tu-`` encoders: timm's names)."""
    from sweeper.zoo import catalogue_names

    archs, encoders = catalogue_names(include_timm=False)
    if arch not in archs:
        raise SweeperError(f"arch: unknown architecture {arch!r}{did_you_mean(arch, archs)}")
    if encoder.startswith("tu-"):
        import timm

        if not timm.list_models(encoder[3:].split(".")[0]):
            raise SweeperError(
                f"encoder: timm has no model {encoder[3:]!r}{did_you_mean(encoder[3:], timm.list_models())}"
            )
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
