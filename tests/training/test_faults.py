"""The SWEEPER_FAULT hook: which runs it selects, and the typed error each fault ends a run with."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from sweeper.errors import RUN_FAIL_KINDS, BuildError, DataLoaderError, NonFiniteLoss, OutOfMemory
from sweeper.training import faults, train_run


def test_fault_for_reads_kind_and_pattern(small, monkeypatch):
    fpn = replace(small, arch="fpn", encoder="resnet34")
    monkeypatch.delenv(faults.FAULT_ENV, raising=False)
    assert faults.fault_for(small) is None
    monkeypatch.setenv(faults.FAULT_ENV, "")
    assert faults.fault_for(small) is None
    monkeypatch.setenv(faults.FAULT_ENV, "oom")
    assert faults.fault_for(small) == faults.fault_for(fpn) == "oom"
    monkeypatch.setenv(faults.FAULT_ENV, "nan@fpn/*")
    assert (faults.fault_for(small), faults.fault_for(fpn)) == (None, "nan")
    monkeypatch.setenv(faults.FAULT_ENV, "build@*/resnet18")
    assert (faults.fault_for(small), faults.fault_for(fpn)) == ("build", None)


def test_injection_points_act_only_on_their_kind(small, monkeypatch):
    import torch

    monkeypatch.setenv(faults.FAULT_ENV, "nan")
    faults.maybe_fail_build(small)
    faults.maybe_run_out_of_memory("nan")
    assert faults.maybe_crash_workers(small, "dataset", 0) == ("dataset", 0)
    assert math.isnan(faults.maybe_poison_loss("nan", torch.tensor(1.0)))
    assert float(faults.maybe_poison_loss(None, torch.tensor(1.0))) == 1.0
    monkeypatch.setenv(faults.FAULT_ENV, "worker")
    dataset, workers = faults.maybe_crash_workers(small, [1, 2], 0)
    assert workers == 1 and len(dataset) == 2 and dataset[0] == 1  # dies only inside a worker process
    with pytest.raises(torch.OutOfMemoryError, match="simulated by SWEEPER_FAULT=oom"):
        faults.maybe_run_out_of_memory("oom")


@pytest.mark.parametrize(
    "fault, error, kind",
    [("nan", NonFiniteLoss, "nan"), ("oom", OutOfMemory, "oom"), ("build", BuildError, "build"),
     ("worker", DataLoaderError, "dataloader")],
)
def test_injected_faults_raise_typed_errors(small, data, monkeypatch, fault, error, kind):
    monkeypatch.setenv(faults.FAULT_ENV, fault)
    with pytest.raises(error) as info:
        train_run(replace(small, epochs=1), 0, data=data)
    assert info.value.kind == kind and kind in RUN_FAIL_KINDS


def test_a_fault_for_other_pairs_leaves_the_run_alone(small, data, monkeypatch):
    monkeypatch.setenv(faults.FAULT_ENV, "build@fpn/*")
    result = train_run(replace(small, epochs=1), 0, data=data)
    assert len(result.history) == 1
