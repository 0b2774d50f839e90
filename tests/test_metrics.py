"""Dataset-level mIoU from one confusion matrix, checked by hand and against smp.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweeper.metrics import ConfusionMeter, scores_from_confusion


def test_scores_by_hand():
    # truth rows, predicted columns; class 2 is absent from truth and predictions.
    matrix = np.array([[5, 1, 0], [2, 4, 0], [0, 0, 0]])
    scores = scores_from_confusion(matrix)
    iou0 = 5 / (5 + 1 + 2)  # TP / (TP + FP + FN)
    iou1 = 4 / (4 + 2 + 1)
    assert scores.iou[0] == pytest.approx(iou0) and scores.iou[1] == pytest.approx(iou1)
    assert math.isnan(scores.iou[2])
    assert scores.miou == pytest.approx((iou0 + iou1) / 2)  # the absent class is left out
    assert scores.pixel_accuracy == pytest.approx(9 / 12)


def test_predicted_but_absent_class_counts_as_zero():
    scores = scores_from_confusion(np.array([[3, 1], [0, 0]]))
    assert scores.iou == (pytest.approx(0.75), 0.0)
    assert scores.miou == pytest.approx(0.375)


def test_meter_accumulates_the_whole_set_not_a_mean_of_batches():
    torch = pytest.importorskip("torch")
    # batch 1 is perfect on class 0 only; batch 2 is a small mistake on class 1.
    t1, p1 = torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 4, dtype=torch.long)
    t2 = torch.tensor([[[1, 1], [0, 0]]])
    p2 = torch.tensor([[[1, 0], [0, 0]]])
    meter = ConfusionMeter(2)
    meter.update(p1, t1)
    meter.update(p2, t2)
    scores = meter.compute()
    # Whole set: class 0 has TP 18, FN 0, FP 1 -> 18/19; class 1 TP 1, FN 1 -> 1/2.
    assert scores.iou[0] == pytest.approx(18 / 19) and scores.iou[1] == pytest.approx(0.5)
    per_batch_mean = (1.0 + (2 / 3 + 1 / 2) / 2) / 2
    assert scores.miou != pytest.approx(per_batch_mean)


def test_meter_agrees_with_smp_metrics():
    torch = pytest.importorskip("torch")
    import segmentation_models_pytorch as smp

    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (3, 16, 16), generator=gen)
    pred = torch.where(torch.rand(3, 16, 16, generator=gen) < 0.7, target,
                       torch.randint(0, 4, (3, 16, 16), generator=gen))
    meter = ConfusionMeter(4)
    meter.update(pred, target)
    tp, fp, fn, tn = smp.metrics.get_stats(pred, target, mode="multiclass", num_classes=4)
    smp_iou = smp.metrics.iou_score(tp.sum(0, keepdim=True), fp.sum(0, keepdim=True), fn.sum(0, keepdim=True),
                                    tn.sum(0, keepdim=True))
    assert np.allclose(meter.compute().iou, smp_iou[0].numpy())


def test_majority_class_miou_is_the_score_of_predicting_the_majority_everywhere():
    from sweeper.metrics import majority_class_miou

    masks = [np.array([[0, 0, 1], [0, 2, 2]]), np.array([[0, 0, 0], [9, 1, 0]])]  # 9: outside, ignored
    # background 7 of 11 valid pixels; classes 0, 1, 2 present: IoU 7/11, 0, 0
    assert majority_class_miou(masks, 3) == pytest.approx((7 / 11) / 3)
    pred = [np.zeros_like(m) for m in masks]
    truth = np.concatenate([m.ravel() for m in masks])
    keep = truth < 3
    matrix = np.zeros((3, 3))
    np.add.at(matrix, (truth[keep], np.concatenate([p.ravel() for p in pred])[keep]), 1)
    assert majority_class_miou(masks, 3) == pytest.approx(scores_from_confusion(matrix).miou)
