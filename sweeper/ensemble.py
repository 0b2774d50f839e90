"""Ensembles of the best runs of a study: average their class probabilities, score the average.

Members are runs saved by ``tune`` with ``save_weights`` (Optuna artifacts of their trials): by
default the best run of each of the ``top`` leading candidates of the ranked table, so that the
ensemble mixes architectures rather than seeds of one. Every member is scored again in the same
pass as the ensemble, on the same validation images of the same fold, so the comparison is like
for like; a member's score there equals the one its trial recorded (a check that the right
weights were loaded).

By default the ensemble's mIoU is measured on the validation set its members were chosen on, so
it is optimistic in the same way as the best single run, and the gain over the best member is
the figure to read. ``holdout`` (``--val-json``) scores members and ensemble on annotated images
that no run was trained or selected on instead, which removes that bias.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from sweeper.errors import SweeperError, one_line


@dataclass
class Member:
    """One run of the ensemble: its trial, what it recorded, and its score in this evaluation."""

    trial: int
    candidate: str
    seed: int
    fold: int
    recorded_miou: float
    miou: float = math.nan


@dataclass
class EnsembleResult:
    """Dataset-level scores of the averaged probabilities, next to those of each member."""

    members: list[Member]
    miou: float
    pixel_accuracy: float
    iou: list[float]
    class_names: list[str]
    images: int
    notes: list[str] = field(default_factory=list)
    holdout: str | None = None  # the annotation file scored, when not the runs' validation fold

    @property
    def best_member(self) -> Member:
        return max(self.members, key=lambda m: m.miou)

    @property
    def gain(self) -> float:
        """Ensemble mIoU minus the best member's, on the same images."""
        return self.miou - self.best_member.miou

    def to_dict(self) -> dict:
        return {
            "members": [vars(m) for m in self.members], "miou": self.miou, "pixel_accuracy": self.pixel_accuracy,
            "iou": dict(zip(self.class_names, self.iou)), "images": self.images, "gain_vs_best_member": self.gain,
            "holdout": self.holdout,
        }


def choose_members(trial_records, ranking, *, top: int = 3, trial_numbers: list[int] | None = None) -> list:
    """The runs to ensemble (:class:`~sweeper.sweep.records.TrialRecord`): the given trial
    numbers, or the best saved run of each of the ``top`` leading candidates (ranked table
    order) on the first fold they share."""
    saved = [r for r in trial_records if r.is_run and r.weights_artifact]
    if trial_numbers:
        by_number = {r.number: r for r in trial_records}
        chosen = []
        for n in trial_numbers:
            r = by_number.get(n)
            if r is None:
                raise SweeperError(f"--trials: trial {n} is not in the study")
            if r not in saved:
                raise SweeperError(f"--trials: trial {n} has no saved weights (state {r.state.name.lower()}); "
                                   "run tune with --save-weights")
            chosen.append(r)
        return chosen
    if top < 1:
        raise SweeperError(f"--top: must be at least 1, got {top}")
    if not saved:
        raise SweeperError("no run of this study has saved weights; run sweeper tune --save-weights "
                           "(or save_weights: true in the space) and try again")
    if ranking is None:
        raise SweeperError("no completed run to rank, so no leaders to ensemble")
    fold = min(r.unit.fold for r in saved)
    chosen = []
    for row in ranking.rows:
        runs = [r for r in saved if str(r.unit.candidate) == row.candidate.key and r.unit.fold == fold]
        if runs:
            chosen.append(max(runs, key=lambda r: (r.value, -r.number)))
        if len(chosen) == top:
            break
    return chosen


def _member_config(trial):
    from sweeper.training import TrainConfig

    config = TrainConfig.from_dict(trial.config)
    # The saved state dict holds every weight; building must not fetch or read encoder weights.
    return replace(config, encoder_weights=None)


def _holdout_config(config, val_json: str, val_root: str | None):
    """The members' recipe, validated on ``val_json`` instead of its fold (same class mapping)."""
    from sweeper.training import data_files

    train_json, root = data_files(config.data)  # the class mapping comes from the training file
    data = replace(config.data, train_json=train_json, image_root=root, val_json=str(val_json),
                   val_root=None if val_root is None else str(val_root), subsample=None)
    return replace(config, data=data, fold=0)


