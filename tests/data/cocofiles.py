"""Tiny COCO files for the data tests: two 16x12 images, three categories with scattered ids.

Shared by the tests of :mod:`sweeper.data` (this folder's test modules import it by name)."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from sweeper.data import load_coco

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
