"""Where sweeper keeps what is expensive to recompute (zoo counts, rasterised masks, demo data).

``SWEEPER_CACHE_DIR`` overrides the platform cache folder, so tests and CI can use a clean one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def cache_dir(*parts: str) -> Path:
    """Return (and create) ``<cache root>/<parts...>``."""
    root = os.environ.get("SWEEPER_CACHE_DIR")
    if root:
        base = Path(root).expanduser()
    else:
        from platformdirs import user_cache_dir

        base = Path(user_cache_dir("sweeper", appauthor=False))
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def stable_hash(value: Any, length: int = 16) -> str:
    """A short hex digest of a JSON-serialisable value, stable across processes and runs."""
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temporary file and rename, so a killed process never leaves half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    os.replace(tmp, path)
