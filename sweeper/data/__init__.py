"""COCO-format segmentation data: validated once, masks rasterised once, served as tensors.

:func:`load_coco` (:mod:`sweeper.data.coco`) reads and checks an annotation file and returns a
:class:`CocoData` (:mod:`sweeper.data.cocodata`), whose masks are painted and cached by
:mod:`sweeper.data.masks`; :class:`SegmentationDataset` (:mod:`sweeper.data.dataset`) serves
them to torch. Heavy imports (torch, pycocotools, PIL) happen inside functions so
``sweeper --help`` stays instant; :class:`SegmentationDataset` is created on first access for the
same reason.
"""

from __future__ import annotations

from typing import Any

from sweeper.data.coco import DataWarning, load_coco
from sweeper.data.cocodata import Category, CocoData, ImageInfo, read_image_file
from sweeper.data.masks import CacheStats, check_masks

__all__ = [
    "CacheStats",
    "Category",
    "CocoData",
    "DataWarning",
    "ImageInfo",
    "SegmentationDataset",  # noqa: F822 (created on first access by __getattr__)
    "check_masks",
    "load_coco",
    "read_image_file",
]


def __getattr__(name: str) -> Any:
    if name == "SegmentationDataset":
        from sweeper.data.dataset import SegmentationDataset

        globals()[name] = SegmentationDataset  # later lookups (and unpickling in workers) find it directly
        return SegmentationDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
