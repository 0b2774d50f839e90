"""How long `sweeper zoo` takes, cold and cached, against building the same pairs for real.

    python benchmarks/zoo.py            # sample of real builds, extrapolated
    python benchmarks/zoo.py --full     # time every real build too (about 10 minutes on 2 cores)

"cold" and "cached" run the real CLI in a subprocess with a fresh SWEEPER_CACHE_DIR, so they
include interpreter start-up and the torch/smp import. "real CPU builds" is the plain
alternative: `smp.create_model(..., encoder_weights=None)` on CPU and a parameter count, the way
smp's own encoder table is made. The real builds are timed on a seeded sample of pairs and
extrapolated to the whole set (mean seconds per pair x pairs), unless --full.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], cache: str) -> tuple[float, str]:
    env = dict(os.environ, SWEEPER_CACHE_DIR=cache, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sweeper.cli", "zoo", *args, "--format", "json"],
        env=env, capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return time.perf_counter() - start, proc.stdout


def import_seconds() -> float:
    """The floor under any cold run: a fresh interpreter importing smp (and so torch and timm)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import segmentation_models_pytorch"], env=env, check=True, cwd=ROOT)
    return time.perf_counter() - start


def real_build_seconds(pairs: list[tuple[str, str]]) -> list[float]:
    warnings.simplefilter("ignore")
    import segmentation_models_pytorch as smp

    times = []
    for arch, encoder in pairs:
        start = time.perf_counter()
        model = smp.create_model(arch, encoder_name=encoder, encoder_weights=None, classes=12)
        sum(p.numel() for p in model.parameters())
        times.append(time.perf_counter() - start)
        del model
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="time every real build instead of a sample")
    parser.add_argument("--sample", type=int, default=40, help="real builds to time per scenario (default 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deprecated", action="store_true",
                        help="include smp's deprecated timm-* aliases (the zoo's --deprecated)")
    args = parser.parse_args()

    extra = ["--deprecated"] if args.deprecated else []
    scenarios = [("--max-params 50M", ["--max-params", "50M", *extra]), ("whole native catalogue", extra)]
    floor = min(import_seconds() for _ in range(3))
    rows = []
    for label, cli_args in scenarios:
        with tempfile.TemporaryDirectory() as cache:
            cold, out = run_cli(cli_args, cache)
            cached = min(run_cli(cli_args, cache)[0] for _ in range(3))
        pairs = [(r["arch"], r["encoder"]) for r in json.loads(out)]
        sample = pairs if args.full else random.Random(args.seed).sample(pairs, min(args.sample, len(pairs)))
        real = real_build_seconds(sample)
        real_total = statistics.fmean(real) * len(pairs)
        rows.append((label, len(pairs), cold, cached, real_total, len(sample)))

    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}")
    header = (f"{'scenario':<24} {'pairs':>6} {'cold s':>8} {'cached s':>9} {'real CPU s':>11} {'timed':>6} "
              f"{'real/cold':>10} {'real/cached':>12}")
    print(header)
    print("-" * len(header))
    for label, n, cold, cached, real_total, timed in rows:
        note = "" if timed == n else f" (extrapolated from {timed})"
        print(f"{label:<24} {n:>6} {cold:>8.1f} {cached:>9.2f} {real_total:>11.1f} {timed:>6} "
              f"{real_total / cold:>9.1f}x {real_total / cached:>11.0f}x{note}")
    print("pairs = buildable pairs that the command lists; cold includes the torch/smp import "
          f"({floor:.1f} s here, best of 3).")


if __name__ == "__main__":
    main()
