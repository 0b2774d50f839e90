"""Search spaces: one YAML file declares the data, the fixed recipe, what varies, and the seeds.

A space file is validated completely on load, so a typo fails in the first second rather than
after the first trial: every unknown key is named with its close match, every range is checked.
Command-line flags then override single fields (:func:`apply_overrides`). The shipped files,
package data in ``sweeper/spaces/`` (``demo``, ``zoo-50m``, ``hparams``), document every key; the
schema in short::

    name: demo                     # study name (default: the file's stem)
    data: {train_json, image_root, val_json, val_root}   # all null: the built-in demo data
    split: {scheme, val_fraction, n_splits, group_field, group_regex, seed}
    folds: [0]                     # folds each candidate trains on
    recipe: {epochs, batch_size, image_size, optimizer, lr, ...}   # any TrainConfig field
    architectures: {max_params, archs, encoders, exclude, timm, pairs, order}
    hparams: {lr: {type: float, low: 1e-5, high: 1e-2, log: true}, loss: {type: categorical, choices: [...]}}
    seeds: [0, 1, 2, 3, 4]         # first: screening seed; the rest, in order, for repeats
    racing: true                   # repeats only for candidates still tied with the best
    pruner: {type: median, ...}    # none, median, successive_halving, hyperband, wilcoxon, threshold
    trials: 40                     # cap on screening trials
    screening: {rungs: [{epochs: 1}, {epochs: 3}], keep: 0.33}   # cheaper rungs first (see sweep.rungs)
    ablation: {baseline: {pair: unet/resnet18}, changes: [{loss: dice}]}   # sweeper ablate (see sweep.ablation)
    objective: best                # best-epoch or last-epoch val mIoU
    rope: 0.01                     # differences below this are "practically equal" (mIoU)
    save_weights: false            # keep each run's best-epoch weights (Optuna artifacts) for ensembles
"""

from __future__ import annotations

import atexit
import contextlib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from sweeper.errors import SweeperError, did_you_mean
from sweeper.sweep.fields import (
    check_keys,
    check_recipe_fields,
    choice,
    expect_bool,
    int_list,
    non_negative,
    positive_int,
    to_number,
)
from sweeper.sweep.hparams import ParamSpec, check_param_values, parse_param

#: The shipped spaces: package data (``sweeper/spaces/*.yaml``), so a wheel carries them.
SPACES_DIR = resources.files("sweeper") / "spaces"
DEFAULT_SPACE = "demo"
#: Seeds go to numpy's ``seed()``, which takes 0 <= seed < 2**32.
MAX_SEED = 2**32
#: One integer N in ``seeds`` means seeds 0..N-1; more than this is a mistake, not a study.
MAX_SEED_COUNT = 10_000

TOP_KEYS = ("name", "data", "split", "folds", "recipe", "architectures", "hparams", "seeds", "racing",
            "pruner", "trials", "objective", "rope", "save_weights", "screening", "ablation")
DATA_KEYS = ("train_json", "image_root", "val_json", "val_root")
SPLIT_KEYS = ("scheme", "val_fraction", "n_splits", "group_field", "group_regex", "seed")
ARCH_KEYS = ("max_params", "archs", "encoders", "exclude", "timm", "pairs", "order")
#: How a capped screen picks from the catalogue (see :mod:`sweeper.zoo.order`): ``spread`` (every
#: architecture, encoder families interleaved, sizes spread over the budget), ``params``
#: (smallest first) or ``name``. Explicit ``pairs`` keep their own order.
ORDERS = ("spread", "params", "name")
OBJECTIVES = ("best", "last")
#: TrainConfig fields a recipe may set.
RECIPE_KEYS = ("encoder_weights", "epochs", "batch_size", "image_size", "optimizer", "lr", "weight_decay", "momentum",
               "loss", "scheduler", "amp", "channels_last", "deterministic", "device", "num_workers", "augment",
               "augment_strength")


