"""Shared test set-up: offline hub, no update checks, and a private cache folder per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).parent))


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


@pytest.fixture(scope="session")
def postgres_url():
    """A private PostgreSQL server on 127.0.0.1 for the session (skipped where none is installed)."""
    from pg import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are not installed (Debian: apt-get install postgresql)")
    server = PostgresServer(bindir)
    try:
        url = server.start()
    except Exception as exc:  # noqa: BLE001 - surface the server's own words
        server.stop()
        pytest.fail(f"could not start PostgreSQL: {exc}")
    yield url
    server.stop()
    assert server.pid() is None or not _alive(server.pid())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
