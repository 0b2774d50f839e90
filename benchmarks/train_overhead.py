"""Training throughput of `sweeper.training.train_run` against a minimal hand-written smp loop.

    python benchmarks/train_overhead.py [--arch unet] [--encoder resnet18] [--image-size 128]
        [--batch-size 8] [--images 96] [--epochs 2] [--rounds 5] [--device auto] [--threads N]

Both sides train the same model on the same data with the same seed, in one process, alternated
ours, plain, ours, plain... (``--rounds`` of each) after one untimed warm-up epoch of the plain
loop (it fills the page cache and the mask cache and warms the kernels). Each side builds a
fresh model every round. Not a test: it prints figures, and on a shared machine only the ratio
means much. Another busy process on a 2-core machine slows torch's default 2 threads several
times over (measured here: 2.8 against 14 images/s with 1 thread); ``--threads 1`` suffers far
less.

What is the same on both sides: the demo data (``prepare_data``, fold 0, ``--images`` training
images); ``SegmentationDataset`` with the default recipe's train transforms at ``--image-size``
and ``set_epoch(epoch)`` before each epoch; a ``DataLoader`` with the same batch size,
``shuffle=True`` from ``make_generator(seed)``, ``drop_last=True``, ``num_workers`` (train_run's
rule: 0 on CPU, ``min(4, cores)`` on CUDA, passed explicitly to both), ``pin_memory`` on CUDA and
``worker_init_fn``; the model (``smp.create_model(arch, encoder, encoder_weights=None)``, seeded
with ``seed_everything(seed)`` first), Adam with lr 1e-4 and weight decay 1e-6, and
``CrossEntropyLoss``. The plain side writes these out by hand instead of calling train_run's
builders; the check line at the end compares the epoch train losses of the two sides, which
agree when both did the same work.

What is timed, per epoch, on both sides (``time.perf_counter``), and summed over the epochs of a
run: from just before ``model.train()``, ``set_epoch`` and the creation of the loader's iterator
to the end of the last training step, plus one device sync on CUDA (train_run's ``isfinite``
check of the running loss syncs there; the plain loop calls ``torch.cuda.synchronize``).
Validation, model building, data loading before the run, and everything after the last epoch
are not timed. images/s = training images seen (steps x batch size) / that time; this is what
``RunResult.images_per_s`` reports, so the "ours" figure is read from train_run's result.

What train_run does in that window and the plain loop does not: ``torch.autocast(enabled=False)``
around the forward, ``logits.float()`` (a no-op for float32), a disabled ``GradScaler``
(``scale``/``step``/``update``), an ``isfinite`` check of the running loss every step on CPU
(every 25 on CUDA), and the progress bar's ``step()`` (bars are off here: ``progress=False``).
Both sides accumulate the loss on the device (``running += loss.detach()``).

images/s columns: median, min and max over rounds. The ratio is median(ours) / median(plain);
the goal is >= 0.97. The per-round ratios pair each "ours" round with the "plain" round after it.
Even on a quiet 2-core machine they spread over about +-10% (0.86 to 1.11 measured at the
defaults), so a few-percent difference needs more rounds before it means anything.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL = 0.97


def subsample_for(train_images: int) -> int:
    """The ``DataConfig.subsample`` that leaves ``train_images`` training images
    (see sweeper.training.loaders._subsample)."""
    n = train_images
    while n - max(2, n // 5) < train_images:
        n += 1
    return n


def plain_run(config, fold, num_classes: int, seed: int, device: str) -> tuple[float, list[float]]:
    """Train like a minimal smp script; returns (training images/s, mean train loss per epoch)."""
    import torch
    from torch.utils.data import DataLoader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import segmentation_models_pytorch as smp

    from sweeper.augment import build_transforms
    from sweeper.data import SegmentationDataset
    from sweeper.seeding import make_generator, seed_everything, worker_init_fn

    seed_everything(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smp.create_model(config.arch, encoder_name=config.encoder, encoder_weights=None,
                                 classes=num_classes, in_channels=3)
    model = model.to(device)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-6)
    seed_everything(seed)
    train_tf, _ = build_transforms(None, size=config.image_size)
    dataset = SegmentationDataset(fold.train_data, fold.train_idx, train_tf, seed=seed)
    loader = DataLoader(
        dataset, batch_size=config.batch_size, shuffle=True, drop_last=True,
        num_workers=config.num_workers, pin_memory=device.startswith("cuda"),
        worker_init_fn=worker_init_fn, generator=make_generator(seed),
    )
    cuda = device.startswith("cuda")
    images_seen, seconds, losses = 0, 0.0, []
    for epoch in range(config.epochs):
        start = time.perf_counter()
        model.train()
        dataset.set_epoch(epoch)
        running = torch.zeros((), device=device)
        steps = 0
        for images, masks in loader:
            images = images.to(device, non_blocking=True)
            masks = masks.to(device, non_blocking=True)
            loss = criterion(model(images), masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.detach()
            steps += 1
            images_seen += images.shape[0]
        if cuda:
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - start
        losses.append(float(running.item()) / max(steps, 1))
    return images_seen / seconds, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--image-size", type=int, default=128, help="pixels, square (default 128)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--images", type=int, default=96, help="training images (default 96)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each side (default 5)")
    parser.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda, cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice); 1 is steadier on a busy machine")
    args = parser.parse_args()

    wall = time.perf_counter()
    import torch

    from sweeper.training import DataConfig, TrainConfig, prepare_data, resolve_device, train_run

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    workers = 0 if device == "cpu" else min(4, os.cpu_count() or 1)
    config = TrainConfig(
        arch=args.arch, encoder=args.encoder, image_size=args.image_size,
        batch_size=args.batch_size, epochs=args.epochs, device=device, num_workers=workers,
        data=DataConfig(subsample=subsample_for(args.images)),
    )
    data = prepare_data(config)
    fold = data.folds[config.fold]
    n_train = len(fold.train_idx)
    steps = n_train // config.batch_size

    print(f"torch {torch.__version__}  device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.startswith("cuda") else "")
          + f"  threads {torch.get_num_threads()}  cores {os.cpu_count()}")
    print(f"{config.arch}/{config.encoder}  {config.image_size} px  batch {config.batch_size}  "
          f"{n_train} training images ({steps} steps/epoch)  {config.epochs} epochs  "
          f"{args.rounds} rounds each  workers {workers}  seed {args.seed}")

    plain_run(replace(config, epochs=1), fold, data.num_classes, args.seed, device)

    ours, plain = [], []
    ours_losses, plain_losses = [], []
    for _ in range(args.rounds):
        gc.collect()
        result = train_run(config, args.seed, data=data, progress=False)
        ours.append(result.images_per_s)
        ours_losses = [m.train_loss for m in result.history]
        del result
        gc.collect()
        rate, plain_losses = plain_run(config, fold, data.num_classes, args.seed, device)
        plain.append(rate)

    print()
    header = f"{'side':<6} {'median img/s':>13} {'min':>8} {'max':>8}"
    print(header)
    print("-" * len(header))
    for name, rates in (("ours", ours), ("plain", plain)):
        print(f"{name:<6} {statistics.median(rates):>13.2f} {min(rates):>8.2f} {max(rates):>8.2f}")
    ratio = statistics.median(ours) / statistics.median(plain)
    verdict = "met" if ratio >= GOAL else "NOT met"
    print(f"ratio ours/plain (medians): {ratio:.3f}   goal >= {GOAL}: {verdict}")
    print("per-round ratios: " + " ".join(f"{o / p:.3f}" for o, p in zip(ours, plain)))
    diff = max(abs(a - b) for a, b in zip(ours_losses, plain_losses))
    print("same work: epoch train losses ours " + " ".join(f"{x:.6f}" for x in ours_losses)
          + " | plain " + " ".join(f"{x:.6f}" for x in plain_losses) + f"  (max |diff| {diff:.2e})")
    print(f"total {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
