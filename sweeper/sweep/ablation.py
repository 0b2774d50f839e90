"""Ablations: one change at a time against a baseline fixed in advance.

A space with ``ablation:`` names a baseline and a list of changes::

    ablation:
      baseline: {pair: pspnet/mobilenet_v2}   # with the space's recipe; or {study: demo}: the ★ of
                                              # study demo, or {study: demo, trial: 12}: that run's config
      changes:
        - loss: dice                          # one key of the resolved TrainConfig (or arch, encoder)
        - lr: 1.0e-3
        - {name: small, set: {image_size: 32, batch_size: 16}}   # a bundle: several keys, declared

Each arm (the baseline, then one per change) is a :class:`~sweeper.sweep.records.CandidateKey`
whose ``hparams`` hold exactly the keys the change sets, so a unit's config is the baseline's
with those keys replaced. A change that alters more than one key of the resolved config must be
declared as a bundle; a change equal to the baseline is refused: neither is one change.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from sweeper.errors import SweeperError, did_you_mean

ABLATION_KEYS = ("baseline", "changes", "first_seeds")
BASELINE_KEYS = ("pair", "study", "trial")
BUNDLE_KEYS = ("name", "set")
#: Keys a change may not set: they are the study's data and split, fixed for every arm (a change
#: of data is another study), or the fold, which the ablation's folds decide.
FIXED_KEYS = ("data", "split", "fold")
#: Float fields of the config: a YAML integer there is the same value as a float.
FLOAT_KEYS = ("lr", "weight_decay", "momentum", "augment_strength")


@dataclass(frozen=True)
class Change:
    """One arm's change: its name and the keys it sets (more than one only for a bundle)."""

    name: str
    values: tuple[tuple[str, Any], ...]
    bundle: bool = False
    #: Where it was given, for errors: None for the space file's list, ``--change KEY`` for the command line.
    origin: str | None = None


@dataclass(frozen=True)
class Arm:
    """One arm as the sweep runs it: its name, its key in the study, and the config values it sets
    over the baseline's (none for the baseline)."""

    name: str
    key: Any  # CandidateKey
    values: dict


@dataclass(frozen=True)
class Ablation:
    """The parsed ``ablation:`` section: the baseline as given, the changes, and how many seeds
    every arm runs before extra seeds go to the undecided ones."""

    baseline: dict
    changes: tuple[Change, ...]
    first_seeds: int = 3


def config_keys() -> tuple[str, ...]:
    from sweeper.training import TrainConfig

    return tuple(f.name for f in fields(TrainConfig) if f.name not in FIXED_KEYS)


def parse_ablation(raw: Any, source: str) -> Ablation:
    """Check the section's shape; values are checked against the baseline by :func:`resolve_arms`."""
    from sweeper.sweep.fields import check_keys, positive_int

    where = f"{source}: ablation"
    if not isinstance(raw, dict):
        raise SweeperError(f"{where} must be a mapping with baseline and changes")
    check_keys(raw, ABLATION_KEYS, source, "ablation.")
    baseline = raw.get("baseline")
    if isinstance(baseline, str):
        baseline = {"pair": baseline}
    if not isinstance(baseline, dict) or not baseline:
        raise SweeperError(f"{where}.baseline must be {{pair: arch/encoder}}, {{study: NAME}} or "
                           "{study: NAME, trial: N}")
    check_keys(baseline, BASELINE_KEYS, source, "ablation.baseline.")
    if "pair" in baseline and ("study" in baseline or "trial" in baseline):
        raise SweeperError(f"{where}.baseline: give either pair or study (with an optional trial), not both")
    if "trial" in baseline and "study" not in baseline:
        raise SweeperError(f"{where}.baseline.trial needs the study it belongs to (baseline.study)")
    if "trial" in baseline and (isinstance(baseline["trial"], bool) or not isinstance(baseline["trial"], int)):
        raise SweeperError(f"{where}.baseline.trial: expected a trial number, got {baseline['trial']!r}")
    changes = raw.get("changes") or []
    if not isinstance(changes, (list, tuple)):
        raise SweeperError(f"{where}.changes must be a list of changes (e.g. - loss: dice)")
    parsed = tuple(parse_change(c, f"{where}.changes[{i}]") for i, c in enumerate(changes))
    first = positive_int(raw.get("first_seeds", 3), f"{where}.first_seeds")
    return Ablation(dict(baseline), parsed, first)


