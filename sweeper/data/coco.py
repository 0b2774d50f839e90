"""Reading a COCO annotation file: every check up front, every problem a one-line error.

A dataset is an annotation JSON plus an image root that its ``file_name`` entries are relative
to. :func:`load_coco` reads and checks the whole file up front (structure, ids, image headers) so
that a typo costs seconds, not a crashed trial an hour into a sweep; every problem is a
:class:`~sweeper.errors.SweeperError` naming the file and the image or annotation id.

Degenerate polygons (fewer than 3 points, or zero area) are skipped with one
:class:`DataWarning` per file rather than an error: exporters produce them routinely for
objects clipped to a line, and they carry no pixels anyway. Everything else that is wrong is an
error.

The JSON is parsed here rather than by pycocotools' ``COCO()``, so that errors carry a line and
column or an id, and nothing is printed; :meth:`CocoData.coco` returns a ``COCO`` object, prints
swallowed, for tools that want one.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sweeper.data.cocodata import Category, CocoData, ImageInfo
from sweeper.data.masks import Shape, decode_rle, mask_cache_dir
from sweeper.errors import SweeperError

_REQUIRED_KEYS = ("images", "annotations", "categories")


class DataWarning(UserWarning):
    """Something in the data was skipped on purpose (e.g. a degenerate polygon)."""


def load_coco(
    annotation_file: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    *,
    categories: Sequence[Category] | None = None,
    check_images: bool = True,
    cache_masks: bool = True,
) -> CocoData:
    """Read and validate a COCO annotation file; every problem is a SweeperError.

    ``image_root`` defaults to the annotation file's folder. Pass ``categories`` (the training
    data's :attr:`CocoData.categories`) when loading a separate validation file, so that both
    files use the same class indices; the validation file may list a subset of those category
    ids, but none that are unknown. ``check_images`` opens every image's header (about 50 us
    each) to catch missing, unreadable and wrongly sized files before training starts; full
    decoding happens later and reports truncated files the same way. ``cache_masks=False``
    rasterises masks on every access (for benchmarks, or a read-only disk).
    """
    ann_path = Path(annotation_file)
    if not ann_path.is_file():
        kind = "is a folder, not a file" if ann_path.is_dir() else "does not exist"
        raise SweeperError(f"annotation file {ann_path} {kind}")
    root = Path(image_root) if image_root is not None else ann_path.parent
    if not root.is_dir():
        kind = "is not a folder" if root.exists() else "does not exist"
        raise SweeperError(f"image root {root} (for {ann_path}) {kind}")
    raw = ann_path.read_bytes()
    dataset = _parse_json(ann_path, raw)

    cats = _read_categories(ann_path, dataset["categories"], categories)
    index_of = {c.coco_id: c.index for c in cats}
    records = _read_images(ann_path, root, dataset["images"], check_images)
    row_of = {rec["id"]: row for row, rec in enumerate(records)}
    shapes: list[list[Shape]] = [[] for _ in records]
    degenerate: list[Any] = []
    ann_ids: set[Any] = set()
    for pos, ann in enumerate(dataset["annotations"]):
        _check_annotation(ann_path, pos, ann, row_of, index_of)
        if ann["id"] in ann_ids:  # pycocotools' index keeps only the last of a repeated id
            raise SweeperError(f"{ann_path}: annotation id {ann['id']!r} appears twice in 'annotations'")
        ann_ids.add(ann["id"])
        row = row_of[ann["image_id"]]
        rec = records[row]
        shape = _read_segmentation(ann_path, ann, index_of[ann["category_id"]], rec)
        if shape is None:
            degenerate.append(ann.get("id", f"#{pos}"))
        else:
            shapes[row].append(shape)
    if degenerate:
        shown = ", ".join(str(a) for a in degenerate[:10])
        more = f" and {len(degenerate) - 10} more" if len(degenerate) > 10 else ""
        warnings.warn(
            f"{ann_path}: skipped {len(degenerate)} annotation(s) whose polygons are all "
            f"degenerate (fewer than 3 points or zero area): annotation id(s) {shown}{more}",
            DataWarning,
            stacklevel=2,
        )

    images = tuple(
        ImageInfo(
            index=row,
            image_id=rec["id"],
            file_name=rec["file_name"],
            path=root / rec["file_name"],
            width=rec["width"],
            height=rec["height"],
            classes=tuple(sorted({s.class_index for s in shapes[row]})),
            record=rec,
        )
        for row, rec in enumerate(records)
    )
    key = mask_cache_dir(raw, root) if cache_masks else None
    return CocoData(
        annotation_file=ann_path,
        image_root=root,
        categories=cats,
        images=images,
        shapes=tuple(tuple(s) for s in shapes),
        skipped_annotations=tuple(degenerate),
        mask_cache_dir=key,
    )


def _parse_json(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        dataset = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise SweeperError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise SweeperError(f"{path}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}") from None
    if not isinstance(dataset, dict):
        raise SweeperError(
            f"{path}: top level must be a JSON object with keys "
            f"{', '.join(_REQUIRED_KEYS)}, got {type(dataset).__name__}"
        )
    missing = [k for k in _REQUIRED_KEYS if k not in dataset]
    if missing:
        raise SweeperError(
            f"{path}: missing top-level key(s) {', '.join(repr(k) for k in missing)} "
            f"(a COCO file needs {', '.join(_REQUIRED_KEYS)})"
        )
    for key in _REQUIRED_KEYS:
        if not isinstance(dataset[key], list):
            raise SweeperError(f"{path}: {key!r} must be a list, got {type(dataset[key]).__name__}")
    return dataset


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_categories(
    path: Path, raw: list[Any], fixed: Sequence[Category] | None
) -> tuple[Category, ...]:
    if not raw:
        raise SweeperError(f"{path}: 'categories' is empty; at least one class is needed")
    seen: dict[int, str] = {}
    for pos, cat in enumerate(raw):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")):
            raise SweeperError(f"{path}: category #{pos} needs an integer 'id'")
        if cat["id"] in seen:
            raise SweeperError(f"{path}: category id {cat['id']} appears twice")
        seen[cat["id"]] = str(cat.get("name", f"category_{cat['id']}"))
    if fixed is not None:
        known = {c.coco_id for c in fixed}
        for coco_id in seen:
            if coco_id not in known:
                raise SweeperError(
                    f"{path}: category id {coco_id} ({seen[coco_id]!r}) is not among the training "
                    f"data's categories (ids {', '.join(str(k) for k in sorted(known))})"
                )
        return tuple(fixed)
    return tuple(
        Category(index=i, coco_id=coco_id, name=seen[coco_id])
        for i, coco_id in enumerate(sorted(seen), start=1)
    )


def _read_images(
    path: Path, root: Path, raw: list[Any], check_images: bool
) -> list[dict[str, Any]]:
    seen: set[int] = set()
    files: dict[str, Any] = {}
    outside: list[str] = []
    for pos, rec in enumerate(raw):
        if not isinstance(rec, dict) or not _is_int(rec.get("id")):
            raise SweeperError(f"{path}: image #{pos} needs an integer 'id'")
        name = f"image id {rec['id']}"
        if rec["id"] in seen:
            raise SweeperError(f"{path}: {name} appears twice in 'images'")
        seen.add(rec["id"])
        if not isinstance(rec.get("file_name"), str) or not rec["file_name"]:
            raise SweeperError(f"{path}: {name} needs a 'file_name' string")
        where = os.path.normpath(root / rec["file_name"])
        if where in files:
            raise SweeperError(f"{path}: {name} and image id {files[where]} use the same file {rec['file_name']!r}; "
                               "its pixels could land in both train and val, which leaks the validation set")
        files[where] = rec["id"]
        if os.path.relpath(where, os.path.normpath(root)).split(os.sep)[0] == os.pardir:
            outside.append(f"{name} ({rec['file_name']!r})")
        for key in ("width", "height"):
            if not _is_int(rec.get(key)) or rec[key] <= 0:
                raise SweeperError(
                    f"{path}: {name} needs a positive integer {key!r}, got {rec.get(key)!r}"
                )
        if check_images:
            _check_image_header(path, root / rec["file_name"], rec)
    if outside:  # allowed (some datasets share a folder on purpose), but said, once per file
        more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
        warnings.warn(f"{path}: {len(outside)} image(s) with a file_name outside the image root {root}, read from "
                      f"there: {', '.join(outside[:5])}{more}", DataWarning, stacklevel=3)
    return raw


def _check_image_header(ann_path: Path, file: Path, rec: dict[str, Any]) -> None:
    from PIL import Image, UnidentifiedImageError

    name = f"image id {rec['id']}"
    if not file.is_file():
        kind = "is a folder, not a file" if file.is_dir() else "does not exist"
        raise SweeperError(f"{ann_path}: {name}: image file {file} {kind}")
    try:
        with Image.open(file) as im:
            width, height = im.size
    except Image.DecompressionBombError as exc:
        raise SweeperError(f"{file}: {name}: refused as a decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SweeperError(f"{file}: {name}: corrupt or unreadable image ({exc})") from None
    if (width, height) != (rec["width"], rec["height"]):
        raise SweeperError(
            f"{file}: {name} is {width}x{height} pixels but {ann_path} says "
            f"width={rec['width']} height={rec['height']}"
        )


def _check_annotation(
    path: Path, pos: int, ann: Any, row_of: dict[int, int], index_of: dict[int, int]
) -> None:
    if not isinstance(ann, dict):
        raise SweeperError(f"{path}: annotation #{pos} must be an object")
    if "id" not in ann:
        raise SweeperError(f"{path}: annotation #{pos} has no 'id'")
    if not (_is_int(ann["id"]) or isinstance(ann["id"], str)):
        raise SweeperError(f"{path}: annotation #{pos} needs an integer 'id', got {ann['id']!r}")
    name = f"annotation id {ann['id']}"
    for key in ("image_id", "category_id", "segmentation"):
        if key not in ann:
            raise SweeperError(f"{path}: {name} has no {key!r}")
    for key in ("image_id", "category_id"):
        if not _is_int(ann[key]):
            raise SweeperError(f"{path}: {name} needs an integer {key!r}, got {ann[key]!r}")
    if ann["image_id"] not in row_of:
        raise SweeperError(
            f"{path}: {name} points at image_id {ann['image_id']!r}, which is not in 'images'"
        )
    if ann["category_id"] not in index_of:
        known = ", ".join(str(k) for k in sorted(index_of))
        raise SweeperError(
            f"{path}: {name} has category_id {ann['category_id']!r}, which is not in "
            f"'categories' (ids {known})"
        )


def _read_segmentation(
    path: Path, ann: dict[str, Any], class_index: int, rec: dict[str, Any]
) -> Shape | None:
    """Check one annotation's geometry; None when every polygon is degenerate."""
    name = f"annotation id {ann['id']}"
    segm = ann["segmentation"]
    h, w = rec["height"], rec["width"]
    if isinstance(segm, list):
        kept = []
        for poly in segm:
            try:
                xy = np.asarray(poly, dtype=np.float64) if isinstance(poly, list) else None
            except (TypeError, ValueError):
                xy = None
            if xy is None or xy.ndim != 1 or not np.isfinite(xy).all():
                raise SweeperError(
                    f"{path}: {name}: a polygon must be a list of finite numbers x1, y1, x2, y2..."
                )
            if len(xy) % 2:
                raise SweeperError(
                    f"{path}: {name}: a polygon has an odd number of coordinates ({len(xy)})"
                )
            # pycocotools walks every edge pixel by pixel: a point millions of pixels away
            # exhausts memory or crashes the process. Points slightly outside are clipped.
            far = (np.abs(xy[0::2] - w / 2) > 1.5 * w) | (np.abs(xy[1::2] - h / 2) > 1.5 * h)
            if far.any():
                i = int(np.argmax(far))
                raise SweeperError(
                    f"{path}: {name}: polygon point ({xy[2 * i]:g}, {xy[2 * i + 1]:g}) lies far "
                    f"outside image id {rec['id']} ({w}x{h} pixels)"
                )
            if len(xy) >= 6 and _polygon_area(xy) > 0:
                kept.append(poly)
        if not kept:
            return None
        return Shape(ann["id"], class_index, "polygons", kept)
    if isinstance(segm, dict):
        counts, size = segm.get("counts"), segm.get("size")
        if counts is None or size is None:
            raise SweeperError(f"{path}: {name}: an RLE segmentation needs 'counts' and 'size'")
        if not isinstance(size, (list, tuple)) or list(size) != [h, w]:
            raise SweeperError(
                f"{path}: {name}: RLE size {size!r} (height, width) does not match "
                f"image id {rec['id']} ({h}, {w})"
            )
        if isinstance(counts, list):
            if not all(_is_int(c) and c >= 0 for c in counts) or sum(counts) != h * w:
                raise SweeperError(
                    f"{path}: {name}: uncompressed RLE counts must be non-negative integers "
                    f"summing to height*width = {h * w}"
                )
            return Shape(ann["id"], class_index, "rle_counts", {"size": [h, w], "counts": counts})
        if isinstance(counts, str):
            shape = Shape(ann["id"], class_index, "rle", {"size": [h, w], "counts": counts})
            try:  # a bad string only shows when decoded; crowd RLEs are few, so decode now
                decode_rle(shape.segmentation)
            except ValueError as exc:
                raise SweeperError(f"{path}: {name}: invalid compressed RLE ({exc})") from None
            return shape
        raise SweeperError(f"{path}: {name}: RLE 'counts' must be a list or a string")
    raise SweeperError(
        f"{path}: {name}: 'segmentation' must be a list of polygons or an RLE object"
    )


def _polygon_area(xy: np.ndarray) -> float:
    """Shoelace area in square pixels of a flat ``x1, y1, x2, y2...`` array."""
    xs, ys = xy[0::2], xy[1::2]
    twice = xs[:-1] @ ys[1:] - ys[:-1] @ xs[1:] + xs[-1] * ys[0] - ys[-1] * xs[0]
    return 0.5 * abs(float(twice))
