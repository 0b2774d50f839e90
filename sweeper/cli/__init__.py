"""The ``sweeper`` command line: it parses, calls plain functions that tests call too, and renders.

Heavy libraries (torch, smp, optuna) are imported inside the command bodies so that
``sweeper --help`` stays instant. Commands live in :mod:`.catalogue` (zoo, check, demo-data) and
:mod:`.study` (tune, report, noise, ensemble, dashboard); :mod:`.views` renders.
"""

from __future__ import annotations

from sweeper.cli import catalogue, experiments, fidelity, plan, study  # noqa: F401 - registers the commands
from sweeper.cli._app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
