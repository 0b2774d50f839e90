"""A run's identity is its content: what it learns from and how, plus its seed and fold.

Two runs with the same identity are the same experiment, whichever study asked for them, so
the second one is reused rather than trained (:mod:`sweeper.sweep.reuse`). The identity is:

- the fully resolved :class:`~sweeper.training.TrainConfig` (recipe, arch, encoder, fold), less
  the fields that only say where and how fast a run goes (:data:`NOT_CONTENT`);
- a weights file by the SHA-256 of its bytes, not its path (a copy elsewhere is the same start,
  an overwritten file is another);
- the data by a fingerprint: the SHA-256 of each annotation file's bytes, the image folder, and
  the split (a changed annotation is another data set, whatever its file is called);
- the seed.

``config_key`` is the first three hashed (the experiment without its seed and fold, what the
experiment record groups by); ``run_key`` adds the seed and the fold.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, replace
from pathlib import Path

from sweeper.cache import stable_hash

#: TrainConfig fields that change where a run goes and how fast, not what it learns.
NOT_CONTENT = ("device", "num_workers")

_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex), cached per (path, size, mtime) for this process."""
    resolved = Path(path).expanduser().resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        digest = hashlib.sha256()
        with resolved.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _FILE_HASHES[key] = digest.hexdigest()
    return _FILE_HASHES[key]


def data_fingerprint(config) -> str:
    """The data a run learns from and is scored on: annotation bytes, image folders, split."""
    from sweeper.training.loaders import data_files

    data = config.data
    train_json, image_root = data_files(data)
    parts = {
        "train": file_hash(train_json),
        "image_root": str(Path(image_root or Path(train_json).parent).expanduser().resolve()),
        "val": file_hash(data.val_json) if data.val_json else None,
        "val_root": str(Path(data.val_root).expanduser().resolve()) if data.val_root else None,
        "subsample": data.subsample,
        "split": asdict(config.split),
    }
    return stable_hash(parts)


def _weights(value: str | None) -> str | None:
    """A weights file by its bytes; a hub name (``imagenet``) or None as it is."""
    from sweeper.training.weights import WEIGHT_SUFFIXES

    if isinstance(value, str) and value.endswith(WEIGHT_SUFFIXES) and Path(value).expanduser().is_file():
        return "sha256:" + file_hash(value)
    return value


def config_key(config, fingerprint: str) -> str:
    """The experiment without its seed and fold: content fields, weights by hash, the data's
    fingerprint in place of its paths."""
    content = replace(config, encoder_weights=_weights(config.encoder_weights), fold=0).to_dict()
    for name in (*NOT_CONTENT, "data", "split"):
        content.pop(name, None)
    content["data_fingerprint"] = fingerprint
    return stable_hash(content)


def run_key(config, seed: int, fingerprint: str) -> str:
    """The run's identity: :func:`config_key`, the seed and the fold."""
    return f"{config_key(config, fingerprint)}|seed={seed}|fold={config.fold}"