def parse_change(raw: Any, where: str) -> Change:
    """``{key: value}`` (one key), or a bundle ``{name: ..., set: {key: value, ...}}``."""
    if isinstance(raw, dict) and "set" in raw:
        unknown = [k for k in raw if k not in BUNDLE_KEYS]
        if unknown:
            raise SweeperError(f"{where}.{unknown[0]}: a bundle has only name and set")
        values = raw["set"]
        if not isinstance(values, dict) or not values:
            raise SweeperError(f"{where}.set must be a mapping of the keys the bundle changes")
        name = raw.get("name") or " ".join(f"{k}={v}" for k, v in values.items())
        return Change(str(name), tuple(values.items()), bundle=True)
    if not isinstance(raw, dict) or len(raw) != 1:
        raise SweeperError(f"{where}: a change is one key: value (e.g. loss: dice); several keys together need "
                           "a bundle: {name: ..., set: {...}}")
    (key, value), = raw.items()
    return Change(f"{key}={value}", ((str(key), value),))


def parse_cli_change(text: str) -> Change:
    """``--change key=value``: the value read as YAML (``1e-3`` a number, ``none`` a string)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SweeperError(f"--change: {text!r} is not key=value (e.g. --change loss=dice)")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    if isinstance(parsed, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    return replace(parse_change({key.strip(): parsed}, f"--change {key.strip()}"), origin=f"--change {key.strip()}")


def resolve_arms(base, changes: tuple[Change, ...], where: str) -> list[Arm]:
    """The arms, baseline first, each change checked against the resolved baseline config
    ``base``: known keys, valid values, exactly one key changed (or a declared bundle), and not
    equal to the baseline.

    An arm's key holds the keys it changes as ``hparams``, a value that is not a plain scalar
    (an augmentation recipe) by a short hash of it, so that the key is hashable and the same
    in every process; the arm's ``values`` hold the real ones."""
    from sweeper.cache import stable_hash
    from sweeper.sweep.records import CandidateKey

    arms = [Arm("baseline", CandidateKey.of(base.arch, base.encoder), {})]
    seen: dict = {}
    allowed = config_keys()
    for i, change in enumerate(changes):
        at = change.origin or f"{where}[{i}]"
        changed = _apply(base, change, allowed, at)
        moved = _changed_keys(base, changed)
        if not moved:
            raise SweeperError(f"{at}: {change.name} is the baseline's own value; a change must change something")
        if len(moved) > 1 and not change.bundle:
            raise SweeperError(f"{at}: {change.name} changes {len(moved)} keys of the config ({', '.join(moved)}); "
                               "declare it as a bundle {name: ..., set: {...}} to compare them together")
        values = {k: getattr(changed, k) for k in moved}
        shown = {k: v if isinstance(v, (str, int, float, bool)) or v is None else f"#{stable_hash(v, 8)}"
                 for k, v in values.items() if k not in ("arch", "encoder")}
        key = CandidateKey.of(changed.arch, changed.encoder, shown)
        if key in seen:
            raise SweeperError(f"{at}: {change.name} is the same arm as changes[{seen[key]}]")
        seen[key] = i
        arms.append(Arm(change.name, key, values))
    return arms


