"""Saved weights and ensembles: real Optuna artifacts from a tiny study, scored again."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from sweeper.cli import app
from sweeper.ensemble import choose_members, evaluate_ensemble
from sweeper.errors import SweeperError
from sweeper.sweep.dashboard import dashboard_command
from sweeper.sweep.ranking import rank_records
from sweeper.sweep.records import StudyRecord, TrialRecord, read_records
from sweeper.sweep.space import parse_space
from sweeper.sweep.storage import artifact_dir, open_storage
from sweeper.sweep.study import run_sweep

runner = CliRunner()

TINY = {
    "name": "ens",
    "recipe": {"epochs": 2, "batch_size": 4, "image_size": 64, "lr": 3.0e-3},
    "architectures": {"pairs": ["pspnet/mobilenet_v2", "linknet/mobilenet_v2", "fpn/mobilenet_v2"]},
    "seeds": [0],
    "pruner": "none",
    "trials": 3,
    "save_weights": True,
}


@pytest.fixture(scope="module")
def saved_study(tmp_path_factory):
    """Three candidates, one seed, weights saved: trained once for the module."""
    folder = tmp_path_factory.mktemp("ens")
    space = parse_space(json.loads(json.dumps(TINY)), source="ens.yaml")
    space.base.data.subsample = 24
    storage = str(folder / "ens.db")
    summary = run_sweep(space, storage=storage)
    assert summary.trained == 3
    import optuna

    study = optuna.load_study(study_name="ens", storage=open_storage(storage))
    return storage, study


def test_every_finished_run_saves_its_weights_as_an_artifact(saved_study):
    import optuna

    storage, study = saved_study
    folder = artifact_dir(storage)
    assert StudyRecord.from_study(study).artifacts_dir == str(folder.resolve())
    for t in study.get_trials():
        record = TrialRecord.from_trial(t)
        metas = optuna.artifacts.get_all_artifact_meta(t, storage=open_storage(storage))
        assert [m.artifact_id for m in metas] == [record.weights_artifact]
        assert metas[0].filename.startswith(record.unit.candidate.arch) and metas[0].filename.endswith(".pt")
        assert (folder / metas[0].artifact_id).stat().st_size > 1_000_000  # a real state dict
    assert not [p for p in folder.iterdir() if p.name.startswith(".incoming")]  # no leftovers
    assert "--artifact-dir" in dashboard_command(storage)


def test_a_member_scores_what_its_trial_recorded_and_alone_is_its_own_ensemble(saved_study):
    storage, study = saved_study
    best = max(read_records(study), key=lambda t: t.value)
    result = evaluate_ensemble([best], artifact_dir(storage), device="cpu")
    (member,) = result.members
    # The weights saved are those of the best epoch: the same images give the same score.
    assert member.miou == pytest.approx(best.value, abs=1e-6)
    assert member.recorded_miou == pytest.approx(best.value, abs=1e-9)
    assert result.miou == pytest.approx(member.miou, abs=1e-9) and result.gain == pytest.approx(0.0, abs=1e-9)
    assert not result.notes


def test_top_members_follow_the_ranking_and_the_average_is_scored(saved_study):
    storage, study = saved_study
    trials = read_records(study)
    ranking = rank_records(trials)
    members = choose_members(trials, ranking, top=2)
    assert [str(t.unit.candidate) for t in members] == [row.candidate.key for row in ranking.rows[:2]]
    result = evaluate_ensemble(members, artifact_dir(storage), device="cpu")
    assert [m.trial for m in result.members] == [t.number for t in members]
    for m, t in zip(result.members, members):
        assert m.miou == pytest.approx(t.value, abs=1e-6)
    assert 0.0 < result.miou <= 1.0 and not math.isnan(result.gain)
    from sweeper.training import TrainConfig, prepare_data

    fold = prepare_data(TrainConfig.from_dict(members[0].config)).folds[0]
    assert result.images == len(fold.val_idx) > 0  # every validation image of the runs' fold


def test_ensemble_command_table_json_and_one_line_errors(saved_study, tmp_path):
    storage, _ = saved_study
    out = runner.invoke(app, ["ensemble", "--storage", storage, "--top", "2"])
    assert out.exit_code == 0, out.output
    assert "ensemble" in out.stdout and "gain" in out.stdout and "validation images" in out.stderr
    out = runner.invoke(app, ["ensemble", "--storage", storage, "--trials", "0,2", "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [m["trial"] for m in data["members"]] == [0, 2] and "gain_vs_best_member" in data
    for args, needle in [
        (["--trials", "0,9"], "trial 9 is not in the study"),
        (["--trials", "a,b"], "--trials"),
        (["--top", "0"], "--top"),
        (["--artifacts", str(tmp_path / "nowhere")], "does not exist"),
        (["--format", "xml"], "--format"),
    ]:
        out = runner.invoke(app, ["ensemble", "--storage", storage, *args])
        assert out.exit_code == 2 and needle in out.stderr, (args, out.output)
        assert len(out.stderr.strip().splitlines()) == 1


def test_a_study_without_weights_says_how_to_get_them(tmp_path):
    space = parse_space(dict(json.loads(json.dumps(TINY)), save_weights=False, seeds=[0],
                             architectures={"pairs": ["pspnet/mobilenet_v2"]}, trials=1,
                             recipe=dict(TINY["recipe"], epochs=1)), source="ens.yaml")
    space.base.data.subsample = 24
    storage = str(tmp_path / "plain.db")
    run_sweep(space, storage=storage)
    assert not artifact_dir(storage).exists()
    out = runner.invoke(app, ["ensemble", "--storage", storage])
    assert out.exit_code == 2 and "--save-weights" in out.stderr


def test_a_database_server_needs_a_named_artifact_folder(tmp_path):
    with pytest.raises(SweeperError, match="--artifacts"):
        artifact_dir("postgresql://u@127.0.0.1:5432/db")
    assert artifact_dir("postgresql://u@127.0.0.1:5432/db", tmp_path) == tmp_path
    assert artifact_dir(str(tmp_path / "runs.log")).name == "runs-artifacts"


def test_a_hold_out_set_scores_members_and_ensemble_on_unseen_images(saved_study, tmp_path):
    from sweeper.demo import write_demo_dataset

    storage, study = saved_study
    holdout = write_demo_dataset(tmp_path / "holdout", n_images=12, size=64, seed=7)
    members = choose_members(read_records(study), rank_records(read_records(study)), top=2)
    result = evaluate_ensemble(members, artifact_dir(storage), device="cpu",
                               holdout=(str(holdout.annotation_file), str(holdout.image_root)))
    assert result.images == 12 and result.holdout == str(holdout.annotation_file)
    assert not result.notes  # recorded scores are of other images: nothing to check them against
    assert all(0.0 <= m.miou <= 1.0 for m in result.members) and 0.0 <= result.miou <= 1.0
    out = runner.invoke(app, ["ensemble", "--storage", storage, "--top", "2",
                              "--val-json", str(holdout.annotation_file),
                              "--val-root", str(holdout.image_root), "--format", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["miou"] == pytest.approx(result.miou, abs=1e-9)
    out = runner.invoke(app, ["ensemble", "--storage", storage, "--val-json", str(tmp_path / "missing.json")])
    assert out.exit_code == 2 and "missing.json" in out.stderr and len(out.stderr.strip().splitlines()) == 1
