"""smp's deprecated ``timm-*`` encoder aliases: left out unless asked for, marked, never twice."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from sweeper import zoo
from sweeper.errors import SweeperError
from sweeper.report import zoo as zoo_report

ARCHS = ["unet", "fpn"]
NAMES = ["resnet18", "efficientnet-b0", "efficientnet-b1", "timm-efficientnet-b0", "timm-efficientnet-b1",
         "timm-skresnet18", "tu-efficientnet_b0", "tu-skresnet18"]


def test_every_timm_name_of_smp_is_deprecated_and_nothing_else():
    _, encoders = zoo.catalogue_names(include_timm=False)
    deprecated = [e for e in encoders if zoo.is_deprecated(e)]
    assert deprecated == [e for e in encoders if e.startswith("timm-")] and len(deprecated) >= 18
    assert not zoo.is_deprecated("tu-efficientnet_b0") and not zoo.is_deprecated("efficientnet-b0")


def test_every_alias_has_a_twin_in_smp_or_timm():
    _, encoders = zoo.catalogue_names(include_timm=True)
    known = set(encoders)
    for alias in (e for e in encoders if zoo.is_deprecated(e)):
        twins = zoo.alias_twins(alias)
        assert twins and twins[-1].startswith("tu-") and twins[-1] in known, alias  # the name smp's warning means
    assert zoo.alias_twins("timm-efficientnet-b3") == ("efficientnet-b3", "tu-efficientnet_b3")
    assert zoo.alias_twins("timm-tf_efficientnet_lite2")[-1] == "tu-tf_efficientnet_lite2"
    assert zoo.alias_twins("resnet18") == ()


def test_an_alias_and_its_smp_twin_are_the_same_size():
    result = zoo.list_candidates(archs=["unet"], encoders=["efficientnet-b2", "timm-efficientnet-b2"], jobs=1)
    twin, alias = sorted(result.candidates, key=lambda c: c.deprecated)
    assert (alias.encoder, twin.encoder) == ("timm-efficientnet-b2", "efficientnet-b2")
    assert (alias.params, alias.encoder_params, alias.gflops) == (twin.params, twin.encoder_params, twin.gflops)


def test_select_pairs_leaves_aliases_out_unless_named_or_asked_for():
    _, chosen = zoo.select_pairs(ARCHS, NAMES)
    assert not any(zoo.is_deprecated(e) for e in chosen) and "efficientnet-b0" in chosen
    _, chosen = zoo.select_pairs(ARCHS, NAMES, encoder_patterns=["*efficientnet*"])
    assert chosen == ["efficientnet-b0", "efficientnet-b1", "tu-efficientnet_b0"]
    _, chosen = zoo.select_pairs(ARCHS, NAMES, encoder_patterns=["timm-*"], exclude_patterns=["*b1"])
    assert chosen == ["timm-efficientnet-b0", "timm-skresnet18"]
    _, chosen = zoo.select_pairs(ARCHS, NAMES, encoder_patterns=["*efficientnet-b0"], deprecated=True)
    assert chosen == ["efficientnet-b0", "timm-efficientnet-b0"]
    assert len(zoo.select_pairs(ARCHS, NAMES, deprecated=True)[1]) == len(NAMES)


def test_a_pattern_that_matches_only_aliases_says_how_to_get_them():
    with pytest.raises(SweeperError, match=r"matches only deprecated smp aliases \(timm-skresnet18\).*--deprecated"):
        zoo.select_pairs(ARCHS, [e for e in NAMES if e != "tu-skresnet18"], encoder_patterns=["*skresnet*"])
    with pytest.raises(SweeperError, match=r"did you mean 'timm-efficientnet-b[01]'"):
        zoo.select_pairs(ARCHS, NAMES, encoder_patterns=["timm-efficientnet-b2"])


def test_list_candidates_marks_aliases_and_names_those_left_out():
    kwargs = dict(archs=["linknet"], encoders=["*efficientnet-b0"], image_size=64, jobs=1)
    default = zoo.list_candidates(**kwargs)
    assert [c.encoder for c in default.candidates] == ["efficientnet-b0"]
    assert default.left_out_deprecated == ["timm-efficientnet-b0"]
    both = zoo.list_candidates(deprecated=True, **kwargs)
    assert [(c.encoder, c.deprecated) for c in both.candidates] == [("efficientnet-b0", False),
                                                                    ("timm-efficientnet-b0", True)]
    assert both.left_out_deprecated == []


def _candidate(arch: str, encoder: str, params: int = 10) -> zoo.Candidate:
    return zoo.Candidate(arch, encoder, params, params // 2, params - params // 2, 1.0)


def test_deprecated_follows_the_name_and_survives_json():
    alias = _candidate("unet", "timm-efficientnet-b0")
    assert alias.deprecated and not _candidate("unet", "efficientnet-b0").deprecated
    assert not zoo.Candidate("unet", "resnet18", 1, 1, 0, 1.0, deprecated=True).deprecated  # the name decides
    rows = [alias, _candidate("unet", "resnet18")]
    back = [zoo.Candidate(**dict(r, weights=tuple(r["weights"]))) for r in json.loads(zoo_report.to_json(rows))]
    assert back == rows and [r["deprecated"] for r in json.loads(zoo_report.to_json(rows))] == [True, False]
    parsed = list(csv.DictReader(io.StringIO(zoo_report.to_csv(rows))))
    assert [r["deprecated"] for r in parsed] == ["True", "False"]


def test_table_and_markdown_show_the_column_only_when_a_row_is_deprecated():
    plain = [_candidate("unet", "resnet18")]
    marked = plain + [_candidate("unet", "timm-efficientnet-b0")]
    assert "deprecated" not in zoo_report.to_markdown(plain)
    lines = zoo_report.to_markdown(marked).splitlines()
    assert lines[0].endswith("| deprecated |") and lines[2].endswith("| - |") and lines[3].endswith("| yes |")
    assert [c.header for c in zoo_report.render_table(plain, image_size=64).columns][-1] == "runs @64"
    assert [c.header for c in zoo_report.render_table(marked, image_size=64).columns][-1] == "deprecated"


def test_drop_alias_twins_keeps_the_current_name_per_architecture():
    rows = [_candidate("unet", "timm-efficientnet-b0"), _candidate("unet", "resnet18"),
            _candidate("unet", "efficientnet-b0"), _candidate("fpn", "timm-efficientnet-b0"),
            _candidate("pan", "timm-skresnet18"), _candidate("pan", "tu-skresnet18"),
            _candidate("fpn", "timm-skresnet18")]
    kept, dropped = zoo.drop_alias_twins(rows)
    assert [c.key for c in dropped] == ["unet/timm-efficientnet-b0", "pan/timm-skresnet18"]
    assert [c.key for c in kept] == ["unet/resnet18", "unet/efficientnet-b0", "fpn/timm-efficientnet-b0",
                                     "pan/tu-skresnet18", "fpn/timm-skresnet18"]  # no twin beside these


def test_zoo_command_leaves_aliases_out_and_lists_them_with_deprecated():
    from sweeper.cli import app

    runner = CliRunner()
    args = ["zoo", "--arch", "linknet", "--encoder", "*efficientnet-b0", "--image-size", "64", "--format", "csv"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [r["encoder"] for r in csv.DictReader(io.StringIO(result.stdout))] == ["efficientnet-b0"]
    assert "1 deprecated encoder aliases (timm-*) left out; --deprecated lists them" in result.stderr
    result = runner.invoke(app, [*args, "--deprecated"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["encoder"], r["deprecated"]) for r in rows] == [("efficientnet-b0", "False"),
                                                               ("timm-efficientnet-b0", "True")]
    assert "left out" not in result.stderr
