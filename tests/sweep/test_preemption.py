"""Preemption: SIGTERM (SLURM, Kubernetes), SIGHUP (a closed terminal) and Ctrl-C stop a worker the
same way: the running trial ends FAIL ``interrupted``, the exit code is 128 + signal, and the same
command resumes. Real processes and real signals; runs are tiny (demo data at 64 px)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState

from sweeper.errors import Interrupted
from sweeper.sweep.records import TrialRecord
from sweeper.sweep.runner import HeldSignals
from sweeper.sweep.storage import open_storage


@pytest.fixture
def ctrl_c():
    """SIGINT as a terminal delivers it. A test run started in the background by a shell without
    job control inherits SIGINT ignored, and Python then leaves it ignored: Ctrl-C raises nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("hook", ["before_trial", "after_trial"])
def test_a_signal_while_optuna_saves_waits_until_the_trial_is_saved(tmp_path, hook, ctrl_c):
    """Ctrl-C while Optuna creates a trial (``ask``) or tells its result: plain Optuna leaves the
    trial RUNNING for ever (ask) or raises ``UnboundLocalError`` (tell). Held, the signal is
    raised where the trial can record it: FAIL ``interrupted`` (ask), or after COMPLETE (tell)."""
    import optuna

    class SignalOnSave(optuna.samplers.RandomSampler):
        pass

    def send(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)

    setattr(SignalOnSave, hook, send)
    storage = open_storage(str(tmp_path / "s.log"))
    plain = optuna.create_study(study_name="plain", storage=storage, sampler=SignalOnSave())
    with pytest.raises(UnboundLocalError if hook == "after_trial" else KeyboardInterrupt):
        plain.optimize(lambda trial: 1.0, n_trials=1)
    if hook == "before_trial":
        assert plain.get_trials()[0].state == TrialState.RUNNING  # nobody will ever finish it

    held = HeldSignals()
    study = optuna.create_study(study_name="held", storage=storage, sampler=SignalOnSave())

    def objective(trial):
        with held.deliver():
            return 1.0

    with pytest.raises(Interrupted) as raised:
        with held:
            study.optimize(objective, n_trials=1)
            held.raise_pending()
    assert raised.value.signum == signal.SIGINT and raised.value.exit_code == 130
    expected = (TrialState.COMPLETE, 1.0) if hook == "after_trial" else (TrialState.FAIL, None)
    assert [(t.state, t.value) for t in study.get_trials()] == [expected]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def _space(tmp_path: Path, epochs: int) -> Path:
    path = tmp_path / "pre.yaml"
    path.write_text(yaml.safe_dump({
        "name": "pre", "recipe": {"epochs": epochs, "batch_size": 8, "image_size": 64, "lr": 3.0e-3},
        "architectures": {"pairs": ["pspnet/mobilenet_v2"]}, "seeds": [0], "pruner": "none", "trials": 1}))
    return path


def _tune(space: Path, storage: str, prefix=()) -> subprocess.Popen:
    command = [*prefix, sys.executable, "-m", "sweeper.cli", "tune", "--space", str(space), "--storage", storage,
               "--format", "csv"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), start_new_session=True)


def _wait_for_first_epoch(storage: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    import optuna

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            trials = optuna.load_study(study_name="pre", storage=open_storage(storage)).get_trials()
        except Exception:  # noqa: BLE001 - the study is not created yet
            trials = []
        if any(t.state == TrialState.RUNNING and TrialRecord.from_trial(t).history for t in trials):
            return
        time.sleep(0.3)
    raise AssertionError("no epoch finished in time")


def _trials(storage: str):
    import optuna

    return optuna.load_study(study_name="pre", storage=open_storage(storage)).get_trials()


@pytest.mark.timeout(400)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_a_trial_like_ctrl_c(tmp_path, sig):
    space, storage = _space(tmp_path, epochs=6), str(tmp_path / "pre.log")
    proc = _tune(space, storage)
    _wait_for_first_epoch(storage, proc)
    sent = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    stopped_s = time.monotonic() - sent
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and f"interrupted ({signal.Signals(sig).name})" in err, err
    [trial] = _trials(storage)
    assert trial.state == TrialState.FAIL and TrialRecord.from_trial(trial).interrupted
    assert stopped_s < 30, stopped_s
    if sig == signal.SIGTERM:  # the same command resumes: the interrupted unit runs again, once
        out, err = _tune(space, storage).communicate(timeout=300)
        states = [t.state for t in _trials(storage)]
        assert states.count(TrialState.COMPLETE) == 1 and states[0] == TrialState.FAIL, (states, err)


@pytest.mark.timeout(400)
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root for a PID namespace")
def test_sigterm_stops_a_worker_that_runs_as_pid_1(tmp_path):
    """As PID 1 (a container's entrypoint) the kernel drops signals whose action is the default:
    only a handler makes SIGTERM work there."""
    space, storage = _space(tmp_path, epochs=6), str(tmp_path / "pre.log")
    proc = _tune(space, storage, prefix=("unshare", "--pid", "--fork", "--kill-child"))
    _wait_for_first_epoch(storage, proc)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(children) == 1
    init = int(children[0])
    nspid = [line for line in Path(f"/proc/{init}/status").read_text().splitlines() if line.startswith("NSpid:")]
    assert nspid and nspid[0].split()[-1] == "1"  # it is PID 1 in its namespace
    os.kill(init, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    [trial] = _trials(storage)
    assert trial.state == TrialState.FAIL and TrialRecord.from_trial(trial).interrupted
