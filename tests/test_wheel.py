"""The wheel: built from the sources, installed non-editable into a fresh venv, ``sweeper tune``
runs from an empty folder (the shipped spaces are package data, not files beside the repository).

The fresh venv reuses this venv's site-packages through a ``.pth`` line (a path line, so the
editable install's import hook there is not run), so torch is not installed again: building,
creating and installing take about 2 s, the tiny tune about 12 s on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)


def test_wheel_installs_and_tunes_from_an_empty_folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "sweeper", src / "sweeper", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                  "-w", str(tmp_path / "dist"), str(src)])
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("sweeper-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"sweeper/spaces/demo.yaml", "sweeper/spaces/zoo-50m.yaml", "sweeper/spaces/hparams.yaml"} <= set(names)

    env = tmp_path / "env"
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(env)]).returncode == 0
    python = env / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(purelib) / "_sweeper_test_base.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = _run([str(python), "-m", "pip", "install", "--no-deps", "--ignore-installed", "--no-index", "-q",
                      str(wheel)])
    assert installed.returncode == 0, installed.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    environ = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    environ.pop("PYTHONPATH", None)
    where = _run([str(python), "-c", "import sweeper; print(sweeper.__file__)"], cwd=empty, env=environ)
    assert where.stdout.strip().startswith(purelib), where  # the wheel's copy, not the checkout's

    version = _run([str(env / "bin" / "sweeper"), "--version"], cwd=empty, env=environ)
    assert version.returncode == 0 and version.stdout.startswith("sweeper 0.1.0"), version

    tune = _run([str(env / "bin" / "sweeper"), "tune", "--epochs", "1", "--trials", "1", "--seeds", "1", "--debug",
                 "--device", "cpu"], cwd=empty, env=environ)
    assert tune.returncode == 0, tune.stderr
    assert "rank" in tune.stdout and "★ best" in tune.stdout, tune.stdout
    assert "error:" not in tune.stderr
    assert (empty / "sweeper.db").is_file()
