"""sweeper.zoo.catalogue: budgets, counts as text, natural sort, and the name filters."""

from __future__ import annotations

import pytest

from sweeper import zoo
from sweeper.errors import SweeperError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("50M", 50_000_000), ("50m", 50_000_000), ("2.5M", 2_500_000), ("500K", 500_000),
        ("1.2G", 1_200_000_000), ("50000000", 50_000_000), (" 7M ", 7_000_000), ("3B", 3_000_000_000),
        (1000, 1000),
    ],
)
def test_parse_count_accepts(text, expected):
    assert zoo.parse_count(text) == expected


@pytest.mark.parametrize("text", ["50MB", "-1", "abc", "0", "", "5e6", "1.2.3M", "M", "0.0001"])
def test_parse_count_refuses_with_one_line(text):
    with pytest.raises(SweeperError) as info:
        zoo.parse_count(text)
    message = str(info.value)
    assert "--max-params" in message and "\n" not in message


def test_format_count_round_trips_through_parse():
    for n in (999, 14_329_804, 2_500_000_000):
        assert abs(zoo.parse_count(zoo.format_count(n)) - n) / n < 0.01


def test_natural_sort_puts_small_numbers_first():
    names = ["resnet101", "resnet18", "resnet50", "efficientnet-b10", "efficientnet-b2"]
    assert sorted(names, key=zoo.natural_key) == [
        "efficientnet-b2", "efficientnet-b10", "resnet18", "resnet50", "resnet101",
    ]


def test_select_pairs_filters_wildcards_and_excludes():
    archs = ["unet", "fpn", "pan"]
    encoders = ["resnet101", "resnet18", "vgg11", "vgg11_bn", "vgg13_bn"]
    chosen_archs, chosen = zoo.select_pairs(
        archs, encoders, arch_filter=["unet,pan"], encoder_patterns=["resnet*", "vgg*"], exclude_patterns=["*_bn"]
    )
    assert chosen_archs == ["unet", "pan"]
    assert chosen == ["resnet18", "resnet101", "vgg11"]


def test_select_pairs_names_the_close_match():
    with pytest.raises(SweeperError, match=r"did you mean 'unet'"):
        zoo.select_pairs(["unet", "fpn"], ["resnet18"], arch_filter=["unte"])
    with pytest.raises(SweeperError, match=r"matches no encoder.*'resnet18'"):
        zoo.select_pairs(["unet"], ["resnet18"], encoder_patterns=["resnet19"])


def test_names_are_smp_archs_and_encoders_and_come_from_the_cache_again():
    archs, encoders = zoo.catalogue_names(include_timm=False)
    assert {"unet", "fpn", "segformer"} <= set(archs)
    assert "resnet18" in encoders and not any(e.startswith("tu-") for e in encoders)
    assert zoo.catalogue_names(include_timm=False) == (archs, encoders)
