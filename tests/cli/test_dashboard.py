"""`sweeper dashboard` over HTTP on loopback: it serves, and every operational failure (a port in
use, a storage that is missing or does not answer) is one ``error:`` line and exit code 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import optuna
import pytest

SWEEPER = [sys.executable, "-m", "sweeper.cli"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _sweeper(*args, timeout=60) -> subprocess.CompletedProcess:
    # A subprocess, not CliRunner: a dashboard that starts replaces its process (execv).
    return subprocess.run([*SWEEPER, *args], capture_output=True, text=True, timeout=timeout)


def _one_error_line(done: subprocess.CompletedProcess, *needles: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def storage(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = tmp_path / "d.db"
    study = optuna.create_study(study_name="served", storage=f"sqlite:///{path}", direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    return path


def test_a_second_dashboard_on_the_same_port_is_one_line(storage):
    port = _free_port()
    first = subprocess.Popen([*SWEEPER, "dashboard", "--storage", str(storage), "--port", str(port)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, studies = time.monotonic() + 60, None
        while time.monotonic() < deadline and first.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as answer:
                    studies = json.loads(answer.read())
                break
            except OSError:
                time.sleep(0.2)
        assert studies is not None, first.communicate(timeout=5) if first.poll() is not None else "no answer"
        assert [s["study_name"] for s in studies["study_summaries"]] == ["served"]
        second = _sweeper("dashboard", "--storage", str(storage), "--port", str(port))
        _one_error_line(second, "--port", f"127.0.0.1:{port}", "in use")
        assert first.poll() is None  # the first one still serves
    finally:
        first.terminate()  # our own child, by its pid: the dashboard replaced the sweeper process
        first.wait(timeout=10)


@pytest.mark.parametrize("case", ["missing", "foreign", "unreachable", "bad-host", "bad-port"])
def test_operational_failures_are_one_line(tmp_path, storage, case):
    port = str(_free_port())
    if case == "missing":
        done = _sweeper("dashboard", "--storage", str(tmp_path / "typo.db"), "--port", port)
        _one_error_line(done, "--storage", "typo.db", "does not exist")
        assert not (tmp_path / "typo.db").exists()
    elif case == "foreign":
        import sqlite3

        other = tmp_path / "inventory.db"
        with sqlite3.connect(other) as connection:
            connection.execute("CREATE TABLE parts (id INTEGER)")
        _one_error_line(_sweeper("dashboard", "--storage", str(other), "--port", port), "--storage", "something else")
    elif case == "unreachable":
        done = _sweeper("dashboard", "--storage", "postgresql+psycopg2://u:secret@127.0.0.1:1/x", "--port", port)
        _one_error_line(done, "--storage")
        assert "secret" not in done.stderr
    elif case == "bad-host":
        _one_error_line(_sweeper("dashboard", "--storage", str(storage), "--host", "no-such-host.invalid",
                                 "--port", port), "--host")
    else:
        _one_error_line(_sweeper("dashboard", "--storage", str(storage), "--port", "70000"), "--port")
