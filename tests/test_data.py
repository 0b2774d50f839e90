"""COCO loading: class mapping, geometry types, paint order, image modes, the mask cache and
every kind of bad input. Fixtures are tiny files written into tmp_path."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sweeper.data import DataWarning, check_masks, load_coco
from sweeper.errors import SweeperError

H, W = 12, 16


def square(x0, y0, x1, y1):
    """A polygon covering pixels x0..x1-1, y0..y1-1 under pycocotools' rasterisation."""
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def base_dataset() -> dict:
    """Two images, three categories with scattered ids, listed out of id order."""
    return {
        "images": [
            {"id": 10, "file_name": "a.png", "width": W, "height": H, "source": "cam1"},
            {"id": 11, "file_name": "sub/b.png", "width": W, "height": H, "source": "cam2"},
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 20, "segmentation": square(0, 0, 4, 4)},
            {"id": 2, "image_id": 10, "category_id": 5, "segmentation": square(8, 4, 12, 8)},
        ],
        "categories": [
            {"id": 20, "name": "cat"},
            {"id": 5, "name": "dog"},
            {"id": 9, "name": "bird"},
        ],
    }


def write(tmp_path: Path, dataset: dict, *, modes: dict | None = None) -> Path:
    """Write the dataset's images (solid colours, any PIL mode) and JSON; return the JSON path."""
    modes = modes or {}
    for rec in dataset["images"]:
        path = tmp_path / "img" / rec["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            mode = modes.get(rec["id"], "RGB")
            colour = {"RGB": (10, 20, 30), "L": 77, "RGBA": (1, 2, 3, 0), "P": 3}[mode]
            Image.new(mode, (rec["width"], rec["height"]), colour).save(path)
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(dataset, indent=1))
    return ann


def load(tmp_path: Path, dataset: dict, *, modes: dict | None = None, **kwargs):
    return load_coco(write(tmp_path, dataset, modes=modes), tmp_path / "img", **kwargs)


def test_category_ids_map_to_contiguous_indices_in_id_order(tmp_path):
    data = load(tmp_path, base_dataset())
    assert [(c.index, c.coco_id, c.name) for c in data.categories] == [
        (1, 5, "dog"),
        (2, 9, "bird"),
        (3, 20, "cat"),
    ]
    assert data.num_classes == 4
    assert data.class_names == ["background", "dog", "bird", "cat"]
    mask = data.read_mask(0)
    assert mask.shape == (H, W)
    assert (mask[0:4, 0:4] == 3).all()  # category 20 -> index 3
    assert (mask[4:8, 8:12] == 1).all()  # category 5 -> index 1
    assert (mask == 0).sum() == H * W - 32
    assert data.images[0].classes == (1, 3)
    assert data.images[1].classes == ()


def test_image_without_annotations_is_all_background(tmp_path):
    data = load(tmp_path, base_dataset())
    assert data.images[1].image_id == 11
    assert (data.read_mask(1) == 0).all()


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


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_grayscale_rgba_and_palette_images_become_rgb(tmp_path, mode):
    data = load(tmp_path, base_dataset(), modes={10: mode})
    image = data.read_image(0)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    if mode == "L":
        assert (image == 77).all()
    if mode == "RGBA":
        assert (image == [1, 2, 3]).all()


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


def test_pycocotools_prints_are_silenced(tmp_path, capfd):
    data = load(tmp_path, base_dataset())
    data.read_mask(0)
    coco = data.coco()
    assert sorted(coco.anns) == [1, 2] and coco.imgToAnns[11] == []
    assert capfd.readouterr().out == ""


def test_degenerate_polygons_are_skipped_with_one_warning(tmp_path):
    ds = base_dataset()
    ds["annotations"] += [
        # Four numbers: pycocotools would read this as a bounding box and paint a rectangle.
        {"id": 7, "image_id": 11, "category_id": 5, "segmentation": [[0, 0, 10, 10]]},
        {"id": 8, "image_id": 11, "category_id": 5, "segmentation": [[1, 1, 5, 5, 9, 9]]},
        {"id": 9, "image_id": 11, "category_id": 5, "segmentation": []},
    ]
    with pytest.warns(DataWarning) as record:
        data = load(tmp_path, ds)
    assert len(record) == 1
    message = str(record[0].message)
    assert "ann.json" in message and "7, 8, 9" in message
    assert data.skipped_annotations == (7, 8, 9)
    assert (data.read_mask(1) == 0).all()
    assert data.images[1].classes == ()


