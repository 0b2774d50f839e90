"""sweeper.zoo.counter: one encoder module shared by every depth and output stride, left intact."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

from sweeper.zoo.counter import PairCounter, encoder_variant  # noqa: E402


def _counter():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PairCounter(classes=12, in_channels=3, image_size=64)


def test_a_dilated_variant_is_undone_after_use():
    counter = _counter()
    dilated = counter.encoder("resnet18", 5, 8)
    plain = counter.encoder("resnet18", 5, 32)
    assert dilated.module is plain.module  # one construction serves both
    before = [(m.stride, m.dilation, m.padding) for m in plain.module.modules() if isinstance(m, torch.nn.Conv2d)]
    with encoder_variant(dilated) as module:
        assert module.output_stride == 8
        assert any(m.dilation == (4, 4) for m in module.layer4.modules() if isinstance(m, torch.nn.Conv2d))
    after = [(m.stride, m.dilation, m.padding) for m in plain.module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert after == before and plain.module.output_stride == 32


def test_depth_and_refused_dilation_of_a_shared_encoder():
    counter = _counter()
    shallow = counter.encoder("resnet18", 3, 32)
    with encoder_variant(shallow) as module:
        assert len(module.out_channels) == 4
    assert len(counter.encoder("resnet18", 5, 32).module.out_channels) == 6
    refused = counter.encoder("densenet121", 5, 16)
    assert refused.error and "dilated" in refused.error
    assert counter.encoder("densenet121", 5, 32).error is None
