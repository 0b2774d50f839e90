"""Data time per epoch on the demo dataset: masks rasterised every time vs the PNG mask cache.

Runs one DataLoader epoch (decode JPEG + get mask + default train augmentation + collate) in
three conditions, each on a fresh cache folder:

- ``no_cache``: ``load_coco(..., cache_masks=False)``, masks rasterised on every access;
- ``cold``: the first epoch with the cache on (rasterise + write one PNG per image);
- ``warm``: later epochs, masks read from the cache.

It also times the mask step alone (rasterise vs read a cached mask), where the cache's effect is
not diluted by JPEG decoding and augmentation. Figures are the best (minimum) of ``--repeats``
interleaved runs: on a shared machine the minimum is the least disturbed estimate. Not a test:
numbers depend on the machine.

    python benchmarks/data.py [--images 240] [--size 128] [--workers 0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def epoch_seconds(data, transform, workers: int, batch: int) -> float:
    from torch.utils.data import DataLoader

    from sweeper.data import SegmentationDataset

    loader = DataLoader(
        SegmentationDataset(data, transform=transform), batch_size=batch, num_workers=workers
    )
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--size", type=int, default=128, help="demo image side, pixels")
    parser.add_argument(
        "--train-size", type=int, default=None, help="Resize target (default: --size)"
    )
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    # One intra-op thread, as in DataLoader workers. With 2 threads and 0 workers the default
    # collate (torch.stack of small tensors) measured 1-2 s per epoch instead of 0.3 s on a
    # busy 2-core machine: OpenMP threads waiting for a descheduled sibling.
    torch.set_num_threads(1)
    from sweeper.augment import build_transforms
    from sweeper.data import load_coco
    from sweeper.demo import write_demo_dataset

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SWEEPER_CACHE_DIR"] = str(Path(tmp) / "cache")
        t0 = time.perf_counter()
        paths = write_demo_dataset(Path(tmp) / "demo", n_images=args.images, size=args.size)
        gen_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        load_coco(*paths, cache_masks=False)
        load_s = time.perf_counter() - t0
        train, _ = build_transforms(size=args.train_size or args.size)

        no_cache, cold, warm = [], [], []
        for r in range(args.repeats):
            os.environ["SWEEPER_CACHE_DIR"] = str(Path(tmp) / f"cache{r}")
            uncached = load_coco(*paths, cache_masks=False)
            no_cache.append(epoch_seconds(uncached, train, args.workers, args.batch))
            cached = load_coco(*paths)
            cold.append(epoch_seconds(cached, train, args.workers, args.batch))
            warm.append(epoch_seconds(cached, train, args.workers, args.batch))

        n = len(uncached)
        raster = min(_per_call(uncached.rasterise, n) for _ in range(args.repeats))
        read = min(_per_call(cached.read_mask, n) for _ in range(args.repeats))
        decode = min(_per_call(cached.read_image, n) for _ in range(args.repeats))

    best = min
    print(
        f"demo: {args.images} images at {args.size} px, "
        f"train size {args.train_size or args.size}, "
        f"batch {args.batch}, {args.workers} workers, best of {args.repeats}"
    )
    print(f"generate demo: {gen_s:.2f} s; load_coco (validate + headers): {load_s * 1e3:.0f} ms")
    print(f"{'condition':<10} {'epoch_s':>8} {'per_image_ms':>13}")
    for name, runs in (("no_cache", no_cache), ("cold", cold), ("warm", warm)):
        print(f"{name:<10} {best(runs):>8.3f} {best(runs) / n * 1e3:>13.2f}")
    print(f"ratio no_cache / warm epoch: {best(no_cache) / best(warm):.2f}x")
    print(f"ratio cold / warm epoch:     {best(cold) / best(warm):.2f}x")
    print(
        f"mask step alone: rasterise {raster * 1e3:.3f} ms, cached read {read * 1e3:.3f} ms "
        f"({raster / read:.2f}x); image decode {decode * 1e3:.3f} ms"
    )


def _per_call(fn, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n


if __name__ == "__main__":
    main()
