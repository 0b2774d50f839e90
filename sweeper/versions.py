"""The versions of the stack, read from package metadata without importing the packages.

Runs record them (a result is only comparable with runs of the same stack) and the zoo's cache
keys on them (the catalogue changes with smp, timm and torch).
"""

from __future__ import annotations

import platform
from importlib import metadata

RECORDED = ("torch", "segmentation-models-pytorch", "timm", "albumentations", "numpy", "optuna")


def library_versions(dists: tuple[str, ...] = RECORDED) -> dict[str, str]:
    """``{"python": "3.11.7", "torch": "2.14.1", ...}``; a package that is not installed reads
    ``missing``."""
    out = {"python": platform.python_version()}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "missing"
    return out
