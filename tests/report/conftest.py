"""The ranking every report test draws: six candidates, a missing run, one single-run candidate."""

from __future__ import annotations

import numpy as np
import pytest

from sweeper import stats as S


@pytest.fixture(scope="module")
def ranking() -> S.Ranking:
    rng = np.random.default_rng(3)
    x = np.array([0.70, 0.698, 0.69, 0.66, 0.65]) + rng.normal(0, 0.004, (5, 5))
    x = np.column_stack([x, np.r_[0.61, [np.nan] * 4]])
    x[2, 3] = np.nan
    candidates = [
        S.Label("unet/resnet34", "unet", "resnet34", 24_436_369, {"lr": 1e-3}),
        S.Label("fpn/resnet34", "fpn", "resnet34", 23_155_026),
        S.Label("unet/resnet18", "unet", "resnet18", 14_328_209),
        S.Label("pspnet/mobilenet_v2", "pspnet", "mobilenet_v2", 2_238_000),
        S.Label("linknet/resnet18", "linknet", "resnet18", None),
        S.Label("manet/vgg11", "manet", "vgg11", None),
    ]
    return S.rank_candidates(x, candidates, rope=0.01)
