"""Studies written by sweeper 0.1.0 keep working after the upgrade: report, resume, ensemble.

``tests/fixtures/legacy_0_1`` was made by main at d92f450 (see its make.py): three tiny timm
candidates x two seeds, one epoch, weights saved. Every test works on a copy.
"""

from __future__ import annotations

import json
from collections import Counter

import optuna
import pytest
from typer.testing import CliRunner

from sweeper.cli import app
from sweeper.sweep.records import TrialRecord
from sweeper.sweep.space import load_space
from sweeper.sweep.study import run_sweep

runner = CliRunner()


def _trials(folder):
    return optuna.load_study(study_name="legacy", storage=f"sqlite:///{folder / 'legacy.db'}").get_trials()


def test_report_ranks_an_old_study_as_it_recorded_it(legacy_study):
    before = (legacy_study / "legacy.db").read_bytes()
    result = runner.invoke(app, ["report", "--storage", str(legacy_study / "legacy.db"), "--format", "json",
                                 "--no-dashboard-note"])
    assert result.exit_code == 0, result.output
    rows = {r["key"]: r for r in json.loads(result.stdout)["rows"]}
    values = {}
    for t in _trials(legacy_study):
        values.setdefault(t.user_attrs["candidate"], []).append(t.value)
    assert set(rows) == set(values) == {"pspnet/tu-test_resnet", "linknet/tu-test_efficientnet",
                                        "pspnet/tu-test_byobnet"}
    for key, runs in values.items():
        assert rows[key]["n"] == 2 and rows[key]["miou_mean"] == pytest.approx(sum(runs) / 2, abs=1e-12)
    assert (legacy_study / "legacy.db").read_bytes() == before  # --no-dashboard-note: nothing written


def test_an_old_study_resumes_with_more_seeds_and_keeps_its_runs(legacy_study):
    old = {t.number: (t.value, t.user_attrs["unit"]) for t in _trials(legacy_study)}
    space = load_space(str(legacy_study / "space.yaml"))
    space.base.data.subsample = 24  # as make.py ran it: the same split key
    space.seeds, space.racing = (0, 1, 2), False  # every candidate gets the new seed
    summary = run_sweep(space, storage=str(legacy_study / "legacy.db"))
    trials = _trials(legacy_study)
    assert {t.number: (t.value, t.user_attrs["unit"]) for t in trials if t.number in old} == old
    units = Counter(TrialRecord.from_trial(t).unit.key for t in trials if TrialRecord.from_trial(t).is_run)
    assert max(units.values()) == 1 and summary.trained == len(trials) - len(old) >= 1
    assert {TrialRecord.from_trial(t).unit.seed for t in trials if t.number not in old} == {2}
    assert summary.ranking is not None and len(summary.ranking.rows) == 3


def test_an_old_study_ensembles_from_its_saved_weights(legacy_study):
    result = runner.invoke(app, ["ensemble", "--storage", str(legacy_study / "legacy.db"), "--top", "2",
                                 "--format", "json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["members"]) == 2
    for member in data["members"]:  # the right weights: each member scores what its trial recorded
        assert member["miou"] == pytest.approx(member["recorded_miou"], abs=1e-4)
    assert "warning" not in result.output