@dataclass(frozen=True)
class ArchSpace:
    """Which architecture x encoder pairs compete: zoo filters, or an explicit list of pairs."""

    max_params: int | None = None
    archs: tuple[str, ...] = ()
    encoders: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    timm: bool = False
    pairs: tuple[tuple[str, str], ...] = ()
    order: str = "spread"


@dataclass(frozen=True)
class PrunerSpec:
    type: str = "median"
    options: dict = field(default_factory=dict)


@dataclass
class SearchSpace:
    """A validated space. ``base`` holds the fixed recipe; trials vary architecture and hparams."""

    name: str
    source: str
    base: Any  # TrainConfig
    architectures: ArchSpace
    hparams: tuple[ParamSpec, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    folds: tuple[int, ...] = (0,)
    racing: bool = True
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    trials: int = 40
    objective: str = "best"
    rope: float = 0.01
    save_weights: bool = False
    screening: Any = None  # sweeper.sweep.rungs.Rungs: cheaper rungs before the full budget, or None
    ablation: Any = None  # sweeper.sweep.ablation.Ablation: a baseline and its changes (sweeper ablate)

    @property
    def screening_seed(self) -> int:
        return self.seeds[0]


def shipped_spaces() -> list[str]:
    """The names of the shipped spaces, sorted (``["demo", "hparams", "zoo-50m"]``)."""
    return sorted(p.name[:-5] for p in SPACES_DIR.iterdir() if p.name.endswith(".yaml") and p.is_file())


def resolve_space_path(space: str | Path | None) -> Path:
    """A path, or the name of a shipped space (``demo``, ``zoo-50m``, ``hparams``)."""
    if space is None:
        space = DEFAULT_SPACE
    path = Path(space)
    if path.is_file():
        return path
    shipped = SPACES_DIR / f"{space}.yaml"
    if not path.suffix and shipped.is_file():
        return _as_path(shipped)
    names = shipped_spaces()
    raise SweeperError(f"--space: {space} is not a file nor a shipped space{did_you_mean(str(space), names)}; "
                       f"shipped: {', '.join(names)}")


_EXTRACTED = contextlib.ExitStack()
atexit.register(_EXTRACTED.close)


def _as_path(resource) -> Path:
    """A real file for a package resource: itself when the package is a folder (pip's installs,
    editable or not), else a temporary copy (a zipped package) removed at exit."""
    if isinstance(resource, Path):
        return resource
    return _EXTRACTED.enter_context(resources.as_file(resource))


def load_space(space: str | Path | None = None) -> SearchSpace:
    """Read and validate a space file (``yaml.safe_load``: a space never executes code)."""
    import yaml

    path = resolve_space_path(space)
    try:
        raw = yaml.load(path.read_text(), Loader=_unique_key_loader(path))  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise SweeperError(f"{path}:{where}: invalid YAML: {exc.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SweeperError(f"{path}: invalid YAML: {exc}") from None
    if raw is None or raw == {}:
        raise SweeperError(f"{path}: the space file is empty; it needs at least a recipe or architectures "
                           "(see the shipped sweeper/spaces/demo.yaml), or leave --space out for the demo space")
    if not isinstance(raw, dict):
        raise SweeperError(f"{path}: a space file must be a mapping of keys, got {type(raw).__name__}")
    return parse_space(raw, source=str(path), default_name=path.stem)


def _unique_key_loader(path: Path):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML lets the last one
    win silently: ``epochs`` twice would train with whichever came last)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise SweeperError(f"{path}: line {line}: key {key!r} appears twice (first on line "
                                   f"{seen[key]}); YAML would keep the last one silently")
            seen[key] = key_node.start_mark.line + 1
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return UniqueKeyLoader


def parse_space(raw: dict, *, source: str = "space", default_name: str = "sweep") -> SearchSpace:
    from sweeper.splits import SplitConfig
    from sweeper.training import DataConfig, TrainConfig, validate_config
    from sweeper.training.weights import WEIGHT_SUFFIXES

    check_keys(raw, TOP_KEYS, source, "")
    data = _section(raw, "data", DATA_KEYS, source)
    split = _section(raw, "split", SPLIT_KEYS, source)
    recipe = _section(raw, "recipe", RECIPE_KEYS, source)
    arch = _section(raw, "architectures", ARCH_KEYS, source)
    for key in ("lr", "weight_decay", "momentum", "augment_strength"):
        recipe[key] = to_number(recipe[key]) if key in recipe else recipe.get(key, None)
        if recipe[key] is None:
            del recipe[key]
    for key in ("train_json", "image_root", "val_json", "val_root"):
        if data.get(key) is not None:
            data[key] = _relative(data[key], source)
    try:
        split_cfg = SplitConfig(**split)
    except SweeperError as exc:
        raise SweeperError(f"{source}: {exc}") from None
    weights = recipe.get("encoder_weights")
    if isinstance(weights, str) and weights.endswith(WEIGHT_SUFFIXES) and not Path(weights).expanduser().is_absolute():
        recipe["encoder_weights"] = _relative(weights, source)  # a weights file beside the space, like the data
    augment_source = f"{source}: recipe.augment"
    if isinstance(recipe.get("augment"), str):
        from sweeper.augment import load_recipe

        augment_source = _relative(recipe["augment"], source)
        recipe["augment"] = load_recipe(augment_source)
    base = TrainConfig(data=DataConfig(**data), split=split_cfg, **recipe)
    try:
        validate_config(base, pair=False)
        check_recipe_fields(base)
    except SweeperError as exc:
        raise SweeperError(f"{source}: recipe.{str(exc).removeprefix('--')}") from None
    _check_augment(base.augment, base.image_size, augment_source)

    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise SweeperError(f"{source}: name must be a non-empty string")
    space = SearchSpace(name=name, source=source, base=base, architectures=_arch_space(arch, source))
    hparams = raw.get("hparams") or {}
    if not isinstance(hparams, dict):
        raise SweeperError(f"{source}: hparams must be a mapping of field names to ranges or choice lists")
    space.hparams = tuple(parse_param(k, v, source) for k, v in hparams.items())
    for param in space.hparams:
        check_param_values(param, base, source)
    if "seeds" in raw:
        space.seeds = parse_seeds(raw["seeds"], f"{source}: seeds")
    if "folds" in raw:
        space.folds = int_list(raw["folds"], f"{source}: folds", minimum=0)
        if len(set(space.folds)) != len(space.folds):
            raise SweeperError(f"{source}: folds: fold(s) listed twice: {list(space.folds)}")
    if "racing" in raw:
        space.racing = expect_bool(raw["racing"], f"{source}: racing")
    if "save_weights" in raw:
        space.save_weights = expect_bool(raw["save_weights"], f"{source}: save_weights")
    if "trials" in raw:
        space.trials = positive_int(raw["trials"], f"{source}: trials")
    if "objective" in raw:
        space.objective = choice(raw["objective"], OBJECTIVES, f"{source}: objective")
    if "rope" in raw:
        space.rope = non_negative(raw["rope"], f"{source}: rope")
    if "pruner" in raw:
        space.pruner = _pruner(raw["pruner"], source)
    if raw.get("screening") is not None:
        from sweeper.sweep.rungs import parse_screening

        space.screening = parse_screening(raw["screening"], source, base.epochs)
        if space.screening is not None and space.hparams:
            raise SweeperError(f"{source}: screening.rungs: rungs screen an enumerated catalogue; a space with "
                               "hparams is sampled by TPE, whose pruner already stops poor trials early")
    if raw.get("ablation") is not None:
        from sweeper.sweep.ablation import parse_ablation

        space.ablation = parse_ablation(raw["ablation"], source)
    _check_folds(space)
    return space


def parse_seeds(value: Any, where: str) -> tuple[int, ...]:
    """``[0, 1, 2]``, ``"0,1,2"``, or one integer N meaning seeds 0..N-1."""
    if isinstance(value, bool):
        raise SweeperError(f"{where}: expected seeds, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise SweeperError(f"{where}: need at least one seed, got {value}")
        if value > MAX_SEED_COUNT:
            raise SweeperError(f"{where}: {value} means seeds 0..{value - 1}, more than {MAX_SEED_COUNT}; "
                               "to use one large seed, list it: [seed] in a space file")
        return tuple(range(value))
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if len(parts) == 1 and parts[0].isdigit():
            return parse_seeds(int(parts[0]), where)
        try:
            value = [int(p) for p in parts]
        except ValueError:
            raise SweeperError(f"{where}: {value!r} is not a list of integer seeds (e.g. 0,1,2 or 5)") from None
    seeds = int_list(value, where, minimum=0)
    if len(set(seeds)) != len(seeds):
        raise SweeperError(f"{where}: seeds repeat: {list(seeds)}")
    too_large = [s for s in seeds if s >= MAX_SEED]
    if too_large:
        raise SweeperError(f"{where}: seed {too_large[0]} is too large; seeds must be below 2**32 = {MAX_SEED} "
                           "(numpy's limit)")
    return seeds


def apply_overrides(space: SearchSpace, **flags: Any) -> SearchSpace:
    """Command-line flags over the file: trials, epochs, max_params, seeds, device, data paths."""
    from sweeper.zoo import parse_count

    space = replace(space)
    base = space.base
    if flags.get("trials") is not None:
        space.trials = positive_int(flags["trials"], "--trials")
    if flags.get("epochs") is not None:
        base = replace(base, epochs=positive_int(flags["epochs"], "--epochs"))
    if flags.get("device") is not None:
        base = replace(base, device=flags["device"])
    if flags.get("max_params") is not None:
        space.architectures = replace(space.architectures, max_params=parse_count(flags["max_params"]))
        if space.architectures.pairs:
            import warnings

            warnings.warn(f"--max-params has no effect: {space.source} lists explicit architectures.pairs, which are "
                          "run whatever their size", stacklevel=2)
    if flags.get("seeds") is not None:
        space.seeds = parse_seeds(flags["seeds"], "--seeds")
    if flags.get("save_weights") is not None:
        space.save_weights = bool(flags["save_weights"])
    data = {k: flags[k] for k in DATA_KEYS if flags.get(k) is not None}
    if data:
        base = replace(base, data=replace(base.data, **data))
    if flags.get("debug"):
        base = replace(base, data=replace(base.data, subsample=32), epochs=min(base.epochs, 2),
                       image_size=min(base.image_size, 64))
    if space.screening is not None and base.epochs != space.base.epochs:
        from sweeper.sweep.rungs import check_rungs

        rungs = space.screening
        if flags.get("debug") and flags.get("epochs") is None:  # a debug run keeps the rungs that still fit
            rungs = replace(rungs, epochs=tuple(e for e in rungs.epochs if e < base.epochs))
        where = "--epochs: screening" if flags.get("epochs") is not None else f"{space.source}: screening"
        space.screening = check_rungs(rungs, base.epochs, where) if rungs.epochs else None
    space.base = base
    return space


def _section(raw: dict, name: str, allowed: tuple[str, ...], source: str) -> dict:
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        raise SweeperError(f"{source}: {name} must be a mapping of keys")
    check_keys(value, allowed, source, f"{name}.")
    return dict(value)


def _relative(value: Any, source: str) -> str:
    """Paths in a space file are relative to the file (like includes), not to the shell."""
    path = Path(str(value)).expanduser()
    if not path.is_absolute() and Path(source).is_file():
        path = Path(source).resolve().parent / path
    return str(path)


def _arch_space(arch: dict, source: str) -> ArchSpace:
    from sweeper.zoo import parse_count

    def names(key):
        value = arch.get(key) or ()
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise SweeperError(f"{source}: architectures.{key} must be a list of names")
        return tuple(value)

    from sweeper.training import check_pair_names
    from sweeper.zoo import catalogue_names, select_pairs

    pairs = []
    raw_pairs = arch.get("pairs") or ()
    if not isinstance(raw_pairs, (list, tuple)):
        raise SweeperError(f"{source}: architectures.pairs must be a list of 'arch/encoder' entries")
    for i, pair in enumerate(raw_pairs):
        if isinstance(pair, str) and "/" in pair:
            pair = pair.split("/", 1)
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            raise SweeperError(f"{source}: architectures.pairs[{i}] must be 'arch/encoder' or [arch, encoder], "
                               f"got {pair!r}")
        try:
            check_pair_names(pair[0], pair[1])
        except SweeperError as exc:
            raise SweeperError(f"{source}: architectures.pairs[{i}]: {exc}") from None
        if (pair[0], pair[1]) in pairs:
            first = pairs.index((pair[0], pair[1]))
            raise SweeperError(f"{source}: architectures.pairs[{i}]: {pair[0]}/{pair[1]} is listed twice "
                               f"(also pairs[{first}])")
        pairs.append((pair[0], pair[1]))
    max_params = arch.get("max_params")
    if max_params is not None:
        max_params = parse_count(max_params, what=f"{source}: architectures.max_params")
    timm = expect_bool(arch.get("timm", False), f"{source}: architectures.timm")
    order = choice(arch.get("order", "spread"), ORDERS, f"{source}: architectures.order")
    space = ArchSpace(max_params=max_params, archs=names("archs"), encoders=names("encoders"),
                      exclude=names("exclude"), timm=timm, pairs=tuple(pairs), order=order)
    if space.archs or space.encoders:  # the zoo's own check, named as the space's fields
        try:
            select_pairs(*catalogue_names(include_timm=space.timm), arch_filter=space.archs,
                         encoder_patterns=space.encoders)
        except SweeperError as exc:
            text = (str(exc).replace("--arch:", "architectures.archs:", 1)
                    .replace("--encoder:", "architectures.encoders:", 1)
                    .replace("add --timm", "set architectures.timm: true", 1)
                    .replace(" or add --deprecated", "", 1))
            raise SweeperError(f"{source}: {text}") from None
    return space


def _check_augment(recipe: Any, image_size: int, source: str) -> None:
    """Build the augmentation pipelines once now, so that a typo fails on load, not in a trial."""
    if recipe is None:
        return
    if not isinstance(recipe, dict):
        raise SweeperError(f"{source}: expected the path of a recipe file or a mapping with train and val lists")
    from sweeper.augment import build_transforms

    build_transforms(recipe, size=image_size, source=source)


def _pruner(value: Any, source: str) -> PrunerSpec:
    from sweeper.sweep.pruners import PRUNERS, check_pruner_options

    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        raise SweeperError(f"{source}: pruner must be a name or a mapping with a type")
    options = dict(value)
    kind = choice(options.pop("type", "median"), tuple(PRUNERS), f"{source}: pruner.type")
    return PrunerSpec(kind, check_pruner_options(kind, options, source))


def _check_folds(space: SearchSpace) -> None:
    split = space.base.split
    n_folds = 1 if split.scheme == "holdout" or space.base.data.val_json else split.n_splits
    for f in space.folds:
        if f >= n_folds:
            raise SweeperError(f"{space.source}: folds: fold {f} does not exist; "
                               f"the split has {n_folds} fold(s) (0..{n_folds - 1})")
    if space.pruner.type == "wilcoxon" and len(space.folds) < 2:
        raise SweeperError(f"{space.source}: pruner wilcoxon compares folds; list at least 2 folds")
