"""sweeper.zoo.counting: exact counts against real builds, invalid pairs, budgets, the cache, sorting."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from sweeper import zoo
from sweeper.errors import SweeperError

# One representative per encoder family, each paired with a different architecture so that every
# architecture also meets an encoder other than resnet18 (dilated ones included).
FAMILY_PAIRS = [
    ("unet", "resnext50_32x4d"),
    ("unetplusplus", "dpn68"),
    ("manet", "vgg11"),
    ("linknet", "se_resnet50"),
    ("fpn", "densenet121"),
    ("pspnet", "inceptionv4"),
    ("deeplabv3", "efficientnet-b0"),
    ("deeplabv3plus", "mobilenet_v2"),
    ("pan", "timm-efficientnet-b0"),
    ("upernet", "xception"),
    ("segformer", "timm-tf_efficientnet_lite0"),
    ("unet", "timm-skresnet18"),
    ("fpn", "mit_b0"),  # meta build needs the CPU range fallback
    ("deeplabv3", "mobileone_s0"),
    ("pspnet", "inceptionresnetv2"),
    ("dpt", "tu-test_vit"),
    ("upernet", "tu-test_convnext"),
]
ARCHS = [
    "unet", "unetplusplus", "manet", "linknet", "fpn", "pspnet", "deeplabv3", "deeplabv3plus",
    "pan", "upernet", "segformer",
]


def _real_counts(arch: str, encoder: str, image_size: int = 256):
    """Params of a real CPU build, FLOPs of torch's own FlopCounterMode on the same model."""
    import segmentation_models_pytorch as smp
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smp.create_model(arch, encoder_name=encoder, encoder_weights=None, classes=12).eval()
    params = sum(p.numel() for p in model.parameters())
    enc = sum(p.numel() for p in model.encoder.parameters())
    model = model.to("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, image_size, image_size, device="meta"))
    return params, enc, counter.get_total_flops() / 1e9


def _check_exact(pairs):
    archs = sorted({a for a, _ in pairs})
    encoders = sorted({e for _, e in pairs})
    result = zoo.list_candidates(archs=archs, encoders=encoders, include_timm=True, jobs=1)
    found = {c.key: c for c in result.candidates}
    for arch, encoder in pairs:
        candidate = found[f"{arch}/{encoder}"]
        params, enc, gflops = _real_counts(arch, encoder)
        assert (candidate.params, candidate.encoder_params) == (params, enc), candidate.key
        assert candidate.decoder_params == params - enc
        assert candidate.gflops == pytest.approx(gflops, rel=1e-12), candidate.key
        assert candidate.runs


def test_counts_equal_real_builds_for_every_architecture():
    _check_exact([(arch, "resnet18") for arch in ARCHS])


def test_counts_equal_real_builds_for_every_encoder_family():
    _check_exact(FAMILY_PAIRS)


@pytest.mark.slow
def test_counts_equal_real_builds_for_the_whole_native_catalogue():
    result = zoo.list_candidates(deprecated=True, jobs=2)  # smp's deprecated timm-* aliases too
    _check_exact([(c.arch, c.encoder) for c in result.candidates])


def test_invalid_pairs_carry_smp_reasons():
    result = zoo.list_candidates(archs=["dpt", "deeplabv3", "unetplusplus"], encoders=["vgg11", "mit_b0"], jobs=1)
    reasons = {p.key: p.reason for p in result.invalid}
    assert "tu-" in reasons["dpt/vgg11"]
    assert "dilated" in reasons["deeplabv3/vgg11"]
    assert "mit_b0" in reasons["unetplusplus/mit_b0"]
    assert {c.key for c in result.candidates} == {"deeplabv3/mit_b0", "unetplusplus/vgg11"}


def test_pan_does_not_run_at_64_px():
    result = zoo.list_candidates(archs=["pan", "unet"], encoders=["resnet18"], image_size=64, jobs=1)
    runs = {c.arch: c for c in result.candidates}
    assert runs["unet"].runs and runs["unet"].gflops > 0
    assert not runs["pan"].runs and runs["pan"].gflops is None and runs["pan"].note


def test_budget_keeps_only_pairs_under_it_and_prunes_big_encoders():
    pairs = dict(archs=["unet", "fpn"], encoders=["resnet18", "resnet50", "resnet152"], jobs=1)
    result = zoo.list_candidates(max_params="25M", **pairs)
    keys = {c.key for c in result.candidates}
    assert keys == {"unet/resnet18", "fpn/resnet18"}  # unet/resnet50 has 32.5M, fpn/resnet50 26.1M
    assert all(c.params <= 25_000_000 for c in result.candidates)
    # A larger budget later completes the rows that were only counted, not traced.
    wider = zoo.list_candidates(max_params="30M", **pairs)
    assert {c.key for c in wider.candidates} == keys | {"fpn/resnet50"}
    assert all(c.gflops for c in wider.candidates)


def test_cache_is_used_then_invalidated_by_a_key_change():
    first = zoo.list_candidates(archs=["linknet"], encoders=["resnet34"], classes=5, jobs=1)
    again = zoo.list_candidates(archs=["linknet"], encoders=["resnet34"], classes=5, jobs=1)
    assert first.counted == 1 and again.counted == 0 and again.cached == 1
    assert again.candidates == first.candidates
    other = zoo.list_candidates(archs=["linknet"], encoders=["resnet34"], classes=6, jobs=1)
    assert other.counted == 1
    assert other.candidates[0].params != first.candidates[0].params


def test_two_worker_processes_give_the_same_rows_as_one():
    kwargs = dict(archs=["unet", "pspnet"], encoders=["resnet18", "mobilenet_v2", "efficientnet-b0"], image_size=128)
    serial = zoo.list_candidates(jobs=1, use_cache=False, **kwargs)
    parallel = zoo.list_candidates(jobs=2, use_cache=False, **kwargs)
    assert sorted(serial.candidates, key=lambda c: c.key) == sorted(parallel.candidates, key=lambda c: c.key)


def test_sorting():
    a = zoo.Candidate("unet", "resnet50", 30, 20, 10, 5.0)
    b = zoo.Candidate("fpn", "resnet101", 20, 15, 5, 9.0)
    c = zoo.Candidate("fpn", "resnet18", 40, 35, 5, 1.0)
    assert zoo.sort_candidates([a, b, c], "params") == [b, a, c]
    assert zoo.sort_candidates([a, b, c], "flops") == [c, a, b]
    assert zoo.sort_candidates([a, b, c], "name") == [c, b, a]
    with pytest.raises(SweeperError, match="did you mean 'params'"):
        zoo.sort_candidates([a], "param")


def _run(code: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_cached_zoo_does_not_import_torch(tmp_path):
    env = {"SWEEPER_CACHE_DIR": str(tmp_path)}
    warm = "from sweeper import zoo\nzoo.list_candidates(archs=['unet'], encoders=['resnet18'], jobs=1)"
    assert _run(warm, env).returncode == 0
    check = (
        "import sys\nfrom sweeper import zoo\n"
        "r = zoo.list_candidates(archs=['unet'], encoders=['resnet18'], jobs=1)\n"
        "print('ROWS', len(r.candidates), 'TORCH', 'torch' in sys.modules)"
    )
    proc = _run(check, env)
    assert "ROWS 1 TORCH False" in proc.stdout, proc.stdout + proc.stderr
