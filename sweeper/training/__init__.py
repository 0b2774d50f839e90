"""Trains one run: an smp model on one fold with one seed, from a validated config to a result."""

from sweeper.training.build import (
    LOSSES,
    OPTIMIZERS,
    SCHEDULERS,
    build_loss,
    build_model,
    build_optimizer,
    build_scheduler,
)
from sweeper.training.config import AMP, DataConfig, TrainConfig, check_pair_names, resolve_device, validate_config
from sweeper.training.loaders import PreparedData, data_files, make_loaders, prepare_data
from sweeper.training.loop import EpochMetrics, RunResult, train_run
from sweeper.training.weights import check_encoder_weights, load_encoder_weights

__all__ = [
    "AMP",
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULERS",
    "DataConfig",
    "EpochMetrics",
    "PreparedData",
    "RunResult",
    "TrainConfig",
    "build_loss",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "check_encoder_weights",
    "check_pair_names",
    "data_files",
    "load_encoder_weights",
    "make_loaders",
    "prepare_data",
    "resolve_device",
    "train_run",
    "validate_config",
]
