"""The ``SWEEPER_FAULT`` testing hook: runs that fail on purpose, so that the fault handling of
``tune`` (recording a failed trial's kind, going on with the next one) is exercised on real runs.

``SWEEPER_FAULT=nan|oom|build|worker`` makes every run fail that way; ``nan@fpn/*`` limits it
to the pairs that match the fnmatch pattern. The loop and the builders call the ``maybe_*``
functions at the four injection points; nothing else in the package reads the variable.
"""

from __future__ import annotations

import fnmatch
import os
from typing import TYPE_CHECKING

from sweeper.errors import BuildError

if TYPE_CHECKING:
    from sweeper.training.config import TrainConfig

FAULT_ENV = "SWEEPER_FAULT"


def fault_for(config: TrainConfig) -> str | None:
    """The fault kind asked for ``config``'s pair (``nan``, ``oom``, ``build``, ``worker``), or None."""
    value = os.environ.get(FAULT_ENV)
    if not value:
        return None
    kind, _, pattern = value.partition("@")
    if pattern and not fnmatch.fnmatchcase(f"{config.arch}/{config.encoder}", pattern):
        return None
    return kind


def maybe_fail_build(config: TrainConfig) -> None:
    """Raise :class:`~sweeper.errors.BuildError` where ``build`` is asked for, as smp would."""
    if fault_for(config) == "build":
        raise BuildError(f"{config.arch}/{config.encoder}: simulated build failure ({FAULT_ENV}=build)")


def maybe_crash_workers(config: TrainConfig, dataset, workers: int):
    """``(dataset, workers)`` for the training DataLoader: under ``worker``, a dataset that kills
    its worker process on the first item, and at least one worker to kill."""
    if fault_for(config) == "worker":
        return _CrashingDataset(dataset), max(1, workers)
    return dataset, workers


def maybe_run_out_of_memory(kind: str | None) -> None:
    """Raise the error torch raises when CUDA memory runs out, under ``oom`` (every step)."""
    if kind == "oom":
        import torch

        raise torch.OutOfMemoryError(f"CUDA out of memory (simulated by {FAULT_ENV}=oom)")


def maybe_poison_loss(kind: str | None, loss):
    """The step's loss, made NaN under ``nan``."""
    return loss * float("nan") if kind == "nan" else loss


class _CrashingDataset:
    """Wraps a dataset so that a DataLoader worker process dies on its first item."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        import torch

        if torch.utils.data.get_worker_info() is not None:
            os._exit(3)
        return self.inner[i]

    def set_epoch(self, epoch):
        self.inner.set_epoch(epoch)
