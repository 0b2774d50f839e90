"""Fixtures of the sweep tests: a copy of a study written by an earlier sweeper."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

LEGACY = Path(__file__).resolve().parent.parent / "fixtures" / "legacy_0_1"


@pytest.fixture
def legacy_study(tmp_path) -> Path:
    """A writable copy of ``tests/fixtures/legacy_0_1`` (a SQLite study of sweeper 0.1.0 with its
    weight files beside it): tests may resume or report on it without touching the original."""
    folder = tmp_path / "legacy"
    shutil.copytree(LEGACY, folder)
    return folder
