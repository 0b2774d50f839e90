"""Dataset-level segmentation scores from one confusion matrix.

The mIoU of a run is computed from a confusion matrix accumulated over every pixel of the
validation set, not as a mean of per-batch (or per-image) scores. A per-batch mean weighs a
batch with one tiny object like a batch full of it, and a class absent from a batch scores 0 or
1 there depending on convention; both make the score depend on how images fall into batches.

Conventions: rows of the matrix are the true class, columns the predicted class. The IoU of a
class is TP / (TP + FP + FN). A class that appears neither in the truth nor in the predictions
of the whole validation set has no IoU (NaN) and is left out of the mean, rather than counted as
a perfect 1.0 or a failed 0.0. Background (class 0) is a class like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scores:
    """Scores of one evaluation. ``iou`` has one entry per class, NaN where undefined."""

    miou: float
    iou: tuple[float, ...]
    pixel_accuracy: float


def scores_from_confusion(matrix: np.ndarray) -> Scores:
    """mIoU, per-class IoU and pixel accuracy of a (K x K) confusion matrix of pixel counts."""
    m = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(m)
    union = m.sum(axis=0) + m.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    present = ~np.isnan(iou)
    miou = float(iou[present].mean()) if present.any() else float("nan")
    total = m.sum()
    accuracy = float(tp.sum() / total) if total > 0 else float("nan")
    return Scores(miou=miou, iou=tuple(float(v) for v in iou), pixel_accuracy=accuracy)


class ConfusionMeter:
    """Accumulates a confusion matrix on the device of the predictions (one bincount a batch)."""

    def __init__(self, num_classes: int):
        self.num_classes = int(num_classes)
        self.matrix = None

    def update(self, pred, target) -> None:
        """``pred`` and ``target`` are integer class maps of the same shape (any batch shape)."""
        import torch

        k = self.num_classes
        pred = pred.reshape(-1).to(torch.int64)
        target = target.reshape(-1).to(torch.int64)
        valid = (target >= 0) & (target < k)
        counts = torch.bincount(target[valid] * k + pred[valid], minlength=k * k).reshape(k, k)
        self.matrix = counts if self.matrix is None else self.matrix + counts

    def compute(self) -> Scores:
        if self.matrix is None:
            return scores_from_confusion(np.zeros((self.num_classes, self.num_classes)))
        return scores_from_confusion(self.matrix.cpu().numpy())


def majority_class_miou(masks, num_classes: int) -> float:
    """The mIoU of predicting the most frequent class everywhere, from the true masks alone.

    The floor every model must clear: on a set that is 90% background, "background everywhere"
    already scores about 0.9 / (classes present). ``masks`` are integer class maps; pixels
    outside ``0..num_classes-1`` are ignored, as in :class:`ConfusionMeter`.
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    for mask in masks:
        flat = np.asarray(mask).reshape(-1).astype(np.int64)
        flat = flat[(flat >= 0) & (flat < num_classes)]
        counts += np.bincount(flat, minlength=num_classes)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    matrix[:, int(counts.argmax())] = counts
    return scores_from_confusion(matrix).miou
