"""sweeper.zoo.order: every prefix of the spread order covers architectures, families and sizes.

The properties are checked on a hand-built catalogue (fast, every case known) and on the real
zoo-50m catalogue at 12 classes and 256 px, counted once per session (about 8 s cold on 2 cores).
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sweeper import zoo
from sweeper.errors import SweeperError
from sweeper.zoo import Candidate, encoder_family, order_candidates

BUDGET = 50_000_000

# --------------------------------------------------------------------------- a synthetic catalogue

# 4 families x 3 encoders each, from 2M to 48M parameters, so that each family spans the budget.
ENCODERS = {
    "resnet18": 2e6, "resnet50": 20e6, "resnet101": 45e6,
    "efficientnet-b0": 3e6, "efficientnet-b4": 15e6, "efficientnet-b7": 48e6,
    "vgg11": 9e6, "vgg16": 30e6, "vgg19": 40e6,
    "mit_b0": 4e6, "mit_b2": 25e6, "mit_b4": 44e6,
}
ARCHS = {"unet": 1.0, "fpn": 0.9, "pan": 0.8, "linknet": 0.85, "manet": 1.02}


def _candidate(arch: str, encoder: str, params: float) -> Candidate:
    params = int(params)
    return Candidate(arch, encoder, params, params * 3 // 4, params - params * 3 // 4, 1.0)


def _synthetic(drop: tuple[str, ...] = ()) -> list[Candidate]:
    return [_candidate(a, e, p * f) for a, f in ARCHS.items() for e, p in ENCODERS.items() if f"{a}/{e}" not in drop]


def _check_archs_balanced(order: list[Candidate]) -> None:
    """No architecture is picked a (k+1)-th time while another with candidates left has fewer than k."""
    total = Counter(c.arch for c in order)
    seen: Counter = Counter()
    for i, c in enumerate(order):
        for arch in total:
            if seen[arch] < total[arch]:  # not exhausted
                assert seen[arch] >= seen[c.arch], (i, c.key, dict(seen))
        seen[c.arch] += 1


def _in_fifths(prefix: list[Candidate], all_candidates: list[Candidate], budget: int = BUDGET) -> dict:
    """Both readings of "the smallest and the largest fifth": of the budget (<= 1/5, > 4/5) and by rank."""
    ranked = sorted(c.params for c in all_candidates)
    fifth = len(ranked) // 5
    return {
        "budget_small": sum(c.params <= budget / 5 for c in prefix),
        "budget_large": sum(c.params > budget * 4 / 5 for c in prefix),
        "rank_small": sum(c.params <= ranked[fifth - 1] for c in prefix),
        "rank_large": sum(c.params >= ranked[-fifth] for c in prefix),
    }


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_every_prefix_covers_every_architecture_before_a_repeat(seed):
    catalogue = _synthetic(drop=("pan/resnet18", "pan/vgg11", "manet/mit_b4"))  # unequal counts per arch
    order = order_candidates(catalogue, "spread", seed=seed)
    assert sorted(c.key for c in order) == sorted(c.key for c in catalogue)  # a permutation
    _check_archs_balanced(order)
    assert {c.arch for c in order[:len(ARCHS)]} == set(ARCHS)


def test_an_architecture_with_few_candidates_drops_out_and_the_others_go_on():
    catalogue = _synthetic() + [_candidate("dpt", "resnet18", 30e6)]
    order = order_candidates(catalogue, "spread")
    _check_archs_balanced(order)
    assert [c.arch for c in order].count("dpt") == 1 and order.index(catalogue[-1]) < len(ARCHS) + 1


@pytest.mark.parametrize("seed", [0, 3])
def test_encoders_are_new_and_families_interleave_in_every_prefix(seed):
    order = order_candidates(_synthetic(), "spread", seed=seed)
    first = order[:len(ENCODERS)]
    assert len({c.encoder for c in first}) == len(ENCODERS)  # no encoder twice before all are used
    for n in range(1, len(first) + 1):
        counts = Counter(encoder_family(c.encoder) for c in first[:n])
        assert max(counts.values()) - min(counts.get(f, 0) for f in ("resnet", "efficientnet", "vgg", "mit")) <= 1


@pytest.mark.parametrize("seed", range(10))
def test_the_first_two_rounds_spread_sizes_over_the_budget(seed):
    catalogue = _synthetic()
    order = order_candidates(catalogue, "spread", seed=seed)
    fifths = _in_fifths(order[:2 * len(ARCHS)], catalogue)
    assert all(fifths.values()), fifths
    # Smallest first, by contrast, reaches neither the top fifth of the budget nor of the ranks.
    smallest = _in_fifths(order_candidates(catalogue, "params")[:2 * len(ARCHS)], catalogue)
    assert smallest["budget_large"] == smallest["rank_large"] == 0


def test_the_order_is_a_pure_function_of_the_set_and_the_seed():
    catalogue = _synthetic()
    shuffled = list(catalogue)
    random.Random(5).shuffle(shuffled)
    order = order_candidates(catalogue, "spread", seed=4)
    assert order_candidates(shuffled, "spread", seed=4) == order
    assert order_candidates(catalogue, "spread", seed=4) == order
    assert order_candidates(catalogue, "spread", seed=5) != order


def test_params_and_name_orders():
    catalogue = _synthetic()
    by_params = order_candidates(catalogue, "params")
    assert [c.params for c in by_params] == sorted(c.params for c in catalogue)
    by_name = order_candidates(reversed(catalogue), "name")
    assert [c.key for c in by_name][:4] == ["fpn/efficientnet-b0", "fpn/efficientnet-b4", "fpn/efficientnet-b7",
                                            "fpn/mit_b0"]
    assert [c.key for c in by_name][6:9] == ["fpn/resnet18", "fpn/resnet50", "fpn/resnet101"]  # natural order
    with pytest.raises(SweeperError, match="did you mean 'spread'"):
        order_candidates(catalogue, "spred")


def test_the_space_knows_the_same_orders():
    from sweeper.sweep.space import ORDERS

    assert ORDERS == zoo.ORDERS


@pytest.mark.parametrize(
    "encoder, family",
    [
        ("resnet18", "resnet"), ("resnet152", "resnet"), ("resnext101_32x8d", "resnext"), ("dpn68b", "dpn"),
        ("vgg11_bn", "vgg"), ("senet154", "senet"), ("se_resnet50", "senet"), ("se_resnext50_32x4d", "senet"),
        ("densenet161", "densenet"), ("inceptionv4", "inception"), ("inceptionresnetv2", "inception"),
        ("efficientnet-b3", "efficientnet"), ("timm-efficientnet-b3", "efficientnet"),
        ("timm-tf_efficientnet_lite0", "efficientnet"), ("mobilenet_v2", "mobilenet"), ("xception", "xception"),
        ("mit_b2", "mit"), ("mobileone_s4", "mobileone"), ("timm-skresnet18", "sknet"),
        ("timm-skresnext50_32x4d", "sknet"), ("tu-mobilenetv3_large_100", "mobilenet"),
        ("tu-convnext_tiny", "convnext"), ("tu-regnety_016", "regnet"), ("tu-efficientnetv2_rw_s", "efficientnet"),
        ("tu-resnet50d.a1_in1k", "resnet"), ("tu-legacy_seresnet18", "senet"), ("tu-res2net50_26w_4s", "res2net"),
        ("tu-test_vit", "vit"),
    ],
)
def test_encoder_family(encoder, family):
    assert encoder_family(encoder) == family


def test_every_native_encoder_falls_in_one_of_twelve_families():
    _, encoders = zoo.catalogue_names(include_timm=False)
    families = Counter(encoder_family(e) for e in encoders if not zoo.is_deprecated(e))
    assert set(families) == {"resnet", "resnext", "dpn", "vgg", "senet", "densenet", "inception", "efficientnet",
                             "mobilenet", "xception", "mit", "mobileone"}, families


# --------------------------------------------------------------------------- the real zoo-50m catalogue


@pytest.fixture(scope="module")
def zoo_50m():
    """zoo-50m's candidates as ``tune`` sees them (12 classes, 256 px, runs only), and the
    catalogue with the deprecated aliases too."""
    from sweeper.sweep.candidates import resolve_candidates
    from sweeper.sweep.space import load_space

    space = load_space("zoo-50m")
    assert space.architectures.max_params == BUDGET and space.base.image_size == 256
    assert space.architectures.order == "spread"
    with_aliases = zoo.list_candidates(max_params=BUDGET, deprecated=True, classes=12, image_size=256, jobs=2)
    return resolve_candidates(space, num_classes=12), [c for c in with_aliases.candidates if c.runs]


def test_zoo_50m_first_40_are_a_spread_of_the_catalogue(zoo_50m):
    order, _ = zoo_50m
    first = order[:40]
    assert {c.arch for c in first} == {c.arch for c in order}  # every architecture that runs at 256 px
    assert len({c.arch for c in order}) >= 11
    assert len({encoder_family(c.encoder) for c in first}) >= 8
    assert not any(c.deprecated for c in order)  # no alias, so no alias twin
    assert len({c.key for c in first}) == 40
    fifths = _in_fifths(first, order)
    assert all(fifths.values()), fifths
    one_round = _in_fifths(order[:len({c.arch for c in order})], order)
    assert all(one_round.values()), one_round  # both ends of the budget already in the first round
    # The old smallest-first screen fails the same checks.
    smallest = order_candidates(order, "params")[:40]
    assert _in_fifths(smallest, order)["budget_large"] == 0
    assert "unet" in {c.arch for c in first}


def test_zoo_50m_order_is_reproducible_and_a_longer_screen_extends_a_shorter_one(zoo_50m):
    from sweeper.sweep.candidates import ORDER_SEED

    order, _ = zoo_50m
    assert order_candidates(order, "spread", seed=ORDER_SEED) == order  # what tune used
    shuffled = list(order)
    random.Random(1).shuffle(shuffled)
    assert order_candidates(shuffled, "spread", seed=ORDER_SEED)[:80] == order[:80]
    assert order[:80][:40] == order[:40]


@pytest.mark.parametrize("seed", range(1, 5))
def test_zoo_50m_spread_holds_for_other_seeds(zoo_50m, seed):
    order, _ = zoo_50m
    first = order_candidates(order, "spread", seed=seed)[:40]
    assert {c.arch for c in first} == {c.arch for c in order}
    assert len({encoder_family(c.encoder) for c in first}) >= 8
    assert all(_in_fifths(first, order).values())
    assert all(_in_fifths(first[:len({c.arch for c in order})], order).values())


def test_zoo_50m_with_aliases_screens_no_network_twice(zoo_50m):
    _, with_aliases = zoo_50m
    kept, dropped = zoo.drop_alias_twins(with_aliases)
    assert {c.encoder for c in dropped} == {f"timm-efficientnet-b{i}" for i in range(7)}  # b7 is over 50M
    first = order_candidates(kept, "spread")[:40]
    keys = {c.key for c in first}
    for c in first:
        assert not any(f"{c.arch}/{twin}" in keys for twin in zoo.alias_twins(c.encoder)), c.key
