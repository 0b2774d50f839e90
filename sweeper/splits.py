"""Validation splits that every candidate of a study shares.

A split is a pure function of ``(SplitConfig, image list)``: the config carries the seed, the
image list is :attr:`sweeper.data.CocoData.images` in file order, and scikit-learn's seeded
splitters do the work. Comparing candidates on different splits would add split noise to the
model differences a study is trying to measure, so nothing here draws from global state.

Schemes (``SplitConfig.scheme``):

``holdout``
    One random split with ``val_fraction`` of the images in validation (``ShuffleSplit``).
``kfold``
    ``n_splits`` folds (``KFold``, shuffled).
``stratified``
    ``StratifiedKFold`` on one label per image: the rarest class it contains, counted in
    images over the dataset; background-only images form their own label. A class on at least
    ``n_splits`` images thus lands in every validation fold. Labels with fewer than
    ``n_splits`` images are pooled (see :func:`stratify_labels`).
``group``
    ``GroupKFold`` (shuffled) on a group per image, so that images of one source never
    straddle train and validation. The group is the image's ``group_field`` in the COCO image
    dict, or what ``group_regex`` finds in its ``file_name`` (the first capture group if the
    pattern has one, else the whole match).

A group field or regex also works with ``holdout`` (``GroupShuffleSplit``, where
``val_fraction`` is the fraction of groups) and with ``stratified``
(``StratifiedGroupKFold``).
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sweeper.cache import stable_hash
from sweeper.errors import SweeperError, did_you_mean

if TYPE_CHECKING:
    from sweeper.data import CocoData, ImageInfo

__all__ = [
    "SCHEMES",
    "Fold",
    "SplitConfig",
    "make_folds",
    "make_splits",
    "split_key",
    "stratify_labels",
]

SCHEMES = ("holdout", "kfold", "stratified", "group")


@dataclass(frozen=True)
class SplitConfig:
    """How to split one annotation file into train and validation.

    ``n_splits`` is the number of folds (ignored by ``holdout``); ``val_fraction`` is the share
    of images (or of groups, when grouped) held out by ``holdout``; ``seed`` fixes the
    shuffling. ``group_field`` and ``group_regex`` are mutually exclusive.
    """

    scheme: str = "holdout"
    n_splits: int = 5
    val_fraction: float = 0.2
    group_field: str | None = None
    group_regex: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise SweeperError(
                f"split scheme {self.scheme!r} is unknown{did_you_mean(self.scheme, SCHEMES)}; "
                f"choose one of {', '.join(SCHEMES)}"
            )
        if not _is_int(self.n_splits) or self.n_splits < 2:
            raise SweeperError(f"split n_splits must be an integer >= 2, got {self.n_splits!r}")
        if not isinstance(self.val_fraction, (int, float)) or not 0 < self.val_fraction < 1:
            raise SweeperError(
                f"split val_fraction must lie strictly between 0 and 1, got {self.val_fraction!r}"
            )
        if not _is_int(self.seed):
            raise SweeperError(f"split seed must be an integer, got {self.seed!r}")
        if self.group_field is not None and self.group_regex is not None:
            raise SweeperError("split: give group_field or group_regex, not both")
        if self.scheme == "group" and self.group_field is None and self.group_regex is None:
            raise SweeperError("split scheme 'group' needs group_field or group_regex")
        if self.scheme == "kfold" and self.grouped:
            raise SweeperError(
                "split scheme 'kfold' ignores groups; use scheme 'group' for grouped folds"
            )
        if self.group_regex is not None:
            try:
                re.compile(self.group_regex)
            except re.error as exc:
                raise SweeperError(
                    f"split group_regex {self.group_regex!r} is invalid: {exc}"
                ) from None

    @property
    def grouped(self) -> bool:
        """True when images are grouped by a field or a file-name pattern."""
        return self.group_field is not None or self.group_regex is not None


@dataclass(frozen=True, eq=False)
class Fold:
    """One train/validation pair, ready for :class:`sweeper.data.SegmentationDataset`.

    Without a separate validation file ``train_data`` and ``val_data`` are the same object and
    the index arrays are disjoint; with one, each index array covers its whole file.
    """

    index: int
    train_data: CocoData
    train_idx: np.ndarray
    val_data: CocoData
    val_idx: np.ndarray


def make_splits(
    config: SplitConfig, infos: Sequence[ImageInfo], *, source: str = "split"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return ``[(train_idx, val_idx), ...]``: one pair for holdout, ``n_splits`` otherwise.

    Indices are positions in ``infos`` (int64, sorted); every pair is disjoint and together
    covers all images. Same config and same image list give the same arrays, in any process.
    ``source`` (usually the annotation file) starts error messages.
    """
    from sklearn import model_selection as ms

    n = len(infos)
    if n < 2:
        raise SweeperError(f"{source}: need at least 2 images to split, got {n}")
    if config.scheme != "holdout" and n < config.n_splits:
        raise SweeperError(
            f"{source}: n_splits={config.n_splits} is more than the {n} images available"
        )
    x = np.zeros((n, 1))
    groups = _groups(config, infos, source) if config.grouped else None
    if groups is not None:
        n_groups = len(set(groups.tolist()))
        needed = 2 if config.scheme == "holdout" else config.n_splits
        if n_groups < needed:
            what = (
                "needs at least 2 groups"
                if config.scheme == "holdout"
                else (f"n_splits={config.n_splits} needs as many groups")
            )
            raise SweeperError(f"{source}: {what}, but {_group_source(config)} gives {n_groups}")
    seed = config.seed
    if config.scheme == "holdout":
        if groups is None:
            splitter = ms.ShuffleSplit(n_splits=1, test_size=config.val_fraction, random_state=seed)
        else:
            splitter = ms.GroupShuffleSplit(
                n_splits=1, test_size=config.val_fraction, random_state=seed
            )
        pairs = splitter.split(x, groups=groups)
    elif config.scheme == "kfold":
        pairs = ms.KFold(config.n_splits, shuffle=True, random_state=seed).split(x)
    elif config.scheme == "stratified":
        y = stratify_labels(infos, config.n_splits, source=source)
        if groups is None:
            splitter = ms.StratifiedKFold(config.n_splits, shuffle=True, random_state=seed)
        else:
            splitter = ms.StratifiedGroupKFold(config.n_splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # pooled labels can still be short of n_splits groups
            warnings.filterwarnings(
                "ignore", message="The least populated class", category=UserWarning
            )
            pairs = list(splitter.split(x, y, groups=groups))
    else:
        pairs = ms.GroupKFold(config.n_splits, shuffle=True, random_state=seed).split(
            x, groups=groups
        )
    out = []
    for train, val in pairs:
        if len(train) == 0 or len(val) == 0:
            raise SweeperError(
                f"{source}: scheme {config.scheme!r} left an empty train or validation set "
                f"({len(train)} / {len(val)} images)"
            )
        out.append((np.sort(train).astype(np.int64), np.sort(val).astype(np.int64)))
    return out


def make_folds(config: SplitConfig, train: CocoData, val: CocoData | None = None) -> list[Fold]:
    """The folds a study trains on: a split of ``train``, or ``train`` vs a separate ``val``."""
    if val is not None:
        return [Fold(0, train, np.arange(len(train)), val, np.arange(len(val)))]
    return [
        Fold(i, train, tr, train, va)
        for i, (tr, va) in enumerate(
            make_splits(config, train.images, source=str(train.annotation_file))
        )
    ]


def split_key(config: SplitConfig, infos: Sequence[ImageInfo]) -> str:
    """A short hash of everything the split depends on, to check that a resumed study uses the
    same split: the config and, per image, its id, file name, classes and group."""
    groups = _groups(config, infos, "split") if config.grouped else [None] * len(infos)
    return stable_hash(
        [
            asdict(config),
            [[i.image_id, i.file_name, i.classes, g] for i, g in zip(infos, groups, strict=True)],
        ]
    )


def stratify_labels(
    infos: Sequence[ImageInfo], n_splits: int, *, source: str = "split"
) -> np.ndarray:
    """One stratification label per image: its rarest present class, 0 for background only.

    Rarity counts images containing the class (ties: the lower class index). A class on fewer
    than ``n_splits`` images cannot reach every fold; such images take their next rarest class
    that can, else a pooled label (-1); labels left with fewer than ``n_splits`` images join
    the pool, and a short pool (or a short background label) joins the most common label.
    A :class:`~sweeper.data.DataWarning` names the classes that cannot be in every validation
    fold.
    """
    from sweeper.data import DataWarning

    freq = Counter(c for info in infos for c in set(info.classes))
    rare = sorted(c for c, k in freq.items() if k < n_splits)
    if rare:
        warnings.warn(
            f"{source}: class(es) {', '.join(str(c) for c in rare)} appear on fewer than "
            f"n_splits={n_splits} images and cannot be in every validation fold",
            DataWarning,
            stacklevel=2,
        )
    labels = np.empty(len(infos), dtype=np.int64)
    for row, info in enumerate(infos):
        usable = [c for c in info.classes if freq[c] >= n_splits]
        if usable:
            labels[row] = min(usable, key=lambda c: (freq[c], c))
        else:
            labels[row] = -1 if info.classes else 0
    counts = Counter(labels.tolist())
    for label, k in counts.items():  # a class label left short by rarer co-occurring classes
        if label > 0 and k < n_splits:
            labels[labels == label] = -1
    counts = Counter(labels.tolist())
    for label in (-1, 0):
        if 0 < counts.get(label, 0) < n_splits and len(counts) > 1:
            common = max((k for k in counts if k != label), key=lambda k: (counts[k], -k))
            labels[labels == label] = common
            counts = Counter(labels.tolist())
    return labels


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _group_source(config: SplitConfig) -> str:
    if config.group_field is not None:
        return f"group_field {config.group_field!r}"
    return f"group_regex {config.group_regex!r}"


def _groups(config: SplitConfig, infos: Sequence[ImageInfo], source: str) -> np.ndarray:
    out: list[str] = []
    if config.group_field is not None:
        field = config.group_field
        for info in infos:
            if field not in info.record:
                keys = [k for k in info.record if k not in ("id",)]
                raise SweeperError(
                    f"{source}: image id {info.image_id} ({info.file_name}) has no field "
                    f"{field!r}{did_you_mean(field, keys)}; its fields: {', '.join(map(str, keys))}"
                )
            out.append(str(info.record[field]))
    else:
        pattern = re.compile(config.group_regex or "")
        for info in infos:
            match = pattern.search(info.file_name)
            if match is None:
                raise SweeperError(
                    f"{source}: group_regex {config.group_regex!r} does not match the file_name "
                    f"{info.file_name!r} of image id {info.image_id}"
                )
            out.append(match.group(1) if pattern.groups else match.group(0))
    return np.asarray(out)
