"""sweeper.sweep.candidates: a space's candidates in its order, deprecated aliases only when named, no twins."""

from __future__ import annotations

import warnings

import pytest

from sweeper import zoo
from sweeper.sweep.candidates import ORDER_SEED, resolve_candidates
from sweeper.sweep.space import parse_space


def _space(**architectures):
    raw = {"name": "t", "recipe": {"epochs": 1, "batch_size": 8, "image_size": 64},
           "architectures": architectures, "seeds": [0], "pruner": "none", "trials": 2}
    return parse_space(raw, source="t.yaml")


def _keys(space) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no alias dropped: nothing to warn about
        return [c.key for c in resolve_candidates(space, num_classes=3)]


FILTERS = dict(archs=["unet", "fpn", "linknet"], encoders=["resnet18", "resnet34", "mobilenet_v2"])


def test_filters_follow_the_space_order():
    by_name = _keys(_space(order="name", **FILTERS))
    assert by_name[:3] == ["fpn/mobilenet_v2", "fpn/resnet18", "fpn/resnet34"]
    space = _space(order="params", **FILTERS)
    params = {c.key: c.params for c in resolve_candidates(space, num_classes=3)}
    assert list(params.values()) == sorted(params.values())
    spread = _keys(_space(**FILTERS))  # the default
    assert {k.split("/")[0] for k in spread[:3]} == {"unet", "fpn", "linknet"}
    assert len({k.split("/")[1] for k in spread[:3]}) == 3  # three encoders before any repeats
    candidates = resolve_candidates(_space(**FILTERS), num_classes=3)
    assert [c.key for c in zoo.order_candidates(candidates, "spread", seed=ORDER_SEED)] == spread


def test_aliases_compete_only_when_the_space_names_them():
    assert _keys(_space(archs=["unet"], encoders=["*efficientnet-b0"])) == ["unet/efficientnet-b0"]
    assert _keys(_space(archs=["unet"], encoders=["timm-efficientnet-b0"])) == ["unet/timm-efficientnet-b0"]
    assert _keys(_space(pairs=["unet/timm-skresnet18"])) == ["unet/timm-skresnet18"]


def test_an_alias_beside_its_twin_is_dropped_with_a_warning():
    space = _space(archs=["unet", "fpn"], encoders=["timm-efficientnet-b0", "timm-skresnet18"], order="name")
    assert _keys(space) == ["fpn/timm-efficientnet-b0", "fpn/timm-skresnet18", "unet/timm-efficientnet-b0",
                            "unet/timm-skresnet18"]  # no twin among them: all stay
    space = _space(archs=["unet"], encoders=["timm-efficientnet-b0", "efficientnet-b0", "timm-skresnet18"])
    with pytest.warns(UserWarning, match=r"1 deprecated smp alias\(es\) left out \(unet/timm-efficientnet-b0\)"):
        keys = [c.key for c in resolve_candidates(space, num_classes=3)]
    assert sorted(keys) == ["unet/efficientnet-b0", "unet/timm-skresnet18"]


def test_explicit_pairs_keep_their_order_less_the_alias_twin():
    space = _space(pairs=["unet/resnet34", "unet/timm-efficientnet-b1", "fpn/timm-efficientnet-b1",
                          "unet/efficientnet-b1"])
    with pytest.warns(UserWarning, match="unet/timm-efficientnet-b1"):
        keys = [c.key for c in resolve_candidates(space, num_classes=3)]
    assert keys == ["unet/resnet34", "fpn/timm-efficientnet-b1", "unet/efficientnet-b1"]
