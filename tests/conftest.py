"""Shared test set-up: offline hub, no update checks, and a private cache folder per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Point SWEEPER_CACHE_DIR at a fresh folder so no test reads a user's cache."""
    old = os.environ.get("SWEEPER_CACHE_DIR")
    os.environ["SWEEPER_CACHE_DIR"] = str(tmp_path_factory.mktemp("sweeper-cache"))
    yield
    if old is None:
        os.environ.pop("SWEEPER_CACHE_DIR", None)
    else:
        os.environ["SWEEPER_CACHE_DIR"] = old


def pytest_collection_modifyitems(config, items):
    """Skip tests marked slow unless SWEEPER_SLOW=1 or ``-m slow`` asks for them."""
    if os.environ.get("SWEEPER_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: set SWEEPER_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
