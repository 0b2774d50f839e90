"""The data of a run: annotation files loaded once per study, folds, and each run's DataLoaders.

A study loads its files once (:func:`prepare_data`) and every run of every pair draws its fold
from that; :func:`make_loaders` then builds the run's seeded loaders, with the augmentation
recipe's probabilities scaled by ``augment_strength``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

from sweeper.errors import SweeperError
from sweeper.training import faults
from sweeper.training.config import DataConfig, TrainConfig

#: Recipe steps that ``augment_strength`` leaves alone: they shape every image, not at random.
FIXED_STEPS = ("Resize", "Normalize", "PadIfNeeded", "LongestMaxSize", "SmallestMaxSize")


@dataclass
class PreparedData:
    """Loaded annotation files and the folds of a study: loaded once, shared by every run."""

    folds: list
    class_names: list[str]
    num_classes: int
    source: str


def data_files(data: DataConfig) -> tuple[str, str | None]:
    """The training annotation file and its image root: ``data``'s, or the built-in demo
    dataset's when no ``train_json`` is given (None root: the annotation file's folder)."""
    if data.train_json is not None:
        return data.train_json, data.image_root
    from sweeper.demo import demo_dataset_paths

    paths = demo_dataset_paths()
    return str(paths[0]), str(paths[1])


def prepare_data(config: TrainConfig) -> PreparedData:
    """Load and validate the annotation files and make the study's folds (same for every run)."""
    from sweeper.data import load_coco
    from sweeper.splits import make_folds

    data = config.data
    if data.train_json is None and (data.image_root or data.val_json or data.val_root):
        given = next(f"--{k.replace('_', '-')}" for k in ("image_root", "val_json", "val_root") if getattr(data, k))
        raise SweeperError(f"{given} needs --train-json (without it the built-in demo data is used)")
    train_json, root = data_files(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        train = load_coco(train_json, root)
        val = None
        if data.val_json:
            val = load_coco(data.val_json, data.val_root, categories=train.categories)
    folds = make_folds(config.split, train, val)
    if data.subsample:
        folds = [_subsample(f, data.subsample, config.split.seed) for f in folds]
    return PreparedData(folds=folds, class_names=train.class_names, num_classes=train.num_classes, source=train_json)


def _subsample(fold, n: int, seed: int):
    """Keep about ``n`` images of a fold (80% train, 20% val, at least 2 each), seeded."""
    import numpy as np

    from sweeper.splits import Fold

    rng = np.random.default_rng(seed)
    n_val = max(2, n // 5)
    n_train = max(2, n - n_val)
    train_idx = np.sort(rng.permutation(fold.train_idx)[:n_train])
    val_idx = np.sort(rng.permutation(fold.val_idx)[:n_val])
    return Fold(fold.index, fold.train_data, train_idx, fold.val_data, val_idx)


def scaled_recipe(recipe: dict | None, strength: float) -> dict | None:
    """The recipe with every random training step's ``p`` multiplied by ``strength`` (capped at
    1; a step without ``p`` has albumentations' default 0.5). None is the default recipe."""
    if strength == 1.0:
        return recipe
    from sweeper.augment import default_recipe

    recipe = default_recipe() if recipe is None else recipe
    steps = []
    for step in recipe["train"]:
        if isinstance(step, str):
            step = {"name": step}
        step = dict(step)
        if step.get("name") not in FIXED_STEPS:
            step["p"] = min(1.0, float(step.get("p", 0.5)) * strength)
        steps.append(step)
    return {**recipe, "train": steps}


def make_loaders(config: TrainConfig, fold, seed: int, device: str):
    """``(train_dataset, train_loader, val_loader)`` for one run of ``fold``.

    The train loader shuffles with a generator seeded by ``seed`` and drops the last partial
    batch; ``num_workers`` None means 0 on CPU and up to 4 on CUDA.
    """
    import torch

    from sweeper.augment import build_transforms
    from sweeper.data import SegmentationDataset
    from sweeper.seeding import make_generator, worker_init_fn

    train_tf, val_tf = build_transforms(scaled_recipe(config.augment, config.augment_strength), size=config.image_size)
    train_ds = SegmentationDataset(fold.train_data, fold.train_idx, train_tf, seed=seed)
    val_ds = SegmentationDataset(fold.val_data, fold.val_idx, val_tf, seed=seed)
    if len(train_ds) < config.batch_size:
        raise SweeperError(
            f"batch_size {config.batch_size} is larger than the {len(train_ds)} training images of fold {fold.index}"
        )
    workers = config.num_workers
    if workers is None:
        workers = 0 if device == "cpu" else min(4, os.cpu_count() or 1)
    train_ds, workers = faults.maybe_crash_workers(config, train_ds, workers)
    common = dict(num_workers=workers, pin_memory=device.startswith("cuda"), worker_init_fn=worker_init_fn)
    train = torch.utils.data.DataLoader(
        train_ds, batch_size=config.batch_size, shuffle=True, drop_last=True,
        generator=make_generator(seed), **common,
    )
    val = torch.utils.data.DataLoader(val_ds, batch_size=config.batch_size, shuffle=False, **common)
    return train_ds, train, val
