"""Going on from a shorter run: under a constant learning rate, a 1-epoch run saved and continued
to 3 epochs is the 3-epoch run, bit for bit; anything that would make it differ is refused."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from sweeper.training import train_run
from sweeper.training.state import can_resume, load_state


def _curve(result):
    """Every figure of every epoch (NaN, a class absent from the val set, written as None)."""
    return [(h.epoch, h.train_loss, h.val_loss, h.miou, tuple(None if np.isnan(v) else v for v in h.iou))
            for h in result.history]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_continued_run_is_the_longer_run_bit_for_bit(small, data, tmp_path, workers):
    config = replace(small, epochs=3, num_workers=workers, scheduler="none")
    fresh = train_run(config, 5, data=data, save_best=tmp_path / "fresh.pt", save_state_to=tmp_path / "fresh.state")
    short = train_run(replace(config, epochs=1), 5, data=data, save_state_to=tmp_path / "short.state")
    torch.rand(1000), np.random.rand(100), random.random()  # the continued run must restore every stream itself
    state = load_state(tmp_path / "short.state")
    assert state is not None and state.epochs == 1 and can_resume(state, config.to_dict(), 5) is None
    went_on = train_run(config, 5, data=data, resume=state, save_best=tmp_path / "went_on.pt",
                        save_state_to=tmp_path / "went_on.state")
    assert went_on.resumed_epochs == 1 and fresh.resumed_epochs == 0
    assert _curve(went_on) == _curve(fresh)
    assert _curve(went_on)[:1] == _curve(short)
    assert (went_on.best_epoch, went_on.best_miou) == (fresh.best_epoch, fresh.best_miou)
    best_a, best_b = torch.load(tmp_path / "fresh.pt"), torch.load(tmp_path / "went_on.pt")
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)
    end_a, end_b = load_state(tmp_path / "fresh.state"), load_state(tmp_path / "went_on.state")
    assert all(torch.equal(end_a.model[k], end_b.model[k]) for k in end_a.model)


def test_the_best_epoch_of_the_shorter_run_keeps_its_weights(small, data, tmp_path):
    """When the carried epochs hold the best score, the saved best weights are that epoch's."""
    config = replace(small, epochs=2, lr=0.5, scheduler="none")  # a huge step: epoch 2 scores worse or equal
    fresh = train_run(config, 1, data=data, save_best=tmp_path / "fresh.pt")
    train_run(replace(config, epochs=1), 1, data=data, save_state_to=tmp_path / "short.state")
    went_on = train_run(config, 1, data=data, resume=load_state(tmp_path / "short.state"),
                        save_best=tmp_path / "went_on.pt")
    assert _curve(went_on) == _curve(fresh)
    a, b = torch.load(tmp_path / "fresh.pt"), torch.load(tmp_path / "went_on.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_what_cannot_go_on_is_refused(small, data, tmp_path):
    config = replace(small, epochs=1, scheduler="none")
    train_run(config, 0, data=data, save_state_to=tmp_path / "s.state")
    state = load_state(tmp_path / "s.state")
    longer = replace(config, epochs=3).to_dict()
    assert can_resume(state, longer, 0) is None
    assert can_resume(state, {**longer, "device": "cuda", "num_workers": 4}, 0) is None
    assert "depends on the number of epochs" in can_resume(state, {**longer, "scheduler": "cosine"}, 0)
    assert "seed 0, not 1" in can_resume(state, longer, 1)
    assert "differs in lr" in can_resume(state, {**longer, "lr": 1.0}, 0)
    assert "already has 1 epochs" in can_resume(state, config.to_dict(), 0)


def test_a_missing_or_damaged_state_file_means_from_scratch(tmp_path):
    assert load_state(tmp_path / "none.state") is None
    (tmp_path / "bad.state").write_bytes(b"not a checkpoint")
    assert load_state(tmp_path / "bad.state") is None
