"""Validation splits: sizes, disjointness, groups, stratification, determinism, bad configs.

Image lists are built in memory: splits need ids, file names, classes and records, not pixels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from sweeper.data import DataWarning, ImageInfo
from sweeper.errors import SweeperError
from sweeper.splits import SplitConfig, make_folds, make_splits, split_key, stratify_labels


def images(n, *, classes=lambda i: (1,), source=lambda i: f"cam{i % 7}"):
    return [
        ImageInfo(
            index=i,
            image_id=100 + i,
            file_name=f"{source(i)}/frame_{i:04d}.jpg",
            path=Path(f"/x/{i}.jpg"),
            width=8,
            height=8,
            classes=tuple(classes(i)),
            record={
                "id": 100 + i,
                "file_name": f"{source(i)}/frame_{i:04d}.jpg",
                "source": source(i),
            },
        )
        for i in range(n)
    ]


def assert_partitions(pairs, n):
    for train, val in pairs:
        assert train.dtype == np.int64 and val.dtype == np.int64
        assert len(np.intersect1d(train, val)) == 0
        np.testing.assert_array_equal(np.union1d(train, val), np.arange(n))


def test_holdout_sizes_and_disjointness():
    pairs = make_splits(SplitConfig(), images(100))
    assert len(pairs) == 1
    assert_partitions(pairs, 100)
    assert len(pairs[0][1]) == 20
    pairs = make_splits(SplitConfig(val_fraction=0.3), images(10))
    assert len(pairs[0][1]) == 3


def test_kfold_validation_folds_partition_the_images():
    pairs = make_splits(SplitConfig("kfold", n_splits=4), images(42))
    assert len(pairs) == 4
    assert_partitions(pairs, 42)
    vals = np.concatenate([v for _, v in pairs])
    np.testing.assert_array_equal(np.sort(vals), np.arange(42))
    assert sorted(len(v) for _, v in pairs) == [10, 10, 11, 11]


def test_kfold_shuffles():
    (_, val), *_ = make_splits(SplitConfig("kfold", n_splits=4), images(40))
    assert not np.array_equal(val, np.arange(10))


@pytest.mark.parametrize(
    "config",
    [
        SplitConfig(),
        SplitConfig("kfold"),
        SplitConfig("stratified"),
        SplitConfig("group", group_field="source"),
        SplitConfig("holdout", group_regex=r"^(cam\d+)/"),
        SplitConfig("stratified", group_field="source"),
    ],
    ids=lambda c: f"{c.scheme}-{c.group_field or c.group_regex}",
)
def test_same_config_same_split_and_seed_changes_it(config):
    infos = images(60, classes=lambda i: (1 + i % 3,))
    first = make_splits(config, infos)
    again = make_splits(SplitConfig(**vars(config)), infos)
    assert len(first) == len(again)
    for (t1, v1), (t2, v2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(t1, t2)
        np.testing.assert_array_equal(v1, v2)
    assert split_key(config, infos) == split_key(SplitConfig(**vars(config)), infos)
    others = [make_splits(SplitConfig(**{**vars(config), "seed": s}), infos) for s in (1, 2, 3)]
    assert any(
        not np.array_equal(v1, v2)
        for other in others
        for (_, v1), (_, v2) in zip(first, other, strict=True)
    )
    assert split_key(config, infos) != split_key(SplitConfig(**{**vars(config), "seed": 1}), infos)


def test_stratified_puts_a_rare_class_in_every_fold():
    # class 2 is on exactly 5 of 100 images; all images also contain the common class 1
    rare = {3, 11, 12, 13, 14}  # bunched, so an unstratified split tends to miss folds
    infos = images(100, classes=lambda i: (1, 2) if i in rare else (1,))
    for seed in range(5):
        pairs = make_splits(SplitConfig("stratified", n_splits=5, seed=seed), infos)
        assert_partitions(pairs, 100)
        for _, val in pairs:
            assert len(set(val.tolist()) & rare) == 1


def test_stratified_gives_background_only_images_their_own_label():
    infos = images(30, classes=lambda i: () if i % 3 == 0 else (1,))
    labels = stratify_labels(infos, 5)
    assert set(labels[::3].tolist()) == {0}
    assert set(np.delete(labels, np.arange(0, 30, 3)).tolist()) == {1}
    for _, val in make_splits(SplitConfig("stratified", n_splits=5), infos):
        assert (val % 3 == 0).sum() == 2


def test_stratified_handles_classes_with_too_few_images():
    # class 3 on 2 images, class 4 on 1: fewer than n_splits; must not crash or leak sklearn
    # warnings, and must say which classes cannot be in every fold.
    extra = {0: (1, 3), 1: (1, 3), 2: (4,)}
    infos = images(40, classes=lambda i: extra.get(i, (1,) if i % 2 else (2,)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pairs = make_splits(SplitConfig("stratified", n_splits=5), infos)
    assert_partitions(pairs, 40)
    ours = [w for w in caught if issubclass(w.category, DataWarning)]
    assert len(ours) == 1 and "3, 4" in str(ours[0].message)
    assert not [w for w in caught if "least populated" in str(w.message)]
    with pytest.warns(DataWarning):
        labels = stratify_labels(infos, 5)
    values, counts = np.unique(labels, return_counts=True)
    assert counts.min() >= 5, dict(zip(values.tolist(), counts.tolist(), strict=True))


@pytest.mark.parametrize(
    ("config", "expected_group"),
    [
        (
            SplitConfig("group", n_splits=3, group_field="source"),
            lambda info: info.record["source"],
        ),
        (
            SplitConfig("group", n_splits=3, group_regex=r"^(cam\d+)/"),
            lambda info: info.file_name[:4],
        ),
        (SplitConfig("group", n_splits=3, group_regex=r"cam\d+"), lambda info: info.file_name[:4]),
    ],
    ids=["field", "regex-group", "regex-whole-match"],
)
def test_groups_never_straddle_train_and_val(config, expected_group):
    infos = images(70)
    groups = np.array([expected_group(info) for info in infos])
    pairs = make_splits(config, infos)
    assert len(pairs) == 3
    assert_partitions(pairs, 70)
    for train, val in pairs:
        assert not set(groups[train]) & set(groups[val])
    assert sorted(g for _, val in pairs for g in set(groups[val])) == sorted(set(groups))


def test_grouped_holdout_and_stratified_group_keep_groups_whole():
    infos = images(70, classes=lambda i: (1 + i % 2,))
    groups = np.array([info.record["source"] for info in infos])
    for config in (
        SplitConfig("holdout", group_field="source", val_fraction=0.3),
        SplitConfig("stratified", n_splits=3, group_field="source"),
    ):
        for train, val in make_splits(config, infos):
            assert not set(groups[train]) & set(groups[val])


def test_make_folds_with_and_without_a_separate_validation_file():
    class FakeData:
        def __init__(self, n):
            self.images = images(n)
            self.annotation_file = Path("train.json")

        def __len__(self):
            return len(self.images)

    train, val = FakeData(20), FakeData(6)
    folds = make_folds(SplitConfig("kfold", n_splits=4), train)
    assert [f.index for f in folds] == [0, 1, 2, 3]
    assert all(f.train_data is train and f.val_data is train for f in folds)
    (only,) = make_folds(SplitConfig("kfold", n_splits=4), train, val)
    assert only.val_data is val
    np.testing.assert_array_equal(only.train_idx, np.arange(20))
    np.testing.assert_array_equal(only.val_idx, np.arange(6))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_splits": 1}, "n_splits must be an integer >= 2"),
        ({"scheme": "kfolds"}, "did you mean 'kfold'"),
        ({"val_fraction": 1.0}, "val_fraction must lie strictly between 0 and 1"),
        ({"scheme": "group"}, "needs group_field or group_regex"),
        ({"group_field": "a", "group_regex": "b"}, "not both"),
        ({"scheme": "kfold", "group_field": "a"}, "use scheme 'group'"),
        ({"scheme": "group", "group_regex": "(unclosed"}, "group_regex '\\(unclosed' is invalid"),
    ],
)
def test_bad_configs(kwargs, message):
    with pytest.raises(SweeperError, match=message):
        SplitConfig(**kwargs)


def test_more_splits_than_groups():
    infos = images(30, source=lambda i: f"cam{i % 3}")
    with pytest.raises(
        SweeperError,
        match=r"train\.json: n_splits=5 needs as many groups, but group_field 'source' gives 3",
    ):
        make_splits(SplitConfig("group", group_field="source"), infos, source="train.json")


def test_more_splits_than_images():
    with pytest.raises(SweeperError, match="n_splits=5 is more than the 3 images"):
        make_splits(SplitConfig("kfold"), images(3))


def test_regex_that_does_not_match_names_the_file_name_and_id():
    infos = images(10)
    infos[4] = ImageInfo(4, 104, "other/x.jpg", Path("/x"), 8, 8, (1,), {"id": 104})
    with pytest.raises(
        SweeperError, match=r"does not match the file_name 'other/x\.jpg' of image id 104"
    ):
        make_splits(SplitConfig("group", n_splits=2, group_regex=r"^(cam\d+)/"), infos)


def test_unknown_group_field_suggests_a_close_one():
    with pytest.raises(
        SweeperError, match=r"image id 100 .* has no field 'sourse' \(did you mean 'source'\?\)"
    ):
        make_splits(SplitConfig("group", group_field="sourse"), images(10))


def test_split_key_changes_with_the_image_list_and_classes():
    config = SplitConfig("stratified")
    base = split_key(config, images(20))
    assert base == split_key(config, images(20))
    assert base != split_key(config, images(21))
    assert base != split_key(config, images(20, classes=lambda i: (2,)))
