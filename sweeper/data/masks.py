"""Masks: painting an image's annotations into class indices, and the on-disk mask cache.

Where annotations overlap, larger ones are painted first so small objects stay visible on top.
Crowd annotations (``iscrowd``, RLE) are painted like any other. pycocotools does the geometry
(the same ``frPyObjects``/``merge``/``decode`` calls as ``COCO.annToMask``).

Masks are cached one file per image under ``cache_dir("masks", <key>)``, where the key hashes
the annotation file's bytes and the image root (:func:`mask_cache_dir`): editing the JSON gives a
new key, so stale masks are never read. A cache file ``<image_id>.mask`` is 8 bytes of
little-endian uint32 height and width, then the zlib-compressed (level 1) row-major class
indices, uint8 (uint16 beyond 255 classes). Raw zlib reads about 2x faster than a PNG of the same
mask through PIL (measured 0.02 vs 0.07 ms at 128 px, 0.28 vs 0.50 ms at 512 px) and is about as
small.
"""

from __future__ import annotations

import hashlib
import os
import struct
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sweeper.cache import cache_dir
from sweeper.errors import SweeperError

#: Bump when the cached mask format or the painting rule changes, to orphan old caches.
MASK_CACHE_VERSION = 1


@dataclass(frozen=True)
class Shape:
    """One usable annotation: ``kind`` is 'polygons', 'rle_counts' (uncompressed) or 'rle'."""

    ann_id: Any
    class_index: int
    kind: str
    segmentation: Any


@dataclass
class CacheStats:
    """Mask cache counters of this process (workers of a DataLoader keep their own)."""

    hits: int = 0
    misses: int = 0


def paint(shapes: Sequence[Shape], height: int, width: int, dtype: np.dtype) -> np.ndarray:
    """An HxW array of class indices (0 = background) painted from ``shapes``.

    Larger annotations are painted first, so where objects overlap the smaller one wins. Ties
    keep annotation order.
    """
    from pycocotools import mask as mask_utils

    mask = np.zeros((height, width), dtype=dtype)
    rles = []
    for order, shape in enumerate(shapes):
        rle = to_rle(shape, height, width)
        rles.append((-float(mask_utils.area(rle)), order, shape.class_index, rle))
    for _, _, class_index, rle in sorted(rles, key=lambda r: (r[0], r[1])):
        mask[decode_rle(rle)] = class_index
    return mask


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """RLE to an HxW bool array; hides pycocotools' numpy-2 ``copy=False`` DeprecationWarning."""
    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def to_rle(shape: Shape, h: int, w: int) -> dict[str, Any]:
    """One annotation's geometry as a single compressed RLE of an ``h`` x ``w`` image."""
    from pycocotools import mask as mask_utils

    if shape.kind == "polygons":
        return mask_utils.merge(mask_utils.frPyObjects(shape.segmentation, h, w))
    if shape.kind == "rle_counts":
        return mask_utils.frPyObjects(shape.segmentation, h, w)
    return shape.segmentation


def mask_cache_dir(raw: bytes, root: Path) -> Path:
    """The cache folder of one annotation file (its bytes) read against one image root."""
    digest = hashlib.sha256(raw)
    digest.update(b"\0" + str(root.resolve()).encode() + f"\0v{MASK_CACHE_VERSION}".encode())
    return cache_dir("masks", digest.hexdigest()[:20])


def read_mask_file(path: Path, height: int, width: int, dtype: np.dtype) -> np.ndarray | None:
    """The cached mask, or None when absent or unusable (then it is simply rebuilt)."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        if struct.unpack_from("<II", blob) != (height, width):
            return None
        flat = np.frombuffer(bytearray(zlib.decompress(blob[8:])), dtype=dtype)
        return flat.reshape(height, width)
    except (struct.error, zlib.error, ValueError):
        return None


def write_mask_file(path: Path, mask: np.ndarray, dtype: np.dtype) -> None:
    """Write ``mask`` in the cache format; safe against concurrent writers of the same file."""
    # Level 1: masks are long runs, so it is nearly as small as level 9 and several times
    # faster. Written under a private name and renamed, so concurrent workers are safe.
    blob = struct.pack("<II", *mask.shape) + zlib.compress(np.ascontiguousarray(mask, dtype).tobytes(), 1)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(mask)}.tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)


def check_masks(masks: Any, num_classes: int, *, source: str = "masks") -> np.ndarray:
    """Sanity-check a batch of masks before training on them; returns pixels per class.

    ``masks`` is any array-like of class indices (a numpy array or a CPU tensor, any shape);
    ``num_classes`` counts background, like :attr:`~sweeper.data.CocoData.num_classes`. Raises a
    SweeperError naming ``source`` when a value lies outside ``0..num_classes-1`` (labels and
    model channels disagree) or when every pixel is background (nothing to learn: usually a
    category mapping or paint bug). The returned array has ``num_classes`` pixel counts.
    """
    arr = np.asarray(masks)
    if arr.size == 0:
        raise SweeperError(f"{source}: empty mask batch")
    if not np.issubdtype(arr.dtype, np.integer):
        raise SweeperError(f"{source}: masks must hold integer class indices, got {arr.dtype}")
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high >= num_classes:
        raise SweeperError(
            f"{source}: mask values span {low}..{high} but the model has {num_classes} classes "
            f"(0..{num_classes - 1}, 0 = background)"
        )
    counts = np.bincount(arr.ravel().astype(np.int64), minlength=num_classes)
    if counts[0] == arr.size:
        raise SweeperError(f"{source}: every pixel is background ({arr.size} pixels)")
    return counts
