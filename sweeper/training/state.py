"""A run's state between epochs, so that a longer run can go on from a shorter one.

Under a constant learning rate (``scheduler: none``) a run of 3 epochs is the first 3 epochs of
a run of 8 with the same config and seed, bit for bit: nothing in an epoch depends on how many
epochs follow. A rung of a screen (:mod:`sweeper.sweep.rungs`) then need not repeat the epochs
of the rung before it: the shorter run saves its state at its end, and the promoted run loads it
and trains only the epochs it adds. What has to be saved for that to be exact is everything the
next epoch reads: the weights, the optimizer's moments (Adam: two more copies of the weights,
so about 12 bytes a parameter in all), the AMP scaler, every random stream (Python, numpy,
torch on the CPU and each CUDA device, and the train loader's own generator, which draws each
epoch's shuffle and worker seeds), and the epochs so far, whose scores the longer run reports as
its own. The best epoch's weights come along when the best epoch is not the last, for a run that
saves its best weights.

Any other schedule makes epoch 1 of a 3-epoch run differ from epoch 1 of an 8-epoch run (the
learning rate depends on the total), so :func:`can_resume` refuses it and the run trains from
scratch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Config fields that may differ between a saved run and the run that goes on from it.
FREE_FIELDS = ("epochs", "device", "num_workers")


@dataclass
class TrainState:
    """A run stopped after ``epochs`` epochs: its config (as a dict), seed, epoch history (dicts of
    :class:`~sweeper.training.loop.EpochMetrics`), and the tensors and random streams the next
    epoch needs."""

    config: dict
    seed: int
    epochs: int
    history: list[dict]
    model: dict
    optimizer: dict
    scaler: dict
    rng: dict
    best_model: dict | None = None
    trained_images: int = 0
    train_seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def comparable(config: dict) -> dict:
    """A config dict without the fields a continued run may change."""
    return {k: v for k, v in config.items() if k not in FREE_FIELDS}


def can_resume(state: TrainState, config: dict, seed: int) -> str | None:
    """Why ``state`` cannot be continued into a run of ``config`` and ``seed`` (None: it can)."""
    if config.get("scheduler") != "none":
        return f"the learning-rate schedule {config.get('scheduler')!r} depends on the number of epochs"
    if int(state.seed) != int(seed):
        return f"it was saved with seed {state.seed}, not {seed}"
    if comparable(state.config) != comparable(config):
        changed = sorted(k for k in set(state.config) | set(config)
                         if k not in FREE_FIELDS and state.config.get(k) != config.get(k))
        return f"its config differs in {', '.join(changed)}"
    if state.epochs >= int(config["epochs"]):
        return f"it already has {state.epochs} epochs, the run asks for {config['epochs']}"
    return None


def save_state(state: TrainState, path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` atomically (a temporary file, then a rename): a worker killed
    while writing leaves no half file for another to load."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # another worker may have tidied it away
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(state.to_dict(), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_state(path: str | os.PathLike) -> TrainState | None:
    """The state saved at ``path``, or None when it is missing or unreadable (the run then trains
    from scratch, which gives the same result)."""
    import torch

    try:  # weights_only: a state file never executes code, whoever wrote it
        return TrainState(**torch.load(path, map_location="cpu", weights_only=True))
    except Exception:  # noqa: BLE001 - missing, damaged or foreign: train from scratch instead
        return None


def capture_rng(generator) -> dict[str, Any]:
    """Every random stream the next epoch reads: Python's, numpy's, torch's (CPU and CUDA) and the
    train loader's generator."""
    import random

    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    # Plain lists and tensors only, so that the file loads with ``weights_only=True``.
    return {"python": [version, list(internal), gauss],
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "loader": generator.get_state() if generator is not None else None}


def restore_rng(rng: dict[str, Any], generator) -> None:
    """Put back the streams :func:`capture_rng` took."""
    import random

    import numpy as np
    import torch

    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    if generator is not None and rng.get("loader") is not None:
        generator.set_state(rng["loader"])
