"""sweeper.data.masks: geometry types, paint order, the mask cache, and check_masks."""

from __future__ import annotations

import numpy as np
import pytest
from cocofiles import H, W, base_dataset, load, square

from sweeper.data import check_masks
from sweeper.errors import SweeperError


def test_rle_compressed_and_uncompressed(tmp_path):
    from pycocotools import mask as mask_utils

    target = np.zeros((H, W), np.uint8)
    target[2:5, 3:9] = 1
    compressed = mask_utils.encode(np.asfortranarray(target))["counts"].decode()
    flat = target.ravel(order="F")
    runs, value, count = [], 0, 0
    for v in flat:
        if v == value:
            count += 1
        else:
            runs.append(count)
            value, count = v, 1
    runs.append(count)
    ds = base_dataset()
    ds["annotations"] = [
        {
            "id": 1,
            "image_id": 10,
            "category_id": 20,
            "iscrowd": 1,
            "segmentation": {"size": [H, W], "counts": compressed},
        },
        {
            "id": 2,
            "image_id": 11,
            "category_id": 9,
            "iscrowd": 1,
            "segmentation": {"size": [H, W], "counts": runs},
        },
    ]
    data = load(tmp_path, ds)
    np.testing.assert_array_equal(data.read_mask(0), target * 3)
    np.testing.assert_array_equal(data.read_mask(1), target * 2)


def test_larger_annotations_are_painted_first_so_small_ones_stay_on_top(tmp_path):
    ds = base_dataset()
    # The small one comes first in the file: painting in file order would bury it.
    ds["annotations"] = [
        {"id": 1, "image_id": 10, "category_id": 5, "segmentation": square(5, 5, 7, 7)},
        {"id": 2, "image_id": 10, "category_id": 20, "segmentation": square(0, 0, 12, 10)},
        {"id": 3, "image_id": 10, "category_id": 9, "segmentation": square(2, 2, 10, 9)},
    ]
    mask = load(tmp_path, ds).read_mask(0)
    assert (mask[5:7, 5:7] == 1).all()  # smallest, on top of both
    assert mask[3, 3] == 2  # middle, on top of the largest
    assert mask[0, 0] == 3  # largest, visible only where nothing else is


def test_mask_cache_is_hit_the_second_time_and_invalidated_when_the_json_changes(tmp_path):
    ds = base_dataset()
    data = load(tmp_path, ds)
    assert data.cache_masks() == 2
    assert data.cache_masks() == 0
    again = load(tmp_path, ds)
    assert again.mask_cache_dir == data.mask_cache_dir
    np.testing.assert_array_equal(again.read_mask(0), data.rasterise(0))
    assert (again.cache_stats.hits, again.cache_stats.misses) == (1, 0)

    ds["annotations"][0]["category_id"] = 9
    changed = load(tmp_path, ds)
    assert changed.mask_cache_dir != data.mask_cache_dir
    mask = changed.read_mask(0)
    assert (changed.cache_stats.hits, changed.cache_stats.misses) == (0, 1)
    assert (mask[0:4, 0:4] == 2).all()


def test_without_cache_nothing_is_written(tmp_path):
    data = load(tmp_path, base_dataset(), cache_masks=False)
    assert data.mask_cache_dir is None
    assert data.cache_masks() == 0
    assert (data.read_mask(0)[0:4, 0:4] == 3).all()


# --- check_masks ---


def test_check_masks_counts_pixels_per_class():
    masks = np.zeros((2, 3, 4), np.int64)
    masks[0, 0, :2] = 3
    masks[1, 2, 3] = 1
    np.testing.assert_array_equal(check_masks(masks, 4), [21, 1, 0, 2])


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        (np.full((2, 2), 4), r"span 4\.\.4 but the model has 4 classes"),
        (np.full((2, 2), -1), r"span -1\.\.-1"),
        (np.zeros((2, 2), np.int64), "every pixel is background"),
        (np.zeros((2, 2), np.float32), "integer class indices"),
    ],
)
def test_check_masks_rejects_bad_batches(masks, message):
    with pytest.raises(SweeperError, match=message):
        check_masks(masks, 4, source="batch 0")
