"""Where a study keeps the states of its rung runs, for the next rung to go on from.

A rung's run saves its state at its end (:mod:`sweeper.training.state`: weights, optimizer
moments, random streams; about 12 bytes a parameter with Adam); the same candidate's run at the
next rung, or at the full budget, loads it and trains only the epochs it adds. Under a constant
learning rate that gives the run a fresh start would give, bit for bit. The files live in the
study's artifact folder (beside a SQLite or journal file, or ``--artifacts``: a folder every
worker reaches), one per unit, named by a hash of the unit's key.

A state is needed only until the run that goes on from it has finished, or until its candidate
is not promoted: the plan says which are still live (``live_states``), and every worker deletes
the rest before it asks for its next unit. So the folder holds at most one state per candidate
still in the screen, and nothing once screening is over. A state that is missing (deleted, a
disk that failed, a worker on a machine that does not see the folder) costs only time: the run
then trains from scratch, to the same result.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

#: The folder under a study's artifact folder that holds rung states, one subfolder per study.
FOLDER = "rung-states"
SUFFIX = ".state"


def _name(text: str, size: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:size]


class StateFolder:
    """The rung states of one study: a file per unit key."""

    def __init__(self, artifacts: str | os.PathLike, study_name: str):
        self.folder = Path(artifacts) / FOLDER / _name(study_name, 16)

    def path(self, unit_key: str) -> Path:
        return self.folder / f"{_name(unit_key, 24)}{SUFFIX}"

    def prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def prune(self, live: Iterable[str]) -> int:
        """Delete every state whose unit is not in ``live``; how many were deleted. With nothing
        live the study's folder goes too, and the folders above it if that leaves them empty, so
        that a finished screen leaves nothing behind."""
        if not self.folder.is_dir():
            return 0
        keep = {self.path(key).name for key in live}
        gone = 0
        for path in self.folder.glob(f"*{SUFFIX}"):
            if path.name not in keep:
                try:
                    path.unlink()
                    gone += 1
                except FileNotFoundError:  # another worker deleted it first
                    pass
        if not keep:
            for folder in (self.folder, self.folder.parent, self.folder.parent.parent):
                try:
                    folder.rmdir()  # only an empty folder: weights, other studies' states stay
                except OSError:
                    break
        return gone

    def held(self) -> int:
        """How many states the folder holds now."""
        return sum(1 for _ in self.folder.glob(f"*{SUFFIX}")) if self.folder.is_dir() else 0
