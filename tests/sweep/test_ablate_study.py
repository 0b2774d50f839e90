"""`sweeper ablate` on the demo data at a tiny size: arms on common seeds, resumable, and runs
reused by content across the studies of one storage."""

from __future__ import annotations

import json

import optuna
import pytest
from typer.testing import CliRunner

from sweeper.cli import app
from sweeper.sweep.ablate import run_ablation
from sweeper.sweep.records import TrialRecord
from sweeper.sweep.space import parse_space
from sweeper.sweep.storage import open_storage
from sweeper.sweep.study import run_sweep

RECIPE = {"epochs": 1, "batch_size": 4, "image_size": 64, "lr": 3.0e-3, "loss": "ce", "scheduler": "cosine"}
PAIR = "pspnet/mobilenet_v2"


def _space(raw_extra=None, *, subsample=24):
    raw = {"name": "abl", "recipe": dict(RECIPE), "seeds": [0, 1], "pruner": "none",
           "ablation": {"baseline": {"pair": PAIR}, "changes": [{"loss": "dice"}, {"lr": 1.0e-2}],
                        "first_seeds": 2}}
    raw.update(raw_extra or {})
    space = parse_space(raw, source="abl.yaml")
    space.base.data.subsample = subsample
    return space


def _tune_space(subsample=24):
    space = parse_space({"name": "tune", "recipe": dict(RECIPE), "architectures": {"pairs": [PAIR]},
                         "seeds": [0, 1], "pruner": "none", "racing": False, "trials": 2}, source="tune.yaml")
    space.base.data.subsample = subsample
    return space


def _records(storage, name):
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    return [TrialRecord.from_trial(t) for t in study.get_trials()]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A tune of one pair on seeds 0 and 1, then an ablation whose baseline is the tune's ★, on one
    storage: the ablation must reuse the tune's two runs and train only its changes."""
    folder = tmp_path_factory.mktemp("ablate")
    storage = str(folder / "a.db")
    tune = run_sweep(_tune_space(), storage=storage)
    first = run_ablation(_space({"ablation": {"baseline": {"study": "tune"}, "changes": [{"loss": "dice"},
                                                                                        {"lr": 1.0e-2}],
                                              "first_seeds": 2}}), storage=storage)
    return storage, tune, first


def test_an_ablation_reuses_the_tune_runs_of_its_baseline_and_trains_only_the_changes(shared):
    storage, tune, first = shared
    assert tune.trained == 2 and tune.reused == 0
    assert first.trained == 4 and first.reused == 2  # 2 changes x 2 seeds trained; the baseline's 2 reused
    records = _records(storage, "abl")
    tuned = {r.unit.seed: r for r in _records(storage, "tune") if r.is_run}
    baseline = [r for r in records if str(r.unit.candidate) == PAIR]
    assert sorted(r.unit.seed for r in baseline) == [0, 1]
    for r in baseline:  # recorded with the original's values, pointing at it
        original = tuned[r.unit.seed]
        assert r.reused_from == {"study": "tune", "trial": original.number}
        assert r.value == original.value and r.history == original.history and r.run_key == original.run_key
    seeds = {}
    for r in records:
        seeds.setdefault(str(r.unit.candidate), set()).add(r.unit.seed)
    assert seeds == {PAIR: {0, 1}, f"{PAIR} loss=dice": {0, 1}, f"{PAIR} lr=0.01": {0, 1}}  # common seeds
    dice = next(r for r in records if r.unit.candidate.hparams == (("loss", "dice"),))
    assert dice.config["loss"] == "dice" and dice.config["lr"] == RECIPE["lr"]
    table = first.table
    assert table.baseline == PAIR and table.baseline_n == 2 and len(table.arms) == 2
    by_seed = sorted(records, key=lambda r: r.unit.seed)
    for row in table.arms:  # the effect is the mean paired difference to the baseline
        arm = [r.value for r in by_seed if str(r.unit.candidate) == row.key]
        base = [r.value for r in by_seed if str(r.unit.candidate) == PAIR]
        assert row.effect.effect == pytest.approx(sum(a - b for a, b in zip(arm, base)) / 2)
        assert row.effect.low <= row.effect.effect <= row.effect.high
        assert row.effect.verdict in ("better", "worse", "equivalent", "undecided")
    assert [row.effect.effect for row in table.arms] == sorted((row.effect.effect for row in table.arms), reverse=True)


