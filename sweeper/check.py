"""The debug gate: a minute of cheap checks before a night of training.

Each check answers one question a competitor asks after losing a night to a bug: do the masks
hold the classes I think, does the pair build, can the model fit one batch at all (a wrong loss,
label or learning rate shows here), does the loss fall over real epochs, and does validation
produce a finite dataset-level mIoU. Checks run on a seeded subsample at small images.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from sweeper.errors import RunError, SweeperError
from sweeper.training import DataConfig, PreparedData, TrainConfig


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    seconds: float


def debug_config(config: TrainConfig, *, images: int = 32, epochs: int = 2, image_size: int = 64) -> TrainConfig:
    """``config`` shrunk for a debug run: a subsample of ``images``, few epochs, small images."""
    if images < 4:
        raise SweeperError(f"--n-images: need at least 4 images for a debug run, got {images}")
    if config.batch_size < 1:
        raise SweeperError(f"--batch-size: must be at least 1, got {config.batch_size}")
    data = replace(config.data, subsample=images)
    batch = max(2, min(config.batch_size, (images * 4 // 5) // 2))
    return replace(config, data=data, epochs=epochs, image_size=image_size, batch_size=batch)


def run_checks(config: TrainConfig, *, seed: int = 0, overfit_steps: int = 30, report=None) -> list[CheckResult]:
    """Run every check on ``config`` (already shrunk with :func:`debug_config`).

    ``report(result)`` is called as each check ends. A check that cannot run because an earlier
    one failed is reported as failed with the reason, so the list always has every check.
    """
    from sweeper.training import build_model, prepare_data, train_run, validate_config

    results: list[CheckResult] = []

    def record(name: str, passed: bool, detail: str, start: float) -> bool:
        result = CheckResult(name, passed, detail, time.perf_counter() - start)
        results.append(result)
        if report:
            report(result)
        return passed

    validate_config(config)
    start = time.perf_counter()
    data = prepare_data(config)
    fold = data.folds[config.fold]
    record("data loads", True, f"{len(fold.train_idx)} train / {len(fold.val_idx)} val images, "
           f"{data.num_classes} classes ({', '.join(data.class_names)})", start)

    start = time.perf_counter()
    masks_ok, detail = _check_masks(data, fold)
    record("masks are valid", masks_ok, detail, start)

    start = time.perf_counter()
    try:
        model = build_model(config, data.num_classes)
        params = sum(p.numel() for p in model.parameters())
        built = record("model builds", True, f"{config.arch}/{config.encoder}, {params / 1e6:.2f}M parameters", start)
    except RunError as exc:
        built = record("model builds", False, str(exc), start)

    start = time.perf_counter()
    if built:
        ok, detail = _overfit_one_batch(config, data, seed, overfit_steps)
        record("one batch can be over-fitted", ok, detail, start)
    else:
        record("one batch can be over-fitted", False, "skipped: the model does not build", start)

    start = time.perf_counter()
    if not built:
        record("training loss falls", False, "skipped: the model does not build", start)
        record("validation runs", False, "skipped: the model does not build", start)
        return results
    try:
        run = train_run(config, seed, data=data, progress=False)
    except RunError as exc:
        record("training loss falls", False, f"{exc.kind}: {exc}", start)
        record("validation runs", False, "skipped: training failed", start)
        return results
    losses = [h.train_loss for h in run.history]
    falls = len(losses) >= 2 and losses[-1] < losses[0]
    record("training loss falls", falls, " -> ".join(f"{v:.4f}" for v in losses) + f" over {len(losses)} epochs", start)
    last = run.history[-1]
    finite = math.isfinite(last.miou) and 0.0 <= last.miou <= 1.0 and math.isfinite(last.val_loss)
    present = sum(1 for v in last.iou if not math.isnan(v))
    record("validation runs", finite,
           f"val loss {last.val_loss:.4f}, mIoU {last.miou:.4f} over {present} classes present, "
           f"pixel accuracy {last.pixel_accuracy:.4f}", start)
    return results


def _check_masks(data: PreparedData, fold) -> tuple[bool, str]:
    import numpy as np

    from sweeper.data import check_masks

    totals = np.zeros(data.num_classes, dtype=np.int64)
    for store, indices in ((fold.train_data, fold.train_idx), (fold.val_data, fold.val_idx)):
        for i in indices:
            mask = store.read_mask(int(i))
            try:
                totals += np.bincount(np.asarray(mask, dtype=np.int64).ravel(),
                                      minlength=data.num_classes)[: data.num_classes]
                check_masks(mask, data.num_classes,
                            source=f"{store.annotation_file} image {store.images[int(i)].image_id}")
            except SweeperError as exc:
                if "every pixel is background" in str(exc):
                    continue  # one empty image is normal; an empty subsample is checked below
                return False, str(exc)
    if totals[1:].sum() == 0:
        return False, "every pixel of the subsample is background: check the category mapping"
    missing = [data.class_names[k] for k in range(1, data.num_classes) if totals[k] == 0]
    share = totals / totals.sum()
    detail = "values in 0.." + str(data.num_classes - 1) + "; pixel share " + ", ".join(
        f"{name} {s:.1%}" for name, s in zip(data.class_names, share))
    if missing:
        detail += f"; not in this subsample: {', '.join(missing)}"
    return True, detail


def _overfit_one_batch(config: TrainConfig, data: PreparedData, seed: int, steps: int) -> tuple[bool, str]:
    """Train on one fixed batch with lr 1e-3; the loss must fall below half its start."""
    import torch

    from sweeper.seeding import seed_everything
    from sweeper.training import build_loss, build_model, make_loaders, resolve_device

    device = resolve_device(config.device)
    seed_everything(seed)
    model = build_model(config, data.num_classes).to(device)
    _, loader, _ = make_loaders(replace(config, num_workers=0), data.folds[config.fold], seed, device)
    images, masks = next(iter(loader))
    images, masks = images.to(device), masks.to(device)
    criterion = build_loss(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(steps):
        loss = criterion(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    if not all(math.isfinite(v) for v in losses):
        return False, f"loss became non-finite: {losses[-1]}"
    ok = losses[-1] < 0.5 * losses[0]
    return ok, f"loss {losses[0]:.4f} -> {losses[-1]:.4f} in {steps} steps on one batch of {images.shape[0]}" + (
        "" if ok else " (expected below half: check the labels, the loss and the learning rate)")


__all__ = ["CheckResult", "DataConfig", "debug_config", "run_checks"]
