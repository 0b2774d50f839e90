"""Encoder weights: a local file (loaded here, never executing code) or an smp name from the
Hugging Face hub, which is refused up front when downloads are off.

Weights that cannot be had are the user's to fix, so every refusal is a
:class:`~sweeper.errors.SweeperError` raised before any training starts.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from sweeper.errors import SweeperError, did_you_mean, one_line

#: File endings that make a weights value a path even when the file does not exist (yet).
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


def check_encoder_weights(encoder: str, weights: str | None) -> None:
    """Refuse weights that cannot be had (a missing file, an unknown name, the hub off) up front."""
    if not weights:
        return
    if looks_like_path(weights):
        read_weights_file(weights)  # a corrupt or unreadable file fails now, not in the first trial
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import segmentation_models_pytorch as smp
    check_hub_weights(smp, encoder, weights)


def looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith(WEIGHT_SUFFIXES) or Path(value).exists()


def check_hub_weights(smp, encoder: str, name: str) -> str:
    """Fail fast (no network round trip) where hub weights cannot be had."""
    if encoder.startswith("tu-"):
        available = ["imagenet (the timm default tag)"]
    else:
        available = list(smp.encoders.encoders[encoder]["pretrained_settings"])
        if name not in available:
            raise SweeperError(
                f"encoder_weights: {encoder} has no weights named {name!r}{did_you_mean(name, available)}; "
                f"smp knows {', '.join(available) or 'none'}, or give a local file path"
            )
    # Downloads happen only on request: without HF_HUB_OFFLINE=0 sweeper never asks the hub, so
    # a machine without network fails here at once instead of after ~30 s of retries.
    if os.environ.get("HF_HUB_OFFLINE", "").lower() not in ("0", "false", "no", "off"):
        raise SweeperError(
            f"encoder_weights {name!r} for {encoder} come from the Hugging Face hub, and hub downloads are off "
            "(set HF_HUB_OFFLINE=0 to allow them); or download the file once and set encoder_weights to its path"
        )
    return name


def read_weights_file(path: str) -> dict:
    """The state dict in a local weights file (``.safetensors`` or ``torch.load`` with
    ``weights_only=True``: a checkpoint never executes code); a missing, unreadable or corrupt
    file is a one-line error naming ``encoder_weights``."""
    import torch

    file = Path(path).expanduser()
    if not file.is_file():
        raise SweeperError(f"encoder_weights: file {path} does not exist")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file), device="cpu")
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt or unsafe files raise many types
        raise SweeperError(f"encoder_weights: cannot read {file}: {one_line(exc, 200)}") from None
    if not isinstance(state, dict):
        raise SweeperError(f"encoder_weights: {file} holds no state dict")
    return state


def load_encoder_weights(model, path: str) -> None:
    """Load a local weights file into the encoder (or the whole model, if its keys say so).

    Accepts a plain state dict, one nested under ``state_dict``/``model``, safetensors, and
    keys prefixed ``encoder.`` (a whole smp model).
    """
    file = Path(path).expanduser()
    state = read_weights_file(path)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise SweeperError(f"encoder_weights: {file} holds no state dict")
    target = model.encoder
    if any(k.startswith("encoder.") for k in state):
        if any(k.startswith(("decoder.", "segmentation_head.")) for k in state):
            target = model
        else:
            state = {k.removeprefix("encoder."): v for k, v in state.items()}
    try:
        target.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise SweeperError(
            f"encoder_weights: {file} does not fit {model.encoder.__class__.__name__}: {' '.join(first[:2])[:300]}"
        ) from None
