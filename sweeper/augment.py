"""Augmentation recipes declared as data and built with albumentations.

A recipe is a mapping with a ``train`` and a ``val`` pipeline; a pipeline is a list of steps,
each ``{name: <albumentations class>, <argument>: <value>, ...}`` (a bare name means no
arguments). Containers (``OneOf``, ``SomeOf``, ``Sequential``, ``Compose``...) take their
children under ``transforms:``. The string ``$size`` anywhere in a value stands for the image
size of the study, so one recipe serves 64 and 256 px runs::

    train:
      - {name: Resize, height: $size, width: $size}
      - {name: HorizontalFlip, p: 0.5}
      - name: OneOf
        p: 0.667
        transforms: [MotionBlur, OpticalDistortion]
      - Normalize
    val:
      - {name: Resize, height: $size, width: $size}
      - Normalize

Names and arguments are checked against albumentations before anything runs, and a typo is a
SweeperError with the close match.

Determinism: never pass ``seed=`` to ``A.Compose`` here. In albumentations 2.0.8 it seeds
every child transform with the *same* seed, so two flips with ``p=0.5`` always fire together
(measured: 20 of 20 calls agreed). :func:`reseed` instead gives the whole pipeline one shared
generator; :class:`sweeper.data.SegmentationDataset` calls it before every sample with
``(seed, epoch, image index)``, which makes augmentation independent of DataLoader workers.
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sweeper.errors import SweeperError, did_you_mean

__all__ = [
    "DEFAULT_RECIPE",
    "SIZE",
    "build_pipeline",
    "build_transforms",
    "default_recipe",
    "load_recipe",
    "reseed",
]

#: Placeholder replaced by the study's image size (pixels, square).
SIZE = "$size"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The competition recipe. Normalize comes last: flips, rotations and blur commute with a
#: per-channel affine map, so this equals normalising first, but the blur and the distortion run
#: on uint8 (faster) and the distortion's border fill is black, as in the raw image.
DEFAULT_RECIPE: dict[str, list[Any]] = {
    "train": [
        {"name": "Resize", "height": SIZE, "width": SIZE},
        {"name": "HorizontalFlip", "p": 0.5},
        {"name": "VerticalFlip", "p": 0.5},
        {"name": "RandomRotate90", "p": 0.5},
        {"name": "OneOf", "p": 2 / 3, "transforms": ["MotionBlur", "OpticalDistortion"]},
        {"name": "Normalize", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
    ],
    "val": [
        {"name": "Resize", "height": SIZE, "width": SIZE},
        {"name": "Normalize", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
    ],
}

# Abstract bases and steps that would break the dataset's own tensor conversion.
_NOT_STEPS = {
    "BaseCompose": "an abstract base",
    "BasicTransform": "an abstract base",
    "DualTransform": "an abstract base",
    "ImageOnlyTransform": "an abstract base",
    "Transform3D": "an abstract base",
    "ToTensorV2": "not needed: the dataset converts to tensors itself",
    "ToTensor3D": "not needed: the dataset converts to tensors itself",
    "Lambda": "not declarable: it needs Python callables",
}


def default_recipe() -> dict[str, list[Any]]:
    """A fresh copy of :data:`DEFAULT_RECIPE` (safe to edit)."""
    return copy.deepcopy(DEFAULT_RECIPE)


def load_recipe(path: str | os.PathLike) -> dict[str, list[Any]]:
    """Read a recipe from a YAML file with ``train`` and (optionally) ``val`` lists.

    A missing ``val`` falls back to the default validation pipeline (resize + normalise), which
    is what almost every recipe wants.
    """
    import yaml

    file = Path(path)
    if not file.is_file():
        raise SweeperError(f"augmentation recipe {file} does not exist")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise SweeperError(
            f"{file}{where}: malformed YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    if not isinstance(data, dict):
        raise SweeperError(f"{file}: a recipe must be a mapping with 'train' and 'val' lists")
    unknown = set(data) - {"train", "val"}
    if unknown:
        key = sorted(unknown)[0]
        raise SweeperError(
            f"{file}: unknown key {key!r}{did_you_mean(key, ['train', 'val'])}; "
            "a recipe has 'train' and 'val'"
        )
    if "train" not in data:
        raise SweeperError(f"{file}: the recipe has no 'train' list")
    data.setdefault("val", copy.deepcopy(DEFAULT_RECIPE["val"]))
    return data


def build_transforms(
    recipe: Mapping[str, Sequence[Any]] | None = None,
    *,
    size: int,
    source: str = "augmentation recipe",
) -> tuple[Any, Any]:
    """Build ``(train, val)`` albumentations Compose objects from a recipe.

    ``recipe`` defaults to :data:`DEFAULT_RECIPE`; ``size`` (pixels) replaces ``$size``;
    ``source`` (usually the recipe's file name) starts every error message.
    """
    recipe = DEFAULT_RECIPE if recipe is None else recipe
    for key in ("train", "val"):
        if key not in recipe:
            raise SweeperError(f"{source}: the recipe has no {key!r} list")
    return (
        build_pipeline(recipe["train"], size=size, source=f"{source}: train"),
        build_pipeline(recipe["val"], size=size, source=f"{source}: val"),
    )


def build_pipeline(steps: Sequence[Any], *, size: int, source: str = "pipeline") -> Any:
    """Build one ``A.Compose`` from a list of steps (see the module docstring for the format)."""
    import albumentations as A

    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise SweeperError(f"{source}: image size must be a positive integer, got {size!r}")
    if not isinstance(steps, (list, tuple)):
        raise SweeperError(f"{source}: a pipeline must be a list of steps")
    children = [_build_step(step, size, f"{source}[{i}]") for i, step in enumerate(steps)]
    return A.Compose(children)


def reseed(transform: Any, key: int | Sequence[int]) -> None:
    """Make ``transform``'s next random draws a pure function of ``key``.

    ``key`` is an int or a tuple of ints, e.g. ``(seed, epoch, index)``; it is mixed with
    numpy's SeedSequence, so neighbouring keys give unrelated streams. All steps share one
    numpy and one Python generator (see the module docstring for why). Costs 15-50 us.
    """
    seq = np.random.SeedSequence(list(key) if isinstance(key, (tuple, list)) else int(key))
    py_seed = int(seq.generate_state(1, dtype=np.uint64)[0])
    transform.set_random_state(np.random.default_rng(seq), random.Random(py_seed))


# --- building steps ---


@functools.cache
def _step_classes() -> dict[str, type]:
    import albumentations as A

    return {
        name: obj
        for name in dir(A)
        if inspect.isclass(obj := getattr(A, name))
        and issubclass(obj, (A.BasicTransform, A.BaseCompose))
    }


def _build_step(step: Any, size: int, where: str) -> Any:
    import albumentations as A

    if isinstance(step, str):
        step = {"name": step}
    if not isinstance(step, Mapping) or "name" not in step:
        raise SweeperError(f"{where}: a step must be a transform name or a mapping with 'name'")
    name = step["name"]
    classes = _step_classes()
    if name not in classes or name in _NOT_STEPS:
        if name in _NOT_STEPS:
            raise SweeperError(f"{where}: {name!r} cannot be used in a recipe ({_NOT_STEPS[name]})")
        choices = [c for c in classes if c not in _NOT_STEPS]
        raise SweeperError(
            f"{where}: unknown transform {name!r}{did_you_mean(name, choices)}; "
            "names are albumentations classes"
        )
    cls = classes[name]
    where = f"{where} {name}"
    params = inspect.signature(cls.__init__).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    allowed = [
        p for p in params if p != "self" and params[p].kind is not inspect.Parameter.VAR_KEYWORD
    ]
    is_container = issubclass(cls, A.BaseCompose)
    kwargs: dict[str, Any] = {}
    for arg, value in step.items():
        if arg == "name":
            continue
        if arg not in allowed and not accepts_any:
            raise SweeperError(
                f"{where}: unknown argument {arg!r}{did_you_mean(arg, allowed)} "
                f"(accepted: {', '.join(allowed)})"
            )
        if is_container and arg == "transforms":
            if not isinstance(value, (list, tuple)) or not value:
                raise SweeperError(f"{where}: 'transforms' must be a non-empty list of steps")
            kwargs[arg] = [
                _build_step(child, size, f"{where}.transforms[{i}]")
                for i, child in enumerate(value)
            ]
        else:
            kwargs[arg] = _substitute(value, size)
    if is_container and "transforms" not in kwargs:
        raise SweeperError(f"{where}: a container needs a 'transforms' list")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise SweeperError(f"{where}: invalid arguments: {_describe(exc)}") from None


def _describe(exc: Exception) -> str:
    """One line per bad argument from pydantic (first message per argument), else the text."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc  # albumentations re-raises
    errors = getattr(cause, "errors", None)
    if callable(errors):
        first: dict[str, str] = {}
        for err in errors():
            arg = str(err.get("loc", ("?",))[0])
            first.setdefault(arg, f"{arg}={err.get('input')!r}: {err.get('msg')}")
        if first:
            return "; ".join(first.values())
    return " ".join(str(exc).split())


def _substitute(value: Any, size: int) -> Any:
    """Replace ``$size`` and turn YAML lists into the tuples albumentations expects."""
    if isinstance(value, str) and value == SIZE:
        return size
    if isinstance(value, (list, tuple)):
        return tuple(_substitute(v, size) for v in value)
    return value
