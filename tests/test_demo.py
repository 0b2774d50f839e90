"""The synthetic demo dataset: deterministic, loadable, and with the properties it promises."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from sweeper.data import check_masks, load_coco
from sweeper.demo import CATEGORIES, demo_dataset_paths, write_demo_dataset

SMALL = {"n_images": 26, "size": 64}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo_dataset(tmp_path_factory.mktemp("demo"), **SMALL)


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files_and_another_seed_does_not(demo, tmp_path):
    again = write_demo_dataset(tmp_path / "a", **SMALL)
    assert again.annotation_file.read_bytes() == demo.annotation_file.read_bytes()
    assert _files(again.image_root) == _files(demo.image_root)
    other = write_demo_dataset(tmp_path / "b", **SMALL, seed=1)
    assert other.annotation_file.read_bytes() != demo.annotation_file.read_bytes()


def test_json_has_scattered_ids_crowd_rles_empty_images_and_sources(demo):
    ds = json.loads(demo.annotation_file.read_text())
    assert (
        [c["id"] for c in ds["categories"]] == [cid for cid, _ in CATEGORIES] == [3, 7, 11, 20, 42]
    )
    kinds = Counter(
        (
            a["iscrowd"],
            type(a["segmentation"]).__name__,
            type(a["segmentation"].get("counts")).__name__,
        )
        if isinstance(a["segmentation"], dict)
        else (a["iscrowd"], "list", "")
        for a in ds["annotations"]
    )
    assert kinds[1, "dict", "list"] >= 1  # uncompressed crowd RLE
    assert kinds[1, "dict", "str"] >= 1  # compressed RLE
    annotated = {a["image_id"] for a in ds["annotations"]}
    assert len([im for im in ds["images"] if im["id"] not in annotated]) >= 2
    assert all(im["file_name"].startswith(im["source"] + "/") for im in ds["images"])
    assert len({im["source"] for im in ds["images"]}) == 8


def test_pebbles_are_much_smaller_than_discs():
    # At the default 128 px: a pebble's largest area is below a disc's smallest.
    ds = json.loads(demo_dataset_paths(n_images=48).annotation_file.read_text())
    areas = {
        cid: [a["area"] for a in ds["annotations"] if a["category_id"] == cid] for cid in (3, 7)
    }
    assert areas[3] and areas[7]
    assert max(areas[7]) < min(areas[3]) / 2


def test_loads_and_masks_match_the_pixels(demo):
    data = load_coco(*demo)
    assert data.num_classes == 6
    assert data.class_names == ["background", "disc", "pebble", "triangle", "stripes", "speckle"]
    images = np.stack([data.read_image(i) for i in range(len(data))]).astype(int)
    masks = np.stack([data.read_mask(i) for i in range(len(data))])
    counts = check_masks(masks, data.num_classes)
    assert (counts[1:] > 0).all()
    spread = images.max(-1) - images.min(-1)  # 0 for grey, large for saturated colours
    # Texture classes are grey, shape classes saturated, backgrounds tinted in between:
    # a mask shifted or painted in the wrong order would mix these populations.
    assert np.median(spread[np.isin(masks, [4, 5])]) < 15
    assert np.median(spread[np.isin(masks, [1, 2, 3])]) > 120
    assert 25 < np.median(spread[masks == 0]) < 90


def test_loads_through_the_dataset_and_a_dataloader(demo):
    import torch
    from torch.utils.data import DataLoader

    from sweeper.augment import build_transforms
    from sweeper.data import SegmentationDataset

    data = load_coco(*demo)
    train, _ = build_transforms(size=32)
    images, masks = next(iter(DataLoader(SegmentationDataset(data, transform=train), batch_size=8)))
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
    assert masks.shape == (8, 32, 32) and masks.dtype == torch.int64
    check_masks(masks, data.num_classes)


def test_cached_demo_is_generated_once(monkeypatch):
    first = demo_dataset_paths(**SMALL)
    stamp = first.annotation_file.stat().st_mtime_ns
    import sweeper.demo

    def fail(*args, **kwargs):
        raise AssertionError("regenerated")

    monkeypatch.setattr(sweeper.demo, "write_demo_dataset", fail)
    again = demo_dataset_paths(**SMALL)
    assert again == first and again.annotation_file.stat().st_mtime_ns == stamp
    assert load_coco(*again).num_classes == 6
