"""The timing model of `sweeper plan`: its arithmetic, the fit, the probes it picks, one real calibration."""

from __future__ import annotations

import math

import pytest

from sweeper.sweep.estimate import CostModel, Probe, choose_probes, family, fit_log_k, probe_config
from sweeper.zoo import Candidate


def cand(arch, encoder, gflops, params=1_000_000):
    return Candidate(arch=arch, encoder=encoder, params=params, encoder_params=params // 2,
                     decoder_params=params - params // 2, gflops=gflops)


def model(**changes):
    base = dict(method="flops", device="cpu", batch_size=8, images={0: (80, 20)},
                arch_log_k={"unet": (math.log(0.02), math.log(0.01))}, family_log_k={"resnet": (0.0, 0.0)},
                optimizer_s_per_param=1e-9, build_s_per_param=1e-8, data_train_s=0.002, data_val_s=0.001,
                setup_s=0.1, unit_overhead_s=0.8)
    base.update(changes)
    return CostModel(**base)


def test_a_run_is_linear_in_epochs_and_its_compute_in_gflops():
    m = model()
    small, large = cand("unet", "resnet18", 1.0), cand("unet", "resnet34", 2.0)
    epoch = m.epoch_s(small, 0)
    assert m.run_s(small, 8, 0) - m.run_s(small, 4, 0) == pytest.approx(4 * epoch)
    assert m.run_s(small, 1, 0) == pytest.approx(0.1 + 0.01 + epoch)
    # 10 steps of 8 images: compute 8 * 0.02 * GFLOPs, data 8 * 2 ms, optimizer 1 ms; 20 val images.
    assert epoch == pytest.approx(10 * (8 * 0.02 * 1.0 + 8 * 0.002 + 1e-3) + 20 * (0.01 + 0.001))
    # Twice the GFLOPs: twice the compute, the same data and optimizer.
    compute = m.epoch_s(large, 0) - m.epoch_s(small, 0)
    assert compute == pytest.approx(10 * 8 * 0.02 * 1.0 + 20 * 0.01 * 1.0)
    assert m.unit_s(small, 4, 0) == pytest.approx(m.run_s(small, 4, 0) + 0.8)


def test_the_last_partial_batch_is_not_trained_and_workers_overlap_data():
    m = model(images={0: (87, 20)})
    c = cand("unet", "resnet18", 1.0)
    assert m.epoch_s(c, 0) == pytest.approx(model().epoch_s(c, 0))  # 87 // 8 = 10 steps, as 80
    slow_data = model(data_train_s=1.0, data_val_s=0.0, workers=4)
    step = slow_data.step_s(c)
    assert step == pytest.approx(8 * 1.0 / 4)  # the data of a batch, on 4 workers, hides the compute


def test_a_pair_is_arch_times_family_and_unknown_names_take_the_default():
    m = model(arch_log_k={"unet": (math.log(0.02), math.log(0.01)), "fpn": (math.log(0.01), math.log(0.005))},
              family_log_k={"resnet": (0.0, 0.0), "mobilenet": (math.log(4), math.log(2))}, default_k=(0.5, 0.25))
    assert m.k("fpn", "mobilenet_v2") == pytest.approx((0.04, 0.01))
    assert m.k("unet", "resnet50") == pytest.approx((0.02, 0.01))
    assert m.k("pspnet", "vgg16") == (0.5, 0.25)  # nothing known of either: the default
    # An untimed architecture with a known family: the mean architecture (here 0.02 and 0.01 geometric).
    assert m.k("pspnet", "resnet18") == pytest.approx((math.sqrt(0.02 * 0.01), math.sqrt(0.01 * 0.005)))
    measured = model(pair_k={"unet/resnet18": (0.3, 0.1)})
    assert measured.k("unet", "resnet18") == (0.3, 0.1)


def _probe(arch, encoder, k_train, k_eval, gflops=1.0, batch=8, fixed=0.02, opt=0.01):
    """A probe whose times follow the model exactly: ``fixed`` seconds per step plus ``k`` per
    GFLOP-image, the optimizer's ``opt`` on top of every training step."""
    return Probe(arch, encoder, 64, batch, gflops, 1_000_000, small_batch=2, build_s=0.1,
                 step_s=fixed + opt + batch * k_train * gflops, small_step_s=fixed + opt + 2 * k_train * gflops,
                 optimizer_s=opt, eval_s=fixed / 2 + batch * k_eval * gflops,
                 small_eval_s=fixed / 2 + 2 * k_eval * gflops)


def test_two_batches_separate_a_steps_fixed_cost_from_its_cost_per_image():
    p = _probe("unet", "resnet18", 0.01, 0.004, gflops=2.0, fixed=0.05)
    assert p.train_k == pytest.approx(0.01) and p.train_fixed_s == pytest.approx(0.05)
    assert p.eval_k == pytest.approx(0.004) and p.eval_fixed_s == pytest.approx(0.025)
    # Noise that tilts the line past zero: the fixed part stays within [0, the small step].
    tilted = Probe("unet", "resnet18", 64, 8, 1.0, 1, small_batch=2, step_s=0.1, small_step_s=0.01,
                   optimizer_s=0.0, eval_s=0.05, small_eval_s=0.09)
    assert tilted.train_fixed_s == 0.0 and tilted.train_k == pytest.approx(0.1 / 8)
    assert tilted.eval_fixed_s == pytest.approx(0.09) and 0 < tilted.eval_k < 1e-6  # the large batch was faster
    # A cost model of those pairs predicts the recipe's step: fixed + batch x per image + optimizer.
    m = model(pair_k={"unet/resnet18": (p.train_k, p.eval_k)}, pair_fixed_s={"unet/resnet18": (0.05, 0.025)},
              data_train_s=0.0, data_val_s=0.0, optimizer_s_per_param=0.0)
    c = cand("unet", "resnet18", 2.0)
    assert m.step_s(c) == pytest.approx(0.05 + 8 * 0.01 * 2.0)
    assert m.epoch_s(c, 0) == pytest.approx(10 * m.step_s(c) + 3 * 0.025 + 20 * 0.004 * 2.0)  # 20 val: 3 batches


def test_the_fit_recovers_a_product_model_for_pairs_never_timed():
    arch = {"unet": 0.02, "fpn": 0.01, "pspnet": 0.005}
    fam = {"resnet": 1.0, "mobilenet": 3.0}
    timed = [("unet", "resnet18"), ("fpn", "resnet34"), ("pspnet", "resnet18"), ("unet", "mobilenet_v2")]
    probes = [_probe(a, e, arch[a] * fam[family(e)], arch[a] * fam[family(e)] / 3, fixed=0.03 * i)
              for i, (a, e) in enumerate(timed)]
    probes.append(Probe("pan", "resnet18", 64, 2, 1.0, 1, error="Output size is too small"))
    arch_k, fam_k = fit_log_k(probes)
    m = model(arch_log_k=arch_k, family_log_k=fam_k)
    assert "pan" not in arch_k
    for a in arch:
        for e in ("resnet18", "mobilenet_v2"):
            want = arch[a] * fam[family(e)]
            assert m.k(a, e) == pytest.approx((want, want / 3), rel=1e-6)


def test_probes_link_every_architecture_and_family_first_then_the_rest_cheapest_first():
    needed = [cand("unet", "resnet18", 10), cand("fpn", "mobilenet_v2", 8), cand("unet", "efficientnet-b0", 7),
              cand("upernet", "resnet34", 30), cand("fpn", "resnet18", 5), cand("upernet", "mobilenet_v2", 20),
              cand("fpn", "efficientnet-b1", 4)]
    keys = [c.key for c in choose_probes(needed)]
    assert sorted(keys) == sorted(c.key for c in needed)
    # Kruskal by GFLOPs: fpn/eff (4), fpn/res (5), unet/eff (7), fpn/mob (8) link; unet/res (10) closes a
    # cycle; upernet/mob (20) links upernet: 3 archs + 3 families - 1 = 5; then unet/res, upernet/res34.
    assert keys == ["fpn/efficientnet-b1", "fpn/resnet18", "unet/efficientnet-b0", "fpn/mobilenet_v2",
                    "upernet/mobilenet_v2", "unet/resnet18", "upernet/resnet34"]
    # The spanning five alone determine every needed pair.
    probes = [_probe(c.arch, c.encoder, 0.01, 0.005) for c in needed if c.key in keys[:5]]
    arch_k, fam_k = fit_log_k(probes)
    assert {c.arch for c in needed} == set(arch_k) and {family(c.encoder) for c in needed} == set(fam_k)


def test_probe_config_shrinks_the_size_then_the_batch():
    assert probe_config(0.1, 64, 8, budget_gflops=2.0) == (64, 8)  # cheap: the recipe's size
    assert probe_config(1.0, 256, 8, budget_gflops=2.0) == (128, 8)  # 8 x 1.0 x (128/256)^2 = 2
    assert probe_config(30.0, 256, 8, budget_gflops=2.0) == (64, 4)  # at 64 px still 15: batch 4, no less


def _two_probed_pairs():
    """A tiny space of two pspnet pairs on 24 demo images: (space, data, candidates)."""
    from sweeper.sweep.candidates import resolve_candidates
    from sweeper.sweep.space import parse_space
    from sweeper.training import prepare_data

    space = parse_space({"name": "t", "recipe": {"epochs": 2, "batch_size": 4, "image_size": 64},
                         "architectures": {"pairs": ["pspnet/mobilenet_v2", "pspnet/resnet18"]}, "trials": 2},
                        source="t.yaml")
    space.base.data.subsample = 24
    data = prepare_data(space.base)
    return space, data, resolve_candidates(space, data.num_classes)


def test_calibrate_times_real_probes_quickly(monkeypatch):
    from sweeper.sweep import estimate
    from sweeper.sweep.estimate import calibrate

    # Both probes must be timed here whatever the machine's load (the budget that skips the rest
    # on a busy machine is the next test's).
    monkeypatch.setitem(estimate.PROBE_BUDGET_S, "flops", float("inf"))
    space, data, candidates = _two_probed_pairs()
    cost = calibrate(space, data, screened=candidates, method="flops", device="cpu")
    assert [p.ok for p in cost.probes] == [True, True]
    assert cost.images == {0: (20, 4)} and cost.data_train_s > 0
    first, second = candidates
    assert 0 < cost.run_s(first, 1, 0) < cost.run_s(first, 2, 0) < 60
    assert cost.run_s(second, 2, 0) > 0 and "2 of 2 screened pair(s) timed" in cost.describe()
    none = calibrate(space, data, screened=candidates, method="none", device="cpu")
    assert none.probes == () and none.method == "none"


def test_probes_past_the_time_budget_are_left_out_and_modelled(monkeypatch):
    """On a machine too busy for the budget, the remaining probes are skipped, said so, and their
    pairs still get an estimate from the model (here every probe: a budget of 0 s)."""
    from sweeper.sweep import estimate

    monkeypatch.setitem(estimate.PROBE_BUDGET_S, "flops", 0.0)
    space, data, candidates = _two_probed_pairs()
    cost = estimate.calibrate(space, data, screened=candidates, method="flops", device="cpu")
    assert [p.error for p in cost.probes] == [estimate.SKIPPED] * 2
    assert all(0 < cost.run_s(c, 2, 0) < math.inf for c in candidates)
    assert "left out by the 0 s time budget" in cost.describe()