def test_an_ablation_run_again_trains_nothing_and_runs_lists_the_record(shared):
    storage, _, _ = shared
    again = run_ablation(_space({"ablation": {"baseline": {"study": "tune"}, "changes": [{"loss": "dice"},
                                                                                        {"lr": 1.0e-2}],
                                              "first_seeds": 2}}), storage=storage)
    assert again.trained == 0 and again.reused == 0 and len(_records(storage, "abl")) == 6
    result = CliRunner().invoke(app, ["runs", "--storage", storage, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 8 and {r["study"] for r in rows} == {"tune", "abl"}
    reused = [r for r in rows if r["reused_from"]]
    assert len(reused) == 2 and all(r["reused_from"].startswith("tune#") for r in reused)
    # One experiment, one config key: the reused rows carry the key of the runs they point at.
    keys = {(r["config_key"], r["seed"]) for r in rows if r["study"] == "tune"}
    assert {(r["config_key"], r["seed"]) for r in reused} == keys
    csv_out = CliRunner().invoke(app, ["runs", "--storage", storage]).stdout.splitlines()
    assert csv_out[0] == "config_key,seed,fold,value,study,trial,date,candidate,reused_from" and len(csv_out) == 9


def test_report_shows_the_arms_with_the_baseline_on_top_in_markdown_and_json(shared):
    storage, _, _ = shared
    runner = CliRunner()
    md = runner.invoke(app, ["report", "--storage", storage, "--study", "abl", "--format", "markdown"])
    assert md.exit_code == 0, md.output
    lines = md.stdout.splitlines()
    assert lines[0].startswith("| change | arm |") and lines[2].startswith("| **baseline** |")
    assert "Baseline config:" in md.stdout and '"loss": "ce"' in md.stdout
    data = json.loads(runner.invoke(app, ["report", "--storage", storage, "--study", "abl", "--format", "json"]).stdout)
    assert data["baseline"]["key"] == PAIR and {a["change"] for a in data["arms"]} == {"loss=dice", "lr=0.01"}
    assert data["procedure"].startswith("Dunnett")


def test_an_edited_annotation_is_another_data_set_and_is_not_reused(tmp_path):
    """One annotation edited: a new data fingerprint, so the same recipe trains again; the
    unedited file under another name is the same data and is reused."""
    import shutil

    from sweeper.demo import demo_dataset_paths
    from sweeper.sweep.identity import data_fingerprint

    source, root = demo_dataset_paths()
    copy = tmp_path / "train.json"
    shutil.copy(source, copy)
    storage = str(tmp_path / "d.db")

    def tune(name, path):
        space = _tune_space()
        space.seeds = (0,)
        space.base.data.train_json, space.base.data.image_root = str(path), str(root)
        return run_sweep(space, storage=storage, study_name=name)

    assert tune("original", copy).trained == 1
    renamed = tmp_path / "same-content.json"
    shutil.copy(copy, renamed)
    assert tune("renamed", renamed).reused == 1  # the content, not the file name, is the identity
    data = json.loads(copy.read_text())
    data["annotations"][0]["category_id"] = next(c["id"] for c in data["categories"]
                                                 if c["id"] != data["annotations"][0]["category_id"])
    copy.write_text(json.dumps(data))
    before = data_fingerprint(_space().base)
    edited = tune("edited", copy)
    assert edited.trained == 1 and edited.reused == 0
    assert data_fingerprint(_space().base) == before  # the demo data itself did not change


def test_teammates_on_one_postgresql_never_train_a_run_twice(postgres_url):
    """Two people's studies of the same experiment on one PostgreSQL server: the second reuses."""
    space = _tune_space()
    space.seeds = (0,)
    first = run_sweep(space, storage=postgres_url, study_name="reuse-alice")
    second = run_sweep(space, storage=postgres_url, study_name="reuse-bob")
    assert (first.trained, first.reused) == (1, 0) and (second.trained, second.reused) == (0, 1)
    bob = _records(postgres_url, "reuse-bob")
    alice = _records(postgres_url, "reuse-alice")
    assert bob[0].reused_from == {"study": "reuse-alice", "trial": alice[0].number}
    assert bob[0].value == alice[0].value