def test_a_degenerate_polygon_next_to_a_good_one_keeps_the_good_one(tmp_path):
    ds = base_dataset()
    ds["annotations"][0]["segmentation"] = [[0, 0, 3, 3], *square(0, 0, 4, 4)]
    data = load(tmp_path, ds)
    assert (data.read_mask(0)[0:4, 0:4] == 3).all()


def test_separate_validation_file_uses_the_training_classes(tmp_path):
    (tmp_path / "t").mkdir()
    train = load(tmp_path / "t", base_dataset())
    ds = base_dataset()
    ds["categories"] = [{"id": 20, "name": "cat"}]
    ds["annotations"] = [ds["annotations"][0]]
    (tmp_path / "v").mkdir()
    val = load_coco(write(tmp_path / "v", ds), tmp_path / "v" / "img", categories=train.categories)
    assert val.num_classes == train.num_classes == 4
    assert (val.read_mask(0)[0:4, 0:4] == 3).all()

    ds["categories"] = [{"id": 21, "name": "cow"}]
    ds["annotations"] = []
    with pytest.raises(SweeperError, match=r"ann\.json: category id 21"):
        load_coco(write(tmp_path / "v", ds), tmp_path / "v" / "img", categories=train.categories)


def test_image_root_defaults_to_the_annotation_folder(tmp_path):
    ds = base_dataset()
    for rec in ds["images"]:
        rec["file_name"] = "img/" + rec["file_name"]
    for rec in ds["images"]:
        (tmp_path / rec["file_name"]).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H)).save(tmp_path / rec["file_name"])
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(ds))
    assert load_coco(ann).read_image(1).shape == (H, W, 3)


# --- bad input: every case is a SweeperError naming the file and the id ---


def _mutate(fn):
    ds = base_dataset()
    fn(ds)
    return ds


