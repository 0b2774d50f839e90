"""Augmentation recipes: the default builds, $size is substituted, typos get the close match,
and reseeding makes draws reproducible without tying transforms together."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from sweeper.augment import (
    DEFAULT_RECIPE,
    build_pipeline,
    build_transforms,
    default_recipe,
    load_recipe,
    reseed,
)
from sweeper.errors import SweeperError

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
MASK = RNG.integers(0, 4, (20, 30), dtype=np.uint8)


def test_default_recipe_builds_and_produces_normalised_images_of_the_study_size():
    import albumentations as A

    train, val = build_transforms(size=16)
    names = [type(t).__name__ for t in train.transforms]
    assert names == [
        "Resize",
        "HorizontalFlip",
        "VerticalFlip",
        "RandomRotate90",
        "OneOf",
        "Normalize",
    ]
    one_of = train.transforms[4]
    assert isinstance(one_of, A.OneOf) and one_of.p == pytest.approx(2 / 3)
    assert [type(t).__name__ for t in one_of.transforms] == ["MotionBlur", "OpticalDistortion"]
    assert [type(t).__name__ for t in val.transforms] == ["Resize", "Normalize"]
    out = val(image=IMAGE, mask=MASK)
    assert out["image"].shape == (16, 16, 3) and out["image"].dtype == np.float32
    assert out["mask"].shape == (16, 16)
    assert set(np.unique(out["mask"])) <= set(np.unique(MASK))  # nearest-neighbour for masks
    expected = (IMAGE[0, 0] / 255 - np.array([0.485, 0.456, 0.406])) / np.array(
        [0.229, 0.224, 0.225]
    )
    flat = (np.full((4, 4, 3), IMAGE[0, 0]), np.zeros((4, 4), np.uint8))
    np.testing.assert_allclose(val(image=flat[0], mask=flat[1])["image"][0, 0], expected, rtol=1e-4)


def test_default_recipe_is_not_mutated_by_callers():
    recipe = default_recipe()
    recipe["train"].clear()
    assert len(DEFAULT_RECIPE["train"]) == 6


def test_validation_pipeline_is_deterministic():
    _, val = build_transforms(size=12)
    a = val(image=IMAGE, mask=MASK)["image"]
    b = val(image=IMAGE, mask=MASK)["image"]
    np.testing.assert_array_equal(a, b)


def test_size_is_substituted_everywhere_including_inside_lists():
    pipeline = build_pipeline(
        [
            {"name": "RandomResizedCrop", "size": ["$size", "$size"]},
            {"name": "Resize", "height": "$size", "width": 9},
        ],
        size=24,
    )
    assert pipeline.transforms[0].size == (24, 24)
    assert (pipeline.transforms[1].height, pipeline.transforms[1].width) == (24, 9)


def test_reseed_makes_draws_a_function_of_the_key():
    train, _ = build_transforms(size=16)
    reseed(train, (0, 1, 2))
    a = train(image=IMAGE, mask=MASK)
    reseed(train, (0, 1, 2))
    b = train(image=IMAGE, mask=MASK)
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["mask"], b["mask"])
    outputs = set()
    for key in range(8):
        reseed(train, (0, 1, key))
        outputs.add(train(image=IMAGE, mask=MASK)["mask"].tobytes())
    assert len(outputs) > 2


def test_reseeded_transforms_draw_independently():
    # albumentations' own Compose(seed=...) makes two p=0.5 flips always agree; reseed must not.
    pipeline = build_pipeline(["HorizontalFlip", "VerticalFlip"], size=8)
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    seen = Counter()
    for key in range(200):
        reseed(pipeline, key)
        out = pipeline(image=image)["image"]
        h = np.array_equal(out, image[:, ::-1]) or np.array_equal(out, image[::-1, ::-1])
        v = np.array_equal(out, image[::-1]) or np.array_equal(out, image[::-1, ::-1])
        seen[h, v] += 1
    assert set(seen) == {(False, False), (True, False), (False, True), (True, True)}
    assert min(seen.values()) > 30


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            ["HorizontalFlp"],
            r"pipeline\[0\]: unknown transform 'HorizontalFlp' \(did you mean 'HorizontalFlip'\?\)",
        ),
        (
            [{"name": "Resize", "heigth": 4, "width": 4}],
            r"Resize: unknown argument 'heigth' \(did you mean 'height'\?\)",
        ),
        (
            [{"name": "OneOf", "transforms": ["Blur", {"name": "MotionBlur", "blur_limt": 3}]}],
            r"pipeline\[0\] OneOf\.transforms\[1\] MotionBlur: unknown argument 'blur_limt' "
            r"\(did you mean 'blur_limit'\?\)",
        ),
        ([{"name": "Resize", "height": -3, "width": 4}], r"Resize: invalid arguments: height=-3"),
        (["ToTensorV2"], "the dataset converts to tensors itself"),
        ([{"name": "OneOf"}], "needs a 'transforms' list"),
        ([{"p": 0.5}], "a step must be a transform name or a mapping with 'name'"),
        ("Resize", "a pipeline must be a list"),
    ],
)
def test_bad_steps_name_the_place_and_the_close_match(steps, message):
    with pytest.raises(SweeperError, match=message):
        build_pipeline(steps, size=8)


def test_recipe_from_yaml(tmp_path):
    path = tmp_path / "aug.yaml"
    path.write_text(
        "train:\n"
        "  - {name: Resize, height: $size, width: $size}\n"
        "  - name: SomeOf\n"
        "    n: 1\n"
        "    transforms: [HorizontalFlip, {name: Blur, blur_limit: [3, 5]}]\n"
    )
    recipe = load_recipe(path)
    assert recipe["val"] == DEFAULT_RECIPE["val"]
    train, val = build_transforms(recipe, size=10, source=str(path))
    assert train(image=IMAGE, mask=MASK)["image"].shape == (10, 10, 3)
    assert train.transforms[1].transforms[1].blur_limit == (3, 5)


def test_recipe_file_errors(tmp_path):
    path = tmp_path / "aug.yaml"
    path.write_text("train:\n  - [unclosed\n")
    with pytest.raises(SweeperError, match=r"aug\.yaml:\d+:\d+: malformed YAML"):
        load_recipe(path)
    path.write_text("trian: []\n")
    with pytest.raises(
        SweeperError, match=r"aug\.yaml: unknown key 'trian' \(did you mean 'train'\?\)"
    ):
        load_recipe(path)
    path.write_text("train:\n  - Flip\n")
    with pytest.raises(SweeperError, match=r"aug\.yaml: train\[0\]: unknown transform 'Flip'"):
        build_transforms(load_recipe(path), size=8, source=str(path))
    with pytest.raises(SweeperError, match=r"missing\.yaml does not exist"):
        load_recipe(tmp_path / "missing.yaml")
