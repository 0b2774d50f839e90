"""Data for a run: the demo-data fallback, subsampled folds, scaled augmentation and loaders."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sweeper.errors import SweeperError
from sweeper.training import DataConfig, data_files, make_loaders
from sweeper.training.loaders import scaled_recipe


def test_data_files_fall_back_to_the_demo_data():
    from sweeper.demo import demo_dataset_paths

    paths = demo_dataset_paths()
    assert data_files(DataConfig()) == (str(paths.annotation_file), str(paths[1]))
    assert data_files(DataConfig(train_json="a/train.json")) == ("a/train.json", None)
    assert data_files(DataConfig(train_json="a/train.json", image_root="imgs")) == ("a/train.json", "imgs")


def test_prepared_demo_data_is_subsampled(small, data):
    from sweeper.demo import demo_dataset_paths

    assert data.source == str(demo_dataset_paths().annotation_file)
    fold = data.folds[small.fold]
    assert (len(fold.train_idx), len(fold.val_idx)) == (20, 4)  # 24 images: 80% train, 20% val
    assert data.class_names[0] == "background" and data.num_classes == len(data.class_names)


def test_an_image_root_without_train_json_is_refused(small):
    from sweeper.training import prepare_data

    with pytest.raises(SweeperError, match="--image-root needs --train-json"):
        prepare_data(replace(small, data=DataConfig(image_root="images")))


def test_augment_strength_scales_only_random_steps():
    recipe = {"train": ["HorizontalFlip", {"name": "Resize", "height": 64, "width": 64},
                        {"name": "RandomBrightnessContrast", "p": 0.8}], "val": []}
    assert scaled_recipe(recipe, 1.0) is recipe
    half = scaled_recipe(recipe, 0.5)["train"]
    assert half[0] == {"name": "HorizontalFlip", "p": 0.25}  # albumentations' default p is 0.5
    assert half[1] == {"name": "Resize", "height": 64, "width": 64}
    assert half[2]["p"] == pytest.approx(0.4)
    assert scaled_recipe(recipe, 10)["train"][2]["p"] == 1.0
    assert scaled_recipe(None, 0.0)["train"]  # None is the default recipe, scaled


def test_loaders_batch_and_refuse_a_batch_larger_than_the_fold(small, data):
    train_ds, train, val = make_loaders(small, data.folds[0], 0, "cpu")
    assert len(train) == len(train_ds) // small.batch_size and train.num_workers == 0
    images, masks = next(iter(train))
    assert tuple(images.shape) == (4, 3, 64, 64) and tuple(masks.shape) == (4, 64, 64)
    with pytest.raises(SweeperError, match="batch_size 32 is larger than the 20 training images of fold 0"):
        make_loaders(replace(small, batch_size=32), data.folds[0], 0, "cpu")