BAD = {
    "missing_top_level_key": (lambda d: d.pop("categories"), [r"ann\.json", "'categories'"]),
    "empty_categories": (
        lambda d: d.update(categories=[]),
        [r"ann\.json", "'categories' is empty"],
    ),
    "unknown_image": (
        lambda d: d["annotations"][1].update(image_id=99),
        [r"ann\.json", "annotation id 2", "image_id 99"],
    ),
    "unknown_category": (
        lambda d: d["annotations"][0].update(category_id=4),
        [r"ann\.json", "annotation id 1", "category_id 4", "5, 9, 20"],
    ),
    "duplicate_image_id": (
        lambda d: d["images"][1].update(id=10),
        [r"ann\.json", "image id 10 appears twice"],
    ),
    "image_without_width": (
        lambda d: d["images"][1].pop("width"),
        [r"ann\.json", "image id 11", "'width'"],
    ),
    "annotation_without_segmentation": (
        lambda d: d["annotations"][0].pop("segmentation"),
        [r"ann\.json", "annotation id 1", "'segmentation'"],
    ),
    "odd_polygon": (
        lambda d: d["annotations"][0].update(segmentation=[[0, 0, 4, 0, 4]]),
        [r"ann\.json", "annotation id 1", "odd number"],
    ),
    "non_numeric_polygon": (
        lambda d: d["annotations"][0].update(segmentation=[[0, 0, "a", 0, 4, 4]]),
        [r"ann\.json", "annotation id 1", "finite numbers"],
    ),
    "rle_wrong_size": (
        lambda d: d["annotations"][0].update(
            segmentation={"size": [H, W + 1], "counts": [H * (W + 1)]}
        ),
        [r"ann\.json", "annotation id 1", "RLE size", "image id 10"],
    ),
    "rle_counts_wrong_sum": (
        lambda d: d["annotations"][0].update(segmentation={"size": [H, W], "counts": [5, 3]}),
        [r"ann\.json", "annotation id 1", f"{H * W}"],
    ),
    "rle_bad_string": (
        lambda d: d["annotations"][0].update(segmentation={"size": [H, W], "counts": "zz!!"}),
        [r"ann\.json", "annotation id 1", "invalid compressed RLE"],
    ),
    "image_size_mismatch": (
        lambda d: d["images"][0].update(width=W + 2),
        [r"a\.png", "image id 10", f"{W}x{H}", f"width={W + 2}"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_the_file_and_id(tmp_path, case):
    fn, patterns = BAD[case]
    ds = base_dataset()
    ann = write(tmp_path, ds)  # images exist at their declared sizes
    fn(ds)
    ann.write_text(json.dumps(ds))
    with pytest.raises(SweeperError) as info:
        load_coco(ann, tmp_path / "img")
    for pattern in patterns:
        assert re.search(pattern, str(info.value)), (pattern, str(info.value))


def test_malformed_json_reports_line_and_column(tmp_path):
    ann = write(tmp_path, base_dataset())
    ann.write_text('{\n  "images": [\n    {"id": 1,,}\n')
    with pytest.raises(SweeperError, match=r"ann\.json:3:14: malformed JSON"):
        load_coco(ann, tmp_path / "img")


def test_missing_annotation_file_and_image_root(tmp_path):
    with pytest.raises(SweeperError, match=r"nope\.json does not exist"):
        load_coco(tmp_path / "nope.json", tmp_path)
    ann = write(tmp_path, base_dataset())
    with pytest.raises(SweeperError, match=r"image root .*missing.* does not exist"):
        load_coco(ann, tmp_path / "missing")


def test_missing_image_file(tmp_path):
    ann = write(tmp_path, base_dataset())
    (tmp_path / "img" / "sub" / "b.png").unlink()
    with pytest.raises(
        SweeperError, match=r"ann\.json: image id 11: image file .*b\.png does not exist"
    ):
        load_coco(ann, tmp_path / "img")


def test_corrupt_image_file_is_caught_at_load(tmp_path):
    ann = write(tmp_path, base_dataset())
    (tmp_path / "img" / "a.png").write_bytes(b"this is not a png")
    with pytest.raises(SweeperError, match=r"a\.png: image id 10: corrupt or unreadable"):
        load_coco(ann, tmp_path / "img")


def test_truncated_image_is_caught_when_decoded(tmp_path):
    ann = write(tmp_path, base_dataset())
    path = tmp_path / "img" / "a.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:-120])  # header intact, pixel data cut
    data = load_coco(ann, tmp_path / "img")
    with pytest.raises(SweeperError, match=r"a\.png: image id 10: corrupt or unreadable"):
        data.read_image(0)


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


# --- the torch dataset ---


def test_dataset_returns_float_image_and_long_mask_and_is_worker_independent(tmp_path):
    import torch
    from torch.utils.data import DataLoader

    from sweeper.augment import build_transforms
    from sweeper.data import SegmentationDataset

    ds = base_dataset()
    ds["images"] += [
        {"id": 20 + i, "file_name": f"c{i}.png", "width": W, "height": H} for i in range(6)
    ]
    data = load(tmp_path, ds)
    train, _ = build_transforms(size=8)
    dataset = SegmentationDataset(data, [0, 2, 3, 4, 5, 6, 7], train, seed=3)
    assert isinstance(dataset, torch.utils.data.Dataset) and len(dataset) == 7
    image, mask = dataset[0]
    assert image.dtype == torch.float32 and image.shape == (3, 8, 8)
    assert mask.dtype == torch.int64 and mask.shape == (8, 8)
    assert set(mask.unique().tolist()) <= {0, 1, 3}

    def epoch(workers):
        return torch.cat([m for _, m in DataLoader(dataset, batch_size=2, num_workers=workers)])

    clone = pickle.loads(pickle.dumps(dataset))  # what spawn/forkserver workers receive
    assert type(clone) is type(dataset) and torch.equal(clone[3][1], dataset[3][1])

    first = epoch(0)
    assert torch.equal(first, epoch(2))  # same draws whichever worker serves a sample
    dataset.set_epoch(1)
    assert not torch.equal(first, epoch(0))  # a new epoch, new augmentations


def test_importing_the_modules_does_not_import_heavy_libraries():
    code = (
        "import sys, sweeper.data, sweeper.augment, sweeper.splits, sweeper.demo\n"
        "heavy = {'torch', 'albumentations', 'pycocotools', 'sklearn', 'PIL'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