def evaluate_ensemble(trials, artifacts: str | os.PathLike, *, device: str = "auto", batch_size: int | None = None,
                      holdout: tuple[str, str | None] | None = None) -> EnsembleResult:
    """Score the members and the average of their softmax probabilities on their validation fold,
    or on ``holdout = (val_json, val_root)``: images that no run was selected on."""
    import torch
    from optuna.artifacts import FileSystemArtifactStore, download_artifact

    from sweeper.metrics import ConfusionMeter
    from sweeper.training import build_model, make_loaders, prepare_data, resolve_device

    if not trials:
        raise SweeperError("no member to ensemble")
    configs = [_member_config(t) for t in trials]
    first = configs[0]
    for t, c in zip(trials, configs):
        if (c.data, c.split, c.fold, c.image_size) != (first.data, first.split, first.fold, first.image_size):
            raise SweeperError(f"trial {t.number} was validated on other images "
                               "(data, split, fold or image size differ "
                               f"from trial {trials[0].number}); ensemble runs of one fold")
    folder = Path(artifacts)
    if not folder.is_dir():
        raise SweeperError(f"--artifacts: folder {folder} does not exist (where tune saved the weights)")
    device = resolve_device(device if device != "auto" else first.device)
    if holdout is not None:
        first = _holdout_config(first, *holdout)
    data = prepare_data(first)
    fold = data.folds[first.fold]
    if batch_size is not None:
        first = replace(first, batch_size=batch_size)
    _, _, val_loader = make_loaders(replace(first, num_workers=0), fold, 0, device)

    store = FileSystemArtifactStore(str(folder))
    models = []
    with tempfile.TemporaryDirectory() as tmp:
        for t, config in zip(trials, configs):
            path = os.path.join(tmp, f"trial-{t.number}.pt")
            try:
                download_artifact(artifact_store=store, file_path=path, artifact_id=t.weights_artifact)
            except Exception as exc:  # noqa: BLE001 - the store raises its own not-found type
                raise SweeperError(f"trial {t.number}: weights not found in {folder} ({type(exc).__name__}); "
                                   "pass the folder tune saved them to with --artifacts") from None
            model = build_model(config, data.num_classes)
            try:
                model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            except (RuntimeError, KeyError) as exc:
                raise SweeperError(f"trial {t.number}: its weights do not fit {config.arch}/{config.encoder}: "
                                   f"{one_line(exc, 200)}") from None
            memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
            models.append((model.to(device, memory_format=memory_format).eval(), config, memory_format))

    meters = [ConfusionMeter(data.num_classes) for _ in models]
    ensemble = ConfusionMeter(data.num_classes)
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    images = 0
    with torch.inference_mode():
        for batch, masks in val_loader:
            masks = masks.to(device)
            total = None
            for (model, config, memory_format), meter in zip(models, meters):
                amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp)
                with torch.autocast(device_type, dtype=amp, enabled=amp is not None):
                    logits = model(batch.to(device, memory_format=memory_format)).float()
                meter.update(logits.argmax(1), masks)
                probs = logits.softmax(1)
                total = probs if total is None else total + probs
            ensemble.update(total.argmax(1), masks)
            images += batch.shape[0]
    members = []
    for t, meter in zip(trials, meters):
        members.append(Member(trial=t.number, candidate=str(t.unit.candidate), seed=t.unit.seed, fold=t.unit.fold,
                              recorded_miou=_recorded(t), miou=meter.compute().miou))
    scores = ensemble.compute()
    result = EnsembleResult(members=members, miou=scores.miou, pixel_accuracy=scores.pixel_accuracy,
                            iou=list(scores.iou), class_names=data.class_names, images=images,
                            holdout=None if holdout is None else str(holdout[0]))
    for m in members:
        if holdout is None and not math.isnan(m.recorded_miou) and abs(m.miou - m.recorded_miou) > 1e-4:
            result.notes.append(f"trial {m.trial}: scores {m.miou:.4f} here but recorded {m.recorded_miou:.4f} "
                                "(another device or precision, or data that changed since)")
    return result


def _recorded(trial) -> float:
    """The trial's best-epoch mIoU, the epoch whose weights were saved."""
    history = trial.history or []
    best = trial.best_epoch
    if best is None or best >= len(history) or history[best].get("miou") is None:
        return math.nan
    return float(history[best]["miou"])
