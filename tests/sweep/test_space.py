"""Search-space files: the shipped ones load, mistakes are named with their close match."""

from __future__ import annotations

import pytest

from sweeper.errors import SweeperError
from sweeper.sweep.space import apply_overrides, load_space, parse_seeds, parse_space


@pytest.mark.parametrize("name", ["demo", "zoo-50m", "hparams"])
def test_shipped_spaces_load(name):
    space = load_space(name)
    assert space.name == name and space.trials >= 1 and space.seeds


def test_zoo_50m_is_the_competition_recipe():
    space = load_space("zoo-50m")
    base = space.base
    assert (base.epochs, base.image_size, base.batch_size, base.optimizer, base.lr, base.weight_decay, base.loss) == (
        8, 256, 8, "adam", 1e-4, 1e-6, "ce")
    assert space.architectures.max_params == 50_000_000 and base.augment is None
    # The whole catalogue on a budget: rungs of 1 and 3 epochs before the full 8, a third kept.
    assert (space.screening.epochs, space.screening.keep, space.pruner.type) == ((1, 3), 0.5, "none")
    assert space.architectures.order == "spread"


def test_hparams_space_has_ranges():
    space = load_space("hparams")
    kinds = {p.name: p.type for p in space.hparams}
    assert kinds == {"lr": "float", "loss": "categorical", "optimizer": "categorical", "augment_strength": "float"}


