"""Config validation: recipe checks, pair names, and the registries it shares with the builders."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from sweeper.errors import SweeperError
from sweeper.training import (
    AMP,
    LOSSES,
    OPTIMIZERS,
    SCHEDULERS,
    TrainConfig,
    build,
    check_pair_names,
    train_run,
    validate_config,
)


def test_importing_the_package_imports_no_torch():
    heavy = "{'torch', 'segmentation_models_pytorch', 'albumentations'}"
    code = f"import sweeper.training, sys; assert not {heavy} & set(sys.modules), sys.modules.keys()"
    subprocess.run([sys.executable, "-c", code], check=True)


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
def test_bad_config_is_a_clear_error(small, data, change, needle):
    with pytest.raises(SweeperError, match=needle):
        train_run(replace(small, **change), 0, data=data)


def test_a_recipe_is_validated_without_its_pair(small):
    recipe = replace(small, arch="bogus", encoder="nonsense")
    validate_config(recipe, pair=False)
    with pytest.raises(SweeperError, match="arch: unknown architecture 'bogus'"):
        validate_config(recipe)
    with pytest.raises(SweeperError) as info:
        validate_config(replace(recipe, loss="hinge"), pair=False)
    assert str(info.value) == "loss: unknown value 'hinge'; choose from ce, dice, focal, lovasz, jaccard, ce+dice"


def test_pair_names_are_checked_against_smp_and_timm():
    check_pair_names("fpn", "resnet34")
    check_pair_names("unet", "tu-resnet18")
    with pytest.raises(SweeperError, match="timm has no model 'resnet999'"):
        check_pair_names("unet", "tu-resnet999")


@pytest.mark.parametrize("field, registry", [("loss", LOSSES), ("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS)])
def test_validation_accepts_exactly_the_registry_keys(small, monkeypatch, field, registry):
    for name in registry:
        validate_config(replace(small, **{field: name}), pair=False)
    with pytest.raises(SweeperError, match=f"{field}: unknown value 'added'"):
        validate_config(replace(small, **{field: "added"}), pair=False)
    monkeypatch.setitem(registry, "added", registry[next(iter(registry))])
    validate_config(replace(small, **{field: "added"}), pair=False)  # one new entry is all it takes


def test_the_registries_are_the_builders_tables():
    assert (LOSSES, OPTIMIZERS, SCHEDULERS) == (build.LOSSES, build.OPTIMIZERS, build.SCHEDULERS)
    assert LOSSES is build.LOSSES


def test_amp_choices(small):
    for amp in AMP:
        validate_config(replace(small, amp=amp), pair=False)
    with pytest.raises(SweeperError, match="did you mean 'bf16'"):
        validate_config(replace(small, amp="bf61"), pair=False)


def test_config_round_trips_through_a_dict(small):
    assert TrainConfig.from_dict(small.to_dict()) == small
