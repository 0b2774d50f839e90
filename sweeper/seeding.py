"""Seeding every source of randomness, so that a run is a function of its config and seed.

``seed_everything`` is called right before the model is built and again before the loaders
are, so nothing that ran earlier in the same process (another trial, a check) shifts the
random streams of this run. DataLoader workers get their own seeds from the loader's
generator through :func:`worker_init_fn`; augmentations are reseeded per sample by the dataset
(see :mod:`sweeper.data`), so they do not depend on the number of workers.
"""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and every CUDA device) with ``seed``.

    ``PYTHONHASHSEED`` is set for child processes (spawned workers); it cannot change the hash
    seed of the running interpreter.
    """
    import torch

    seed = int(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds all CUDA devices


def worker_init_fn(worker_id: int) -> None:
    """Seed Python and numpy in a DataLoader worker from the seed torch gave that worker.

    torch derives each worker's seed from the loader's generator, so worker streams differ
    from each other and repeat from run to run with the same generator seed.
    """
    import torch

    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_generator(seed: int):
    """A CPU ``torch.Generator`` for a DataLoader's shuffling and worker seeds."""
    import torch

    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator


def set_deterministic(enabled: bool) -> None:
    """Ask torch for deterministic kernels (and error on ops that have none) or undo it.

    cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` for deterministic matmuls on CUDA; cuDNN's
    autotuner is switched off because it may pick different kernels from run to run.
    """
    import torch

    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False