def _apply(base, change: Change, allowed: tuple[str, ...], where: str):
    """``base`` with the change's keys set, validated like a space's recipe."""
    from sweeper.sweep.fields import check_recipe_fields, to_number
    from sweeper.training import check_pair_names, validate_config

    values = {}
    for key, value in change.values:
        if key not in allowed:
            if key in FIXED_KEYS:
                raise SweeperError(f"{where}: {key} is fixed for every arm of an ablation (another {key} is "
                                   "another study)")
            raise SweeperError(f"{where}: unknown key {key!r}{did_you_mean(key, allowed)}; a change sets a field of "
                               f"the training config: {', '.join(allowed)}")
        if key == "augment" and isinstance(value, str):
            value = _augment(value, where)
        if key in FLOAT_KEYS:
            value = to_number(value)
            if isinstance(value, int) and not isinstance(value, bool):
                value = float(value)  # 0 and 0.0 are one config (and one run key)
        values[key] = value
    changed = replace(base, **values)
    try:
        validate_config(changed, pair=False)
        check_recipe_fields(changed)
        if "arch" in values or "encoder" in values:
            check_pair_names(changed.arch, changed.encoder)
    except SweeperError as exc:
        raise SweeperError(f"{where}: {str(exc).removeprefix('--')}") from None
    except TypeError as exc:  # a comparison of a value of the wrong type
        raise SweeperError(f"{where}: {change.name}: a value of the wrong type ({exc})") from None
    return changed


def _augment(value: str, where: str):
    """``augment: none`` turns the random steps off (strength 0 keeps resize and normalise);
    any other string is a recipe file."""
    if value.lower() in ("none", "off"):
        raise SweeperError(f"{where}: augment: {value} — to turn augmentation off use augment_strength: 0 "
                           "(only the resize and normalisation stay)")
    from sweeper.augment import load_recipe

    return load_recipe(value)


def _changed_keys(base, changed) -> list[str]:
    before, after = base.to_dict(), changed.to_dict()
    return [k for k in before if before[k] != after[k]]


def baseline_config(ablation: Ablation, space, storage: str | None):
    """The resolved TrainConfig of the baseline arm: the space's recipe with ``pair``, or the
    config a study recorded for its ★ (``study``) or for one of its trials (``trial``)."""
    from sweeper.training import TrainConfig, check_pair_names

    where = f"{space.source}: ablation.baseline"
    given = ablation.baseline
    if "pair" in given:
        pair = str(given["pair"])
        if "/" not in pair:
            raise SweeperError(f"{where}.pair: {pair!r} is not arch/encoder")
        arch, encoder = pair.split("/", 1)
        try:
            check_pair_names(arch, encoder)
        except SweeperError as exc:
            raise SweeperError(f"{where}.pair: {exc}") from None
        return replace(space.base, arch=arch, encoder=encoder, fold=0)
    record = _baseline_trial(str(given["study"]), given.get("trial"), storage, where)
    config = TrainConfig.from_dict(record.config)
    return replace(config, fold=0, device=space.base.device)


def _baseline_trial(study_name: str, number: int | None, storage: str | None, where: str):
    """The trial whose config is the baseline: the given one, or the ★'s first run."""
    import optuna

    from sweeper.sweep.ranking import rank_records
    from sweeper.sweep.records import read_records
    from sweeper.sweep.storage import open_storage, shown_url, study_names

    try:
        store = open_storage(storage, must_exist=True)
    except SweeperError as exc:
        raise SweeperError(f"{where}.study: no study {study_name!r}: {exc}") from None
    names = study_names(store, storage)
    if study_name not in names:
        raise SweeperError(f"{where}.study: no study {study_name!r} in {shown_url(storage)}"
                           f"{did_you_mean(study_name, names)}; studies there: {', '.join(names) or 'none'}")
    records = read_records(optuna.load_study(study_name=study_name, storage=store))
    if number is not None:
        found = next((r for r in records if r.number == number), None)
        if found is None or not found.is_run or not found.config:
            state = "no such trial" if found is None else f"it is {found.state.name.lower()}, not a finished run"
            raise SweeperError(f"{where}.trial: study {study_name!r} has no finished run {number} ({state})")
        return found
    ranking = rank_records(records)
    if ranking is None:
        raise SweeperError(f"{where}.study: study {study_name!r} has no finished run to take the ★ from")
    return next(r for r in records if r.is_run and str(r.unit.candidate) == ranking.best_key and r.config)
