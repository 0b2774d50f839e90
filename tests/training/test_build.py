"""The builders: each registry entry builds what its name says, with the config's values."""

from __future__ import annotations

import warnings
from dataclasses import replace

import pytest

from sweeper.errors import BuildError, SweeperError
from sweeper.training import build_loss, build_model, build_optimizer, build_scheduler


@pytest.fixture(scope="module")
def batch():
    """Logits and targets of 2 images of 3 classes at 8 px, fixed by a seeded generator."""
    import torch

    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 8, 8, generator=gen), torch.randint(0, 3, (2, 8, 8), generator=gen)


def _value(config, batch):
    return float(build_loss(config)(*batch))


def test_every_loss_is_the_one_named(small, batch):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from segmentation_models_pytorch import losses

    kinds = {"dice": losses.DiceLoss, "focal": losses.FocalLoss, "lovasz": losses.LovaszLoss,
             "jaccard": losses.JaccardLoss}
    assert isinstance(build_loss(small), torch.nn.CrossEntropyLoss)
    for name, kind in kinds.items():
        built = build_loss(replace(small, loss=name))
        assert isinstance(built, kind) and built.mode == "multiclass"
    values = {name: _value(replace(small, loss=name), batch) for name in ("ce", "dice", "focal", "lovasz", "jaccard")}
    assert values["ce"] == pytest.approx(float(torch.nn.functional.cross_entropy(*batch)))
    assert len({round(v, 6) for v in values.values()}) == len(values)  # no two losses agree on this batch
    assert _value(replace(small, loss="ce+dice"), batch) == pytest.approx(values["ce"] + values["dice"])


def test_deterministic_cross_entropy_has_the_same_value(small, batch):
    import torch

    loss = build_loss(replace(small, deterministic=True))
    assert not isinstance(loss, torch.nn.CrossEntropyLoss)  # the unreduced kernel, then a mean
    assert float(loss(*batch)) == pytest.approx(_value(small, batch), rel=1e-6)


def test_optimizers_hold_the_config_values(small):
    import torch

    params = [torch.nn.Parameter(torch.zeros(2))]
    adam = build_optimizer(replace(small, lr=0.01, weight_decay=0.5), params)
    assert type(adam) is torch.optim.Adam
    assert (adam.param_groups[0]["lr"], adam.param_groups[0]["weight_decay"]) == (0.01, 0.5)
    assert type(build_optimizer(replace(small, optimizer="adamw"), params)) is torch.optim.AdamW
    sgd = build_optimizer(replace(small, optimizer="sgd", lr=0.1, momentum=0.7), params).param_groups[0]
    assert (sgd["lr"], sgd["momentum"], sgd["nesterov"]) == (0.1, 0.7, True)
    plain = build_optimizer(replace(small, optimizer="sgd", momentum=0.0), params).param_groups[0]
    assert plain["nesterov"] is False


def _lrs(config, steps_per_epoch=3):
    import torch

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_scheduler(config, optimizer, steps_per_epoch)
    if scheduler is None:
        return None
    lrs = []
    for _ in range(config.epochs * steps_per_epoch):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_schedulers_change_the_lr_over_the_whole_run(small):
    config = replace(small, epochs=3)  # 9 steps
    assert _lrs(config) is None
    cosine = _lrs(replace(config, scheduler="cosine"))
    assert cosine == sorted(cosine, reverse=True) and cosine[-1] == pytest.approx(0.0, abs=1e-12)
    step = _lrs(replace(config, scheduler="step"))
    assert step == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001])
    poly = _lrs(replace(config, scheduler="poly"))
    assert poly[0] == pytest.approx((8 / 9) ** 0.9) and poly[-1] == 0.0


def test_builders_refuse_unknown_names_with_the_valid_ones(small):
    with pytest.raises(SweeperError, match="loss: unknown value 'hinge'; choose from ce, dice"):
        build_loss(replace(small, loss="hinge"))
    with pytest.raises(SweeperError, match="choose from adam, adamw, sgd"):
        build_optimizer(replace(small, optimizer="lion"), [])
    with pytest.raises(SweeperError, match="choose from none, cosine, step, poly"):
        build_scheduler(replace(small, scheduler="onecycle"), None, 1)


def test_a_pair_smp_refuses_is_a_build_error(small):
    with pytest.raises(BuildError) as info:
        build_model(replace(small, arch="deeplabv3", encoder="vgg11"), 3)
    assert info.value.kind == "build" and "deeplabv3/vgg11 cannot be built" in str(info.value)
