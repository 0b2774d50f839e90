"""One training run on the demo data: reproducibility, faults, weights, config validation."""

from __future__ import annotations

import math
import random
import time
from dataclasses import replace

import numpy as np
import pytest

from sweeper.errors import SweeperError
from sweeper.train import (
    BuildError, DataConfig, DataLoaderError, NonFiniteLoss, OutOfMemory, TrainConfig, prepare_data, train_run,
)

SMALL = TrainConfig(
    arch="unet", encoder="resnet18", epochs=2, batch_size=4, image_size=64, lr=1e-3,
    data=DataConfig(subsample=24),
)


@pytest.fixture(scope="module")
def data():
    return prepare_data(SMALL)


def _curve(result):
    return [(h.train_loss, h.val_loss, h.miou, tuple(h.iou)) for h in result.history]


def test_same_seed_is_bit_identical_and_seeds_differ(data):
    first = train_run(SMALL, 0, data=data)
    # Disturb every global generator between the runs: the run must re-seed them itself.
    import torch

    torch.rand(100)
    np.random.rand(10)
    random.random()
    second = train_run(SMALL, 0, data=data)
    other = train_run(SMALL, 1, data=data)
    assert _curve(first) == _curve(second)
    assert _curve(first) != _curve(other)


def test_run_result_records_everything(data):
    result = train_run(SMALL, 3, data=data)
    assert len(result.history) == 2 and result.seed == 3
    assert 0 <= result.best_epoch < 2 and result.best_miou == max(h.miou for h in result.history)
    assert TrainConfig.from_dict(result.config) == SMALL
    assert result.params == 14_329_804 - (12 - 6) * 16 * 9 - (12 - 6)  # unet/resnet18 at 6 classes
    assert result.images_per_s > 0 and result.wall_time_s > 0 and result.peak_memory_mb > 0
    assert result.device == "cpu" and "torch" in result.versions
    assert result.class_names[0] == "background" and len(result.history[0].iou) == len(result.class_names)


def test_on_epoch_sees_every_epoch_and_can_stop_the_run(data):
    seen = []

    class Stop(Exception):
        pass

    def on_epoch(metrics):
        seen.append(metrics.epoch)
        raise Stop

    with pytest.raises(Stop):
        train_run(SMALL, 0, data=data, on_epoch=on_epoch)
    assert seen == [0]


@pytest.mark.parametrize(
    "fault, error",
    [("nan", NonFiniteLoss), ("oom", OutOfMemory), ("build", BuildError), ("worker", DataLoaderError)],
)
def test_injected_faults_raise_typed_errors(data, monkeypatch, fault, error):
    monkeypatch.setenv("SWEEPER_FAULT", fault)
    with pytest.raises(error) as info:
        train_run(replace(SMALL, epochs=1), 0, data=data)
    assert info.value.kind in {"nan", "oom", "build", "dataloader"}


def test_a_real_non_finite_loss_is_caught(data):
    with pytest.raises(NonFiniteLoss):
        train_run(replace(SMALL, epochs=1, lr=1e30, optimizer="sgd"), 0, data=data)


@pytest.mark.parametrize("loss", ["ce", "dice", "focal", "lovasz", "jaccard", "ce+dice"])
def test_every_loss_trains(data, loss):
    result = train_run(replace(SMALL, epochs=1, loss=loss, scheduler="cosine"), 0, data=data)
    assert math.isfinite(result.history[0].train_loss)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_other_optimizers_and_deterministic_mode(data, optimizer):
    import torch

    result = train_run(replace(SMALL, epochs=1, optimizer=optimizer, deterministic=True, scheduler="step"), 0, data=data)
    assert math.isfinite(result.history[0].miou)
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the run


def test_bf16_autocast_and_channels_last_run_on_cpu(data):
    result = train_run(replace(SMALL, epochs=1, amp="bf16", channels_last=True), 0, data=data)
    assert math.isfinite(result.history[0].train_loss)


@pytest.mark.parametrize(
    "change, needle",
    [
        (dict(loss="dcie"), "did you mean 'dice'"),
        (dict(optimizer="adma"), "did you mean 'adam'"),
        (dict(image_size=70), "multiple of 32"),
        (dict(epochs=0), "epochs"),
        (dict(lr=-1.0), "lr"),
        (dict(encoder="resnet19"), "did you mean 'resnet18'"),
        (dict(arch="unett"), "did you mean 'unet'"),
        (dict(device="tpu"), "unknown device"),
        (dict(fold=3), "fold"),
    ],
)
def test_bad_config_is_a_clear_error(data, change, needle):
    with pytest.raises(SweeperError, match=needle):
        train_run(replace(SMALL, **change), 0, data=data)


def test_hub_weights_fail_fast_offline(data, monkeypatch):
    import segmentation_models_pytorch  # noqa: F401 - time the refusal, not the import

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(SweeperError, match="hub downloads are off") as info:
        train_run(replace(SMALL, encoder_weights="imagenet"), 0, data=data)
    assert time.perf_counter() - start < 1.0
    assert "path" in str(info.value)
    with pytest.raises(SweeperError, match="did you mean 'imagenet'"):
        train_run(replace(SMALL, encoder_weights="imagnet"), 0, data=data)
    monkeypatch.delenv("HF_HUB_OFFLINE")  # unset: still no download unless asked for with 0
    start = time.perf_counter()
    with pytest.raises(SweeperError, match="HF_HUB_OFFLINE=0"):
        train_run(replace(SMALL, encoder_weights="imagenet"), 0, data=data)
    assert time.perf_counter() - start < 1.0


def test_local_weights_file_loads(tmp_path, data):
    import torch

    from sweeper.train import build_model

    source = build_model(replace(SMALL, encoder="resnet18"), data.num_classes)
    with torch.no_grad():
        for p in source.encoder.parameters():
            p.fill_(0.5)
    encoder_file = tmp_path / "resnet18.pth"
    torch.save(source.encoder.state_dict(), encoder_file)
    model_file = tmp_path / "whole.pt"
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in source.encoder.state_dict().items()}}, model_file)
    for file in (encoder_file, model_file):
        model = build_model(replace(SMALL, encoder_weights=str(file)), data.num_classes)
        assert all(torch.all(p == 0.5) for p in model.encoder.parameters())
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3)}, wrong)
    with pytest.raises(SweeperError, match="does not fit"):
        build_model(replace(SMALL, encoder_weights=str(wrong)), data.num_classes)
    with pytest.raises(SweeperError, match="does not exist"):
        build_model(replace(SMALL, encoder_weights=str(tmp_path / "missing.pth")), data.num_classes)
