"""A run small enough for CPU tests (24 demo images at 64 px, 2 epochs) and its data, loaded once."""

from __future__ import annotations

import pytest

from sweeper.training import DataConfig, TrainConfig, prepare_data

SMALL = TrainConfig(
    arch="unet", encoder="resnet18", epochs=2, batch_size=4, image_size=64, lr=1e-3,
    data=DataConfig(subsample=24),
)


@pytest.fixture(scope="session")
def small() -> TrainConfig:
    return SMALL


@pytest.fixture(scope="session")
def data(small):
    return prepare_data(small)
