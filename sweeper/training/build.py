"""The model, loss, optimizer and learning-rate schedule of a run, built from its config.

Losses, optimizers and schedulers are registries, ``{name: factory}`` like smp's
``MODEL_ARCHITECTURES_MAPPING``: :func:`~.config.validate_config` accepts exactly their keys,
so a new loss is one entry here. Factories import torch and smp when called, never at import.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from sweeper.errors import BuildError, OutOfMemory, SweeperError, one_line
from sweeper.training import faults
from sweeper.training.config import TrainConfig, check_choice
from sweeper.training.weights import check_hub_weights, load_encoder_weights, looks_like_path


def _smp_losses():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from segmentation_models_pytorch import losses
    return losses


def _cross_entropy(config: TrainConfig):
    import torch

    if config.deterministic:
        # The 2-D NLL kernel on CUDA has no deterministic mode; the unreduced one does.
        ce = torch.nn.CrossEntropyLoss(reduction="none")
        return lambda logits, target: ce(logits, target).mean()
    return torch.nn.CrossEntropyLoss()


def _smp_loss(name: str) -> Callable[[TrainConfig], object]:
    def make(config: TrainConfig):
        return getattr(_smp_losses(), name)(mode="multiclass")

    return make


def _ce_plus_dice(config: TrainConfig):
    ce = _cross_entropy(config)
    dice = _smp_losses().DiceLoss(mode="multiclass")
    return lambda logits, target: ce(logits, target) + dice(logits, target)


#: ``loss`` name -> ``factory(config)``: a callable ``(logits, target) -> scalar loss`` on
#: float logits (N, C, H, W) and class indices (N, H, W).
LOSSES: dict[str, Callable] = {
    "ce": _cross_entropy,
    "dice": _smp_loss("DiceLoss"),
    "focal": _smp_loss("FocalLoss"),
    "lovasz": _smp_loss("LovaszLoss"),
    "jaccard": _smp_loss("JaccardLoss"),
    "ce+dice": _ce_plus_dice,
}


def _adam(config: TrainConfig, params):
    import torch

    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _adamw(config: TrainConfig, params):
    import torch

    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _sgd(config: TrainConfig, params):
    import torch

    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                           nesterov=config.momentum > 0)


#: ``optimizer`` name -> ``factory(config, params)``; SGD uses Nesterov momentum when
#: ``momentum`` > 0.
OPTIMIZERS: dict[str, Callable] = {"adam": _adam, "adamw": _adamw, "sgd": _sgd}


def _constant(config: TrainConfig, optimizer, total: int):
    return None


def _cosine(config: TrainConfig, optimizer, total: int):
    import torch

    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)


def _step(config: TrainConfig, optimizer, total: int):
    import torch

    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, total // 3), gamma=0.1)


def _poly(config: TrainConfig, optimizer, total: int):
    import torch

    return torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=total, power=0.9)


#: ``scheduler`` name -> ``factory(config, optimizer, total_steps)``, stepped once per training
#: step: ``cosine`` anneals to 0 over the run, ``step`` divides the lr by 10 after each third,
#: ``poly`` decays it with power 0.9; ``none`` (no scheduler) keeps it constant.
SCHEDULERS: dict[str, Callable] = {"none": _constant, "cosine": _cosine, "step": _step, "poly": _poly}


def build_model(config: TrainConfig, num_classes: int):
    """The smp model of ``config``, with local or hub encoder weights if asked for.

    A pair that smp refuses raises :class:`~sweeper.errors.BuildError`; weights that cannot be
    had (hub offline, a file that does not fit) raise :class:`SweeperError`, as they are the
    user's to fix.
    """
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import segmentation_models_pytorch as smp

    weights = config.encoder_weights
    hub_name = None
    if weights and not looks_like_path(weights):
        hub_name = check_hub_weights(smp, config.encoder, weights)
    faults.maybe_fail_build(config)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = smp.create_model(
                config.arch, encoder_name=config.encoder, encoder_weights=hub_name,
                classes=num_classes, in_channels=3,
            )
    except OSError as exc:  # the hub could not be reached
        raise SweeperError(
            f"encoder_weights {weights!r} for {config.encoder} could not be downloaded ({type(exc).__name__}); "
            "download the file once where the hub is reachable and set encoder_weights to its path"
        ) from None
    except (torch.OutOfMemoryError, MemoryError) as exc:
        raise OutOfMemory(f"{config.arch}/{config.encoder}: out of memory while building: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - smp raises many types for incompatible pairs
        raise BuildError(f"{config.arch}/{config.encoder} cannot be built: {one_line(exc)}") from None
    if weights and hub_name is None:
        load_encoder_weights(model, weights)
    return model


def build_loss(config: TrainConfig):
    """The loss of ``config.loss`` (see :data:`LOSSES`)."""
    check_choice("loss", config.loss, LOSSES)
    return LOSSES[config.loss](config)


def build_optimizer(config: TrainConfig, params):
    """The optimizer of ``config.optimizer`` over ``params`` (see :data:`OPTIMIZERS`)."""
    check_choice("optimizer", config.optimizer, OPTIMIZERS)
    return OPTIMIZERS[config.optimizer](config, params)


def build_scheduler(config: TrainConfig, optimizer, steps_per_epoch: int):
    """A per-step schedule over the whole run (None for a constant learning rate)."""
    check_choice("scheduler", config.scheduler, SCHEDULERS)
    total = max(1, config.epochs * steps_per_epoch)
    return SCHEDULERS[config.scheduler](config, optimizer, total)