@pytest.mark.parametrize(
    "raw, needle",
    [
        ({"recipe": {"lrr": 0.1}}, "recipe.lrr: unknown key (did you mean 'lr'?)"),
        ({"trails": 3}, "trails: unknown key (did you mean 'trials'?)"),
        ({"architectures": {"max_param": "5M"}}, "did you mean 'max_params'"),
        ({"architectures": {"max_params": "5MB"}}, "max_params"),
        ({"hparams": {"lr": {"type": "float", "low": 1.0, "high": 0.1}}}, "low (1.0) must be below high (0.1)"),
        ({"hparams": {"lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}}, "log range needs low > 0"),
        ({"hparams": {"learning_rate": {"low": 0.1, "high": 1}}}, "not a tunable field"),
        ({"hparams": {"loss": {"type": "categorical", "choices": []}}}, "non-empty choices"),
        ({"recipe": {"loss": "dcie"}}, "did you mean 'dice'"),
        ({"recipe": {"epochs": 0}}, "epochs"),
        ({"split": {"scheme": "kfolds"}}, "did you mean 'kfold'"),
        ({"folds": [1]}, "fold 1 does not exist"),
        ({"seeds": [0, 0]}, "seeds repeat"),
        ({"objective": "mean"}, "objective"),
        ({"pruner": {"type": "medain"}}, "did you mean 'median'"),
        ({"pruner": {"type": "median", "warmup": 2}}, "pruner.warmup: unknown key"),
        ({"rope": -0.1}, "rope"),
        ({"architectures": {"pairs": ["unet"]}}, "pairs[0]"),
    ],
)
def test_bad_spaces_name_the_field(raw, needle):
    with pytest.raises(SweeperError) as info:
        parse_space(raw, source="space.yaml")
    assert needle in str(info.value) and str(info.value).startswith("space.yaml")


def test_yaml_syntax_error_has_a_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nrecipe: {epochs: 2\n")
    with pytest.raises(SweeperError, match=r"bad.yaml: line \d+"):
        load_space(bad)


def test_missing_space_suggests_a_shipped_one():
    with pytest.raises(SweeperError, match="did you mean 'demo'"):
        load_space("dmo")


def test_seeds_forms():
    assert parse_seeds(3, "s") == (0, 1, 2)
    assert parse_seeds("4,7,9", "s") == (4, 7, 9)
    assert parse_seeds("5", "s") == (0, 1, 2, 3, 4)
    with pytest.raises(SweeperError):
        parse_seeds("a,b", "s")


def test_overrides_replace_single_fields(tmp_path):
    space = load_space("demo")
    out = apply_overrides(space, trials=2, epochs=1, seeds="3", max_params="5M", device="cpu",
                          train_json=str(tmp_path / "a.json"))
    assert (out.trials, out.base.epochs, out.seeds, out.architectures.max_params, out.base.device) == (
        2, 1, (0, 1, 2), 5_000_000, "cpu")
    assert out.base.data.train_json.endswith("a.json")
    assert space.trials == 6 and space.base.epochs == 4  # the loaded space is not changed
    debug = apply_overrides(space, debug=True)
    assert debug.base.data.subsample == 32 and debug.base.epochs <= 2 and debug.base.image_size == 64


def test_paths_in_a_space_file_are_relative_to_it(tmp_path):
    (tmp_path / "s.yaml").write_text("data: {train_json: data/train.json}\n")
    space = load_space(tmp_path / "s.yaml")
    assert space.base.data.train_json == str(tmp_path / "data" / "train.json")


def test_save_weights_from_the_file_and_the_flag():
    base = {"name": "w", "architectures": {"pairs": ["unet/resnet18"]}}
    assert parse_space(base, source="w.yaml").save_weights is False
    saved = parse_space(dict(base, save_weights=True), source="w.yaml")
    assert saved.save_weights is True
    assert apply_overrides(saved, save_weights=False).save_weights is False
    assert apply_overrides(saved).save_weights is True  # no flag: the file decides
    with pytest.raises(SweeperError, match="save_weights"):
        parse_space(dict(base, save_weights="sometimes"), source="w.yaml")


def test_max_params_over_explicit_pairs_warns_that_it_has_no_effect(tmp_path):
    import warnings

    pairs = parse_space({"name": "p", "architectures": {"pairs": ["pspnet/mobilenet_v2"]}}, source="p.yaml")
    with pytest.warns(UserWarning, match=r"--max-params has no effect: p\.yaml lists explicit architectures\.pairs"):
        apply_overrides(pairs, max_params="1M")
    filters = parse_space({"name": "f", "architectures": {"archs": ["unet"]}}, source="f.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the budget filters a zoo space: no warning
        assert apply_overrides(filters, max_params="1M").architectures.max_params == 1_000_000


def test_the_max_params_warning_is_one_line_of_tune_and_the_pairs_stay(tmp_path):
    """Through the CLI: one ``warning:`` line on stderr, printed as the flags are read (here before
    the error of a missing annotation file stops the command); and the listed pair (2.3M
    parameters, over the 1M budget) is still a candidate: the flag really has no effect."""
    import yaml
    from typer.testing import CliRunner

    from sweeper.cli import app
    from sweeper.sweep.candidates import resolve_candidates

    space = tmp_path / "pairs.yaml"
    space.write_text(yaml.safe_dump({
        "name": "pairs", "recipe": {"epochs": 1, "batch_size": 8, "image_size": 64},
        "architectures": {"pairs": ["pspnet/mobilenet_v2"]}, "seeds": [0], "pruner": "none", "trials": 1}))
    result = CliRunner().invoke(app, ["tune", "--space", str(space), "--storage", str(tmp_path / "p.db"),
                                      "--max-params", "1M", "--train-json", str(tmp_path / "missing.json")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("error: ") and "missing.json" in lines[1], result.stderr
    assert lines[0].startswith("warning: --max-params has no effect: ") and lines[0].endswith(
        "lists explicit architectures.pairs, which are run whatever their size"), result.stderr
    assert not (tmp_path / "p.db").exists()

    with pytest.warns(UserWarning, match="--max-params has no effect"):
        budgeted = apply_overrides(load_space(space), max_params="1M")
    [candidate] = resolve_candidates(budgeted, num_classes=4)
    assert candidate.key == "pspnet/mobilenet_v2" and candidate.params > 1_000_000
