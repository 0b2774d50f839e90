"""Encoder weights: hub names refused at once offline, local files loaded or refused clearly."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from sweeper.errors import SweeperError
from sweeper.training import build_model, check_encoder_weights, train_run


def test_hub_weights_fail_fast_offline(small, data, monkeypatch):
    import segmentation_models_pytorch  # noqa: F401 - time the refusal, not the import

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(SweeperError, match="hub downloads are off") as info:
        train_run(replace(small, encoder_weights="imagenet"), 0, data=data)
    assert time.perf_counter() - start < 1.0
    assert "path" in str(info.value)
    with pytest.raises(SweeperError, match="did you mean 'imagenet'"):
        train_run(replace(small, encoder_weights="imagnet"), 0, data=data)
    monkeypatch.delenv("HF_HUB_OFFLINE")  # unset: still no download unless asked for with 0
    start = time.perf_counter()
    with pytest.raises(SweeperError, match="HF_HUB_OFFLINE=0"):
        train_run(replace(small, encoder_weights="imagenet"), 0, data=data)
    assert time.perf_counter() - start < 1.0


def test_check_encoder_weights_refuses_what_cannot_be_had(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check_encoder_weights("resnet18", None)
    with pytest.raises(SweeperError, match="file .*missing.pth does not exist"):
        check_encoder_weights("resnet18", str(tmp_path / "missing.pth"))
    with pytest.raises(SweeperError, match="hub downloads are off"):
        check_encoder_weights("resnet18", "imagenet")
    unreadable = tmp_path / "here.pth"
    unreadable.write_bytes(b"")  # an empty or corrupt file fails here, before any study is opened
    with pytest.raises(SweeperError, match="encoder_weights: cannot read .*here.pth"):
        check_encoder_weights("resnet18", str(unreadable))
    import torch

    readable = tmp_path / "ok.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, readable)
    check_encoder_weights("resnet18", str(readable))  # whether it fits the encoder is checked at build


def test_local_weights_file_loads(tmp_path, small, data):
    import torch

    source = build_model(small, data.num_classes)
    with torch.no_grad():
        for p in source.encoder.parameters():
            p.fill_(0.5)
    encoder_file = tmp_path / "resnet18.pth"
    torch.save(source.encoder.state_dict(), encoder_file)
    model_file = tmp_path / "whole.pt"
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in source.encoder.state_dict().items()}}, model_file)
    for file in (encoder_file, model_file):
        model = build_model(replace(small, encoder_weights=str(file)), data.num_classes)
        assert all(torch.all(p == 0.5) for p in model.encoder.parameters())
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3)}, wrong)
    with pytest.raises(SweeperError, match="does not fit ResNetEncoder"):
        build_model(replace(small, encoder_weights=str(wrong)), data.num_classes)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(SweeperError, match="encoder_weights: cannot read .*corrupt.pth: "):
        build_model(replace(small, encoder_weights=str(corrupt)), data.num_classes)
    with pytest.raises(SweeperError, match="does not exist"):
        build_model(replace(small, encoder_weights=str(tmp_path / "missing.pth")), data.num_classes)
