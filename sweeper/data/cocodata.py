"""A validated COCO file as an object: its classes, its images, and their pixels on demand.

Classes: COCO category ids may be anything (``3, 7, 11, 20``); they are mapped to class indices
``1..K`` in ascending id order and ``0`` is background, so a model has ``K + 1`` output channels
(:attr:`CocoData.num_classes`). :class:`CocoData` holds no pixels: images are decoded and masks
read from the cache (or painted and cached, :mod:`sweeper.data.masks`) when asked for, so the
object is cheap to pickle into DataLoader workers. It is built by
:func:`sweeper.data.load_coco`, which validates the file first.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sweeper.data.masks import CacheStats, Shape, paint, read_mask_file, write_mask_file
from sweeper.errors import SweeperError


@dataclass(frozen=True)
class Category:
    """One foreground class: ``index`` is its channel in the model output (1..K)."""

    index: int
    coco_id: int
    name: str


@dataclass(frozen=True)
class ImageInfo:
    """What splitters and reports need to know about one image, without reading its pixels.

    ``index`` is the image's position in :attr:`CocoData.images`, which is what split index
    arrays refer to. ``classes`` are the class indices (1..K) with at least one usable
    annotation on the image; ``()`` means all background. ``record`` is the image's dict from the
    JSON as written, so group fields such as ``"source"`` can be read from it.
    """

    index: int
    image_id: int
    file_name: str
    path: Path
    width: int
    height: int
    classes: tuple[int, ...]
    record: Mapping[str, Any] = field(repr=False, compare=False)


class CocoData:
    """A validated COCO annotation file with its images; built by :func:`~sweeper.data.load_coco`.

    Holds no pixels: images are decoded and masks read (or rasterised and cached) on demand, so
    the object is cheap to pickle into DataLoader workers.
    """

    def __init__(
        self,
        annotation_file: Path,
        image_root: Path,
        categories: tuple[Category, ...],
        images: tuple[ImageInfo, ...],
        shapes: tuple[tuple[Shape, ...], ...],
        skipped_annotations: tuple[Any, ...],
        mask_cache_dir: Path | None,
    ):
        self.annotation_file = annotation_file
        self.image_root = image_root
        self.categories = categories
        self.images = images
        self.skipped_annotations = skipped_annotations
        self.mask_cache_dir = mask_cache_dir
        self.cache_stats = CacheStats()
        self._shapes = shapes

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (
            f"CocoData({str(self.annotation_file)!r}, images={len(self.images)}, "
            f"classes={self.num_classes})"
        )

    @property
    def num_classes(self) -> int:
        """Output channels a model needs: K foreground classes plus background (index 0)."""
        return len(self.categories) + 1

    @property
    def class_names(self) -> list[str]:
        """Names by class index; index 0 is ``"background"``."""
        return ["background", *(c.name for c in self.categories)]

    @property
    def mask_dtype(self) -> np.dtype:
        """uint8 up to 255 foreground classes, uint16 beyond."""
        return np.dtype(np.uint8) if self.num_classes <= 256 else np.dtype(np.uint16)

    def coco(self) -> Any:
        """A pycocotools ``COCO`` object for this file, for tools that want one (built on each
        call from the file on disk; its progress prints are swallowed)."""
        from pycocotools.coco import COCO

        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(self.annotation_file))

    def read_image(self, i: int) -> np.ndarray:
        """Image ``i`` as an HxWx3 uint8 RGB array (grayscale, palette and RGBA converted)."""
        info = self.images[i]
        return read_image_file(info.path, what=f"image id {info.image_id}")

    def rasterise(self, i: int) -> np.ndarray:
        """Paint image ``i``'s mask from its annotations, bypassing the cache.

        Returns an HxW array of class indices (0 = background); larger annotations are painted
        first, so where objects overlap the smaller one wins. Ties keep annotation order.
        """
        info = self.images[i]
        return paint(self._shapes[i], info.height, info.width, self.mask_dtype)

    def read_mask(self, i: int) -> np.ndarray:
        """Mask of image ``i`` (HxW class indices), from the cache if present, else rasterised
        and written to the cache."""
        if self.mask_cache_dir is None:
            return self.rasterise(i)
        path = self._mask_path(i)
        info = self.images[i]
        cached = read_mask_file(path, info.height, info.width, self.mask_dtype)
        if cached is not None:
            self.cache_stats.hits += 1
            return cached
        self.cache_stats.misses += 1
        mask = self.rasterise(i)
        write_mask_file(path, mask, self.mask_dtype)
        return mask

    def cache_masks(self) -> int:
        """Rasterise every mask not yet cached; returns how many were rasterised (0 = warm)."""
        if self.mask_cache_dir is None:
            return 0
        done = 0
        for i in range(len(self.images)):
            path = self._mask_path(i)
            if not path.exists():
                write_mask_file(path, self.rasterise(i), self.mask_dtype)
                done += 1
        return done

    def _mask_path(self, i: int) -> Path:
        assert self.mask_cache_dir is not None
        return self.mask_cache_dir / f"{self.images[i].image_id}.mask"


def read_image_file(path: Path, *, what: str = "image") -> np.ndarray:
    """Decode an image file to HxWx3 uint8 RGB; unreadable or truncated files are SweeperErrors.

    Alpha is dropped (not composited): segmentation labels refer to the stored colour values.
    EXIF orientation is ignored, as pycocotools and COCO widths/heights do.
    """
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise SweeperError(f"{path}: {what}: file does not exist")
    try:
        with Image.open(path) as im:
            if im.mode in SIXTEEN_BIT_MODES:
                return _sixteen_bit_to_rgb(np.asarray(im), path, what)
            rgb = im.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise SweeperError(f"{path}: {what}: refused as a decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SweeperError(f"{path}: {what}: corrupt or unreadable image ({exc})") from None
    return np.asarray(rgb)


#: PIL's modes of one-channel images deeper than 8 bits (16-bit PNG and TIFF). ``convert("RGB")``
#: clips them at 255, so almost every pixel of a 16-bit image would read as white.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _sixteen_bit_to_rgb(pixels: np.ndarray, path: Path, what: str) -> np.ndarray:
    """A 16-bit grey image scaled linearly to 8 bits (0 -> 0, 65535 -> 255), as three channels."""
    values = pixels.astype(np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise SweeperError(f"{path}: {what}: 32-bit integer pixels ({values.min()}..{values.max()}); convert the "
                           "image to 8 or 16 bits per channel")
    grey = ((values * 255 + 32767) // 65535).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)
