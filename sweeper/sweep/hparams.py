"""Hyper-parameter ranges a space may vary (``hparams:``), validated on load and sampled by TPE."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from sweeper.errors import SweeperError, did_you_mean
from sweeper.sweep.fields import check_keys, check_recipe_fields, choice, expect_bool, to_number

PARAM_KEYS = ("type", "low", "high", "log", "step", "choices")
PARAM_TYPES = ("float", "int", "categorical")
#: TrainConfig fields that a space may vary (the rest define the data and the device).
TUNABLE = ("lr", "weight_decay", "momentum", "batch_size", "epochs", "image_size", "loss", "optimizer",
           "scheduler", "augment_strength", "amp", "channels_last")

@dataclass(frozen=True)
class ParamSpec:
    """One hyper-parameter range, sampled by Optuna's TPE."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def distribution(self):
        import optuna

        if self.type == "float":
            return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log,
                                                        step=int(self.step or 1))
        return optuna.distributions.CategoricalDistribution(list(self.choices))


def parse_param(name: str, spec: Any, source: str) -> ParamSpec:
    where = f"{source}: hparams.{name}"
    if name not in TUNABLE:
        raise SweeperError(f"{where}: not a tunable field{did_you_mean(name, TUNABLE)}; tunable: {', '.join(TUNABLE)}")
    if isinstance(spec, list):
        spec = {"type": "categorical", "choices": spec}
    if not isinstance(spec, dict):
        raise SweeperError(f"{where}: expected a mapping with type/low/high or type/choices")
    check_keys(spec, PARAM_KEYS, source, f"hparams.{name}.")
    kind = choice(spec.get("type", "categorical" if "choices" in spec else "float"), PARAM_TYPES, f"{where}.type")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SweeperError(f"{where}: categorical needs a non-empty choices list")
        for extra in ("low", "high", "log", "step"):
            if extra in spec:
                raise SweeperError(f"{where}: {extra} does not apply to a categorical parameter")
        return ParamSpec(name, kind, choices=tuple(choices))
    if "choices" in spec:
        raise SweeperError(f"{where}: choices apply to categorical parameters only")
    low, high = to_number(spec.get("low")), to_number(spec.get("high"))
    for label, value in (("low", low), ("high", high)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise SweeperError(f"{where}: {label} must be a number, got {value!r}")
    if low >= high:
        raise SweeperError(f"{where}: low ({low}) must be below high ({high})")
    log = expect_bool(spec.get("log", False), f"{where}.log")
    if log and low <= 0:
        raise SweeperError(f"{where}: a log range needs low > 0, got {low}")
    step = spec.get("step")
    if step is not None and (not isinstance(step, (int, float)) or step <= 0 or log):
        raise SweeperError(f"{where}: step must be a positive number and cannot combine with log")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise SweeperError(f"{where}: an int range needs integer bounds")
    return ParamSpec(name, kind, low=low, high=high, log=log, step=step)


def check_param_values(param: ParamSpec, base: Any, source: str) -> None:
    """Every choice, and both ends of a range, must be a value the recipe field accepts."""
    from sweeper.training import validate_config

    values = param.choices if param.type == "categorical" else (param.low, param.high)
    if param.type == "int":
        values = tuple(int(v) for v in values)
    for value in values:
        try:
            config = replace(base, **{param.name: value})
            validate_config(config, pair=False)
            check_recipe_fields(config)
        except SweeperError as exc:
            message = str(exc).removeprefix(f"{param.name}: ")
            raise SweeperError(f"{source}: hparams.{param.name}: {message}") from None
