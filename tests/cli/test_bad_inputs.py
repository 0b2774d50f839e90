"""The bad-input corpus: every case in ``tests/cli/bad_inputs/`` must end with exit code 2 and one
``error:`` line on stderr that names the file or field, print no traceback, and leave an
existing study exactly as it was.

A case is a folder ``tests/cli/bad_inputs/<nn-name>/`` holding ``case.yaml`` and any fixture files:

``about``
    One line: what is wrong.
``args``
    The command line after ``sweeper``. Placeholders: ``{dir}`` (a scratch copy of the case
    folder), ``{storage}`` and ``{study}`` (the study trained once per session, which must not
    change), ``{space}`` (its valid search space, ``tiny-space.yaml``), ``{demo_json}`` and
    ``{demo_root}`` (the built-in demo dataset).
``expect``
    Substrings of the error line (the path or field it must name).
``absent`` (optional)
    Substrings that must appear nowhere in the output (a password).
``make`` (optional)
    Files written into ``{dir}`` before the run: ``{image: a.png, size: [w, h]}`` (``count: n``
    with ``{i}`` in the name for several; ``truncate: 0.5`` keeps that share of the bytes),
    ``{file: x, text: ...}``, ``{file: x, hex: ...}``, ``{folder: x}``.
``creates_nothing`` (optional)
    Paths that must not exist after the run.
``xfail`` (optional)
    Why the case fails today, in a file this corpus does not own; strict, so a fix shows up as
    XPASS and the marker goes.

Bad inputs fail before any training, so only the session's study trains (about 10 s).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from sweeper.cli import app

CASES = Path(__file__).parent / "bad_inputs"
SPACE = CASES / "tiny-space.yaml"
STUDY = "bad-inputs"

runner = CliRunner()


def _cases():
    for folder in sorted(p for p in CASES.iterdir() if p.is_dir()):
        spec = yaml.safe_load((folder / "case.yaml").read_text())
        marks = [pytest.mark.xfail(strict=True, reason=spec["xfail"])] if spec.get("xfail") else []
        yield pytest.param(folder, spec, id=folder.name, marks=marks)


def _snapshot(storage: Path) -> dict:
    """Everything a mistaken command could change: studies, their attributes, every trial."""
    import optuna

    from sweeper.sweep.storage import open_storage

    store = open_storage(str(storage))
    studies = {}
    for summary in optuna.get_all_study_summaries(store):
        study = optuna.load_study(study_name=summary.study_name, storage=store)
        studies[summary.study_name] = {
            "user_attrs": study.user_attrs,
            "system_attrs": store.get_study_system_attrs(study._study_id),
            "trials": [(t.number, t.state.name, t.values, t.params, t.user_attrs, t.intermediate_values)
                       for t in study.get_trials()],
        }
    return studies


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One real study (pspnet/mobilenet_v2, 24 demo images, one epoch at 64 px) in SQLite."""
    from sweeper.sweep.space import load_space
    from sweeper.sweep.study import run_sweep

    storage = tmp_path_factory.mktemp("study") / "study.db"
    space = load_space(SPACE)
    space.base.data.subsample = 24
    summary = run_sweep(space, storage=str(storage), study_name=STUDY)
    assert summary.trained == 1 and summary.failed == 0
    before = _snapshot(storage)
    assert [trial[1] for trial in before[STUDY]["trials"]] == ["COMPLETE"]
    return storage, before


@pytest.fixture(scope="module")
def demo():
    from sweeper.demo import demo_dataset_paths

    return demo_dataset_paths()


def _make(folder: Path, recipes: list[dict]) -> None:
    from PIL import Image

    for recipe in recipes:
        if "folder" in recipe:
            (folder / recipe["folder"]).mkdir(parents=True, exist_ok=True)
        elif "image" in recipe:
            width, height = recipe["size"]
            for i in range(recipe.get("count", 1)):
                path = folder / recipe["image"].format(i=i)
                pixels = np.random.default_rng(i).integers(0, 256, (height, width, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(path)
                if "truncate" in recipe:
                    data = path.read_bytes()
                    path.write_bytes(data[: int(len(data) * recipe["truncate"])])
        elif "text" in recipe:
            (folder / recipe["file"]).write_text(recipe["text"])
        elif "hex" in recipe:
            (folder / recipe["file"]).write_bytes(bytes.fromhex(recipe["hex"]))
        else:
            raise ValueError(f"unknown make recipe {recipe!r}")


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def test_corpus_is_complete():
    folders = [p for p in CASES.iterdir() if p.is_dir()]
    assert len(folders) >= 30
    for folder in folders:
        spec = yaml.safe_load((folder / "case.yaml").read_text())
        assert {"about", "args", "expect"} <= set(spec), folder.name
        assert spec["expect"], folder.name
    assert sum(f.stat().st_size for f in CASES.rglob("*") if f.is_file()) < 200_000


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("folder", "spec"), list(_cases()))
def test_bad_input(folder, spec, study, demo, tmp_path):
    storage, before = study
    digest = hashlib.sha256(storage.read_bytes()).hexdigest()
    work = tmp_path / "case"
    shutil.copytree(folder, work)
    _make(work, spec.get("make", []))
    values = {"dir": str(work), "storage": str(storage), "study": STUDY, "space": str(SPACE),
              "demo_json": str(demo.annotation_file), "demo_root": str(demo.image_root)}
    args = [_fill(str(a), values) for a in spec["args"]]

    result = runner.invoke(app, args)

    output = result.stdout + result.stderr
    detail = (f"sweeper {' '.join(args)}\nexit code {result.exit_code}\nstderr: {result.stderr!r}\n"
              f"stdout (end): {result.stdout[-400:]!r}\nexception: {result.exception!r}")
    assert result.exception is None or isinstance(result.exception, SystemExit), detail
    assert "Traceback" not in output, detail
    assert result.exit_code == 2, detail
    # One error line; `warning:` lines before it (a skipped degenerate polygon) are information.
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), detail
    for needle in spec["expect"]:
        assert _fill(needle, values) in lines[0], f"{needle!r} not in the error line\n{detail}"
    for needle in spec.get("absent", []):
        assert needle not in output, f"{needle!r} in the output\n{detail}"
    for path in spec.get("creates_nothing", []):
        assert not Path(_fill(path, values)).exists(), f"{path} was created\n{detail}"
    assert _snapshot(storage) == before, f"the study changed\n{detail}"
    assert hashlib.sha256(storage.read_bytes()).hexdigest() == digest, f"the study's file changed\n{detail}"
