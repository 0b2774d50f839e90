"""sweeper.data.coco: class mapping, degenerate polygons, a separate validation file, and every
kind of bad input, each a SweeperError naming the file and the id. Fixtures are tiny files
written into tmp_path (cocofiles.py)."""

from __future__ import annotations

import json
import re

import pytest
from cocofiles import H, W, base_dataset, load, square, write
from PIL import Image

from sweeper.data import DataWarning, load_coco
from sweeper.errors import SweeperError


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


def test_a_file_name_outside_the_image_root_is_read_with_one_warning_naming_the_images(tmp_path):
    """``../`` or an absolute path may be on purpose (a shared folder): read, not refused, and said
    once per file, with the ids and file names, however many images do it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    ds = base_dataset()
    ds["images"][1]["file_name"] = "../shared/b.png"
    ds["images"].append({"id": 12, "file_name": str(shared / "c.png"), "width": W, "height": H})
    ds["images"].append({"id": 13, "file_name": "sub/../d.png", "width": W, "height": H})  # stays inside
    for name in ("b.png", "c.png"):
        Image.new("RGB", (W, H), (200, 0, 0)).save(shared / name)
    with pytest.warns(DataWarning) as record:
        data = load(tmp_path, ds)
    [warning] = [str(r.message) for r in record]
    assert "ann.json: 2 image(s) with a file_name outside the image root" in warning
    assert "image id 11 ('../shared/b.png')" in warning and f"image id 12 ('{shared / 'c.png'}')" in warning
    assert "image id 13" not in warning and "image id 10" not in warning
    assert (data.read_image(1) == [200, 0, 0]).all()  # read from outside the root


def test_many_images_outside_the_root_give_one_short_warning(tmp_path):
    ds = base_dataset()
    ds["images"] = [{"id": i, "file_name": f"../out/{i}.png", "width": W, "height": H} for i in range(40)]
    ds["annotations"] = []
    (tmp_path / "out").mkdir()
    for i in range(40):
        Image.new("RGB", (W, H)).save(tmp_path / "out" / f"{i}.png")
    with pytest.warns(DataWarning) as record:
        load(tmp_path, ds)
    [warning] = [str(r.message) for r in record]
    assert "40 image(s)" in warning and "image id 4 (" in warning and "image id 5 (" not in warning
    assert warning.endswith("and 35 more")


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
