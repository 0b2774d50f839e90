"""Ablation spaces: arms resolved against the baseline's config, one change each, checked on load."""

from __future__ import annotations

import pytest

from sweeper.errors import SweeperError
from sweeper.sweep.ablate import plan_arms
from sweeper.sweep.ablation import parse_cli_change
from sweeper.sweep.records import CandidateKey
from sweeper.sweep.space import load_space, parse_space

RECIPE = {"epochs": 2, "batch_size": 4, "image_size": 64, "lr": 3.0e-3, "loss": "ce", "scheduler": "cosine"}


def _space(changes, baseline=None, first_seeds=3, **extra):
    raw = {"name": "abl", "recipe": dict(RECIPE), "seeds": [0, 1, 2],
           "ablation": {"baseline": baseline or {"pair": "pspnet/mobilenet_v2"}, "changes": changes,
                        "first_seeds": first_seeds}}
    raw.update(extra)
    return parse_space(raw, source="abl.yaml")


def test_arms_hold_exactly_the_keys_they_change_over_the_baseline():
    space, arms, first = plan_arms(_space([{"loss": "dice"}, {"lr": 1e-3}, {"augment_strength": 0},
                                           {"encoder": "resnet18"},
                                           {"name": "small", "set": {"image_size": 32, "batch_size": 8}}]), None)
    assert first == 3
    assert (space.base.arch, space.base.encoder, space.base.loss) == ("pspnet", "mobilenet_v2", "ce")
    assert [a.name for a in arms] == ["baseline", "loss=dice", "lr=0.001", "augment_strength=0", "encoder=resnet18",
                                      "small"]
    assert arms[0].key == CandidateKey.of("pspnet", "mobilenet_v2") and arms[0].values == {}
    assert arms[1].key == CandidateKey.of("pspnet", "mobilenet_v2", {"loss": "dice"})
    assert arms[3].values == {"augment_strength": 0.0} and isinstance(arms[3].values["augment_strength"], float)
    assert arms[4].key == CandidateKey.of("pspnet", "resnet18") and arms[4].values == {"encoder": "resnet18"}
    assert arms[5].values == {"image_size": 32, "batch_size": 8}


def test_command_line_changes_are_added_and_read_as_yaml():
    space = _space([{"loss": "dice"}])
    _, arms, _ = plan_arms(space, None, changes=["lr=1e-3", "scheduler=none"])
    assert [a.values for a in arms[1:]] == [{"loss": "dice"}, {"lr": 0.001}, {"scheduler": "none"}]
    _, arms, _ = plan_arms(space, None, changes=["loss=focal"], baseline="fpn/resnet18")
    assert arms[0].key == CandidateKey.of("fpn", "resnet18") and arms[2].values == {"loss": "focal"}
    assert parse_cli_change("lr=1e-3").values == (("lr", 0.001),)
    with pytest.raises(SweeperError, match="--change: 'lr' is not key=value"):
        parse_cli_change("lr")


@pytest.mark.parametrize(("changes", "message"), [
    ([{"los": "dice"}], "ablation.changes[0]: unknown key 'los' (did you mean 'loss'?)"),
    ([{"loss": "ce"}], "ablation.changes[0]: loss=ce is the baseline's own value"),
    ([{"lr": "fast"}], "ablation.changes[0]: lr"),
    ([{"epochs": 0}], "ablation.changes[0]: epochs"),
    ([{"data": {"train_json": "x.json"}}], "ablation.changes[0]: data is fixed for every arm"),
    ([{"arch": "fpn", "encoder": "resnet18"}], "ablation.changes[0]: a change is one key"),
    ([{"loss": "dice"}, {"loss": "dice"}], "ablation.changes[1]: loss=dice is the same arm as changes[0]"),
    ([{"name": "b", "set": {}}], "ablation.changes[0].set must be a mapping"),
    ([{"encoder": "resnet9000"}], "ablation.changes[0]: "),
    ([], "ablation.changes is empty"),
])
def test_bad_changes_name_the_change(changes, message):
    with pytest.raises(SweeperError) as err:
        plan_arms(_space(changes), None)
    assert message in str(err.value) and str(err.value).startswith("abl.yaml: ")


@pytest.mark.parametrize(("baseline", "message"), [
    ({"pair": "pspnet"}, "ablation.baseline.pair: 'pspnet' is not arch/encoder"),
    ({"pair": "pspnet/resnet9000"}, "ablation.baseline.pair:"),
    ({"trial": 3}, "ablation.baseline.trial needs the study"),
    ({"pair": "unet/resnet18", "study": "demo"}, "give either pair or study"),
    ({"colour": 1}, "ablation.baseline.colour"),
])
def test_bad_baselines_name_the_key(baseline, message):
    with pytest.raises(SweeperError) as err:
        plan_arms(_space([{"loss": "dice"}], baseline=baseline), None)
    assert message in str(err.value)


def test_a_baseline_study_must_exist_in_the_storage(tmp_path):
    with pytest.raises(SweeperError, match="ablation.baseline.study: no study 'demo'"):
        plan_arms(_space([{"loss": "dice"}], baseline={"study": "demo"}), str(tmp_path / "none.db"))


def test_the_shipped_ablation_demo_is_the_demo_winner_with_four_changes():
    space = load_space("ablation-demo")
    demo = load_space("demo")
    _, arms, first = plan_arms(space, None)
    assert arms[0].key == CandidateKey.of("pspnet", "mobilenet_v2") and first == 3
    assert [a.values for a in arms[1:]] == [{"loss": "dice"}, {"lr": 1e-3}, {"scheduler": "none"},
                                            {"augment_strength": 0.0}]
    # The same recipe, data and split as the demo: its baseline runs are the demo's own runs.
    assert space.base == demo.base and space.seeds == demo.seeds and space.folds == demo.folds


def test_the_ablation_plan_gives_extra_seeds_to_undecided_arms_with_the_baseline_first():
    """Stub runs: the baseline and a clear loser are decided on the first seeds, a close arm is
    not; it gets the later seeds, each after the baseline has run that seed (common seeds)."""
    import random

    from stub import follow

    from sweeper.sweep.plans import AblationArms
    from sweeper.sweep.records import REPEAT

    space, arms, first = plan_arms(_space([{"loss": "dice"}, {"lr": 1e-3}], first_seeds=2,
                                          seeds=[0, 1, 2, 3, 4, 5]), None)
    space.seeds = (0, 1, 2, 3, 4, 5)
    means = {arms[0].key: 0.70, arms[1].key: 0.40, arms[2].key: 0.70}

    def value_of(unit):
        return means[unit.candidate] + random.Random(f"{unit.candidate}|{unit.seed}").gauss(0, 0.002)

    plan = AblationArms(space, arms, first_seeds=2, rng=random.Random(0))
    records = follow(plan, value_of)
    order = [(str(r.unit.candidate), r.unit.seed) for r in records]
    assert order[:6] == [(str(a.key), s) for s in (0, 1) for a in arms]  # every arm, seed by seed
    extra = [(key, seed) for key, seed in order[6:]]
    assert extra and all(r.unit.phase == REPEAT for r in records[6:])
    assert {key for key, _ in extra} <= {str(arms[0].key), str(arms[2].key)}  # the loser gets no more seeds
    for key, seed in extra:
        if key == str(arms[2].key):
            assert order.index((str(arms[0].key), seed)) < order.index((key, seed))  # baseline ran it first
    assert len([1 for key, _ in order if key == str(arms[1].key)]) == 2
    assert max(seed for _, seed in order) <= 5
