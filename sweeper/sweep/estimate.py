"""How long a tune would take: a timing model calibrated by a few training steps on this device.

A run's seconds (what a trial records as ``wall_time_s``) are modelled as

    run_s = setup_s + build_s_per_param * params + epochs * epoch_s
    epoch_s = steps * step_s + val_batches * eval_fixed_s + val_images * (eval_image_s + data_val_s)
              + epoch_overhead_s
    step_s = fixed_s + batch * (train_image_s + data_train_s) + optimizer_s_per_param * params

with ``steps = train_images // batch`` (the last partial batch is dropped). With DataLoader
workers (CUDA's default) the data of a batch is prepared while the device computes, so a step
costs the larger of the two instead of their sum. ``fixed_s`` is the part of a step that does
not grow with the batch (kernel launches, Python); ``train_image_s`` and ``eval_image_s`` (one
image's share of a training step and of an inference forward) come from the zoo's GFLOPs (one
forward of one image at the space's size): ``k * gflops``, where the seconds per GFLOP ``k`` are
measured for each screened pair that a *probe* timed, and modelled for the others: on a CPU a
depthwise MobileNet or EfficientNet does several times fewer FLOPs per second than a ResNet,
and a heavy decoder (UPerNet, DeepLabV3) more, so ``log k = a[arch] + f[family]``, fitted by
least squares to the probes. Probes go in an order that links every architecture and every
encoder family of the screen first (:func:`choose_probes`), so that a time budget that stops
them early still leaves the model determined for every pair.

A probe trains its pair on random tensors with the recipe's loss and optimizer at a batch of 8
and at a batch of 2 (the line through the two separates ``fixed_s`` from the cost per image),
one warm-up step then two timed ones at 8 (the faster counts: a shared machine's spikes are
rarer than its steady load; one when the first were slow), and times inference forwards the
same way. Where the recipe's size would make a probe slow, it runs at a smaller size (down to
64 px), then a batch of 4, and its cost per image is scaled by the pixels (GFLOPs). Measured
on 2 idle CPU cores, a 64 px probe predicted the 256 px, batch 8 step of five pairs of
``zoo-50m`` within 15% this way (a plain GFLOPs scaling of the batch-2 step was 3-5 times high:
at 64 px most of a small step is its fixed part).

``method="pairs"`` probes every screened pair at the recipe's own batch and size, with no time
budget (slower, but nothing is scaled). Everything but :func:`calibrate` is pure arithmetic over the
fitted numbers, testable without torch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

#: Seconds of sweeper's own work per unit on SQLite (claim, records, per-epoch reports, the final
#: garbage collection), on top of the run's wall time: 0.47 s on average over the 15 units of a
#: ``sweeper tune`` of the demo space (trial duration minus ``wall_time_s``, plus the gap to the
#: next trial; SQLite in WAL mode).
UNIT_OVERHEAD_S = 0.5
#: Seconds of a run's setup besides building the model: seeding, loaders, the versions record.
RUN_SETUP_S = 0.1
#: The estimate methods: ``flops`` (probes scaled by GFLOPs), ``pairs`` (every screened pair
#: probed at the recipe's batch and size), ``none`` (no timing at all).
METHODS = ("flops", "pairs", "none")
#: Forward GFLOPs of one batch that all probes together may cost, shared among them, and the
#: least and most one probe may have (a probe above its share runs reduced, see
#: :func:`probe_config`): on 2 CPU cores 36 GFLOPs is about 3 s of training steps in all.
PROBE_GFLOPS = {"cpu": (36.0, 1.0, 6.0), "cuda": (3600.0, 100.0, 600.0)}
#: The smallest probe size (smp encoders downsample 32 times; PAN needs more, see ``_probe``).
PROBE_MIN_SIZE = 64
#: The batch of a probe (``flops``; ``pairs`` use the recipe's), and the small batch timed beside
#: it to separate a step's fixed cost from its cost per image (2: BatchNorm needs two).
PROBE_BATCH = 8
SMALL_BATCH = 2
#: Seconds of probing after which the remaining probes are skipped (see :meth:`CostModel.k` for
#: what their pairs get): with the imports, ``plan --space zoo-50m`` stays within 15 s.
PROBE_BUDGET_S = {"flops": 6.0, "pairs": math.inf}
#: Timed training steps of a probe after its warm-up (the faster counts), unless the first steps
#: together took more than ``SLOW_PROBE_S`` seconds (a busy machine): then one is enough.
TIMED_STEPS = 2
SLOW_PROBE_S = 1.5
#: The ``error`` of a probe left out by the time budget.
SKIPPED = "skipped: time budget"


def family(encoder: str) -> str:
    """The encoder's family (``resnet``, ``mobilenet``, ``efficientnet``...), as the zoo's order
    spreads them."""
    from sweeper.zoo.order import encoder_family

    return encoder_family(encoder)


@dataclass(frozen=True)
class Probe:
    """One timed pair at ``image_size``, whose forward costs ``gflops`` per image there: the best
    seconds of a training step (optimizer included) and of an inference forward, each at two
    batch sizes, ``batch_size`` and ``small_batch``, which separate the fixed cost of a step
    (kernel launches, Python, the optimizer) from the cost per image. ``error`` is set, and the
    times are NaN, when the pair could not be timed (it does not run at that size...)."""

    arch: str
    encoder: str
    image_size: int
    batch_size: int
    gflops: float
    params: int
    small_batch: int = 2
    build_s: float = math.nan
    step_s: float = math.nan
    small_step_s: float = math.nan
    optimizer_s: float = math.nan
    eval_s: float = math.nan
    small_eval_s: float = math.nan
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and math.isfinite(self.step_s) and self.gflops > 0

    def _split(self, large: float, small: float) -> tuple[float, float]:
        """``(fixed seconds, seconds per image)`` of the line through the two batch sizes' times;
        the fixed part is kept within [0, the small batch's time] (timing noise can tilt the line)."""
        if not math.isfinite(small) or self.small_batch >= self.batch_size:
            return 0.0, large / self.batch_size
        per_image = (large - small) / (self.batch_size - self.small_batch)
        fixed = min(max(small - self.small_batch * per_image, 0.0), small)
        return fixed, max(large - fixed, 1e-9) / self.batch_size

    def _train(self) -> tuple[float, float]:
        """The training step's split, the optimizer's seconds (the same at both batches) taken out."""
        return self._split(self.step_s - self.optimizer_s, self.small_step_s - self.optimizer_s)

    @property
    def train_fixed_s(self) -> float:
        """Seconds of a training step that do not grow with the batch, the optimizer excluded."""
        return self._train()[0]

    @property
    def eval_fixed_s(self) -> float:
        """Seconds of an inference forward that do not grow with the batch."""
        return self._split(self.eval_s, self.small_eval_s)[0]

    @property
    def train_k(self) -> float:
        """Seconds per forward GFLOP of one image in a training step, beyond the fixed part."""
        return self._train()[1] / self.gflops

    @property
    def eval_k(self) -> float:
        """Seconds per forward GFLOP of one image in an inference forward, beyond the fixed part."""
        return self._split(self.eval_s, self.small_eval_s)[1] / self.gflops


@dataclass(frozen=True)
class CostModel:
    """The fitted numbers of the model in the module's docstring (seconds; per image unless named
    per step, per epoch or per run). ``images`` maps each fold to its (train, val) image counts.

    ``pair_k`` holds the ``(train, eval)`` seconds per GFLOP the probes measured, by
    ``arch/encoder``, and ``pair_fixed_s`` their fixed seconds per training step and per inference
    batch. A pair not timed takes ``exp(a[arch] + f[family])`` from ``arch_log_k`` and
    ``family_log_k`` (a name missing from one of them takes that one's mean; a pair with neither
    known takes ``default_k``), and the probes' median fixed seconds, ``default_fixed_s``.
    """

    method: str
    device: str
    batch_size: int
    images: dict[int, tuple[int, int]]
    workers: int = 0
    arch_log_k: dict[str, tuple[float, float]] = field(default_factory=dict)
    family_log_k: dict[str, tuple[float, float]] = field(default_factory=dict)
    pair_k: dict[str, tuple[float, float]] = field(default_factory=dict)
    default_k: tuple[float, float] = (0.03, 0.01)
    pair_fixed_s: dict[str, tuple[float, float]] = field(default_factory=dict)
    default_fixed_s: tuple[float, float] = (0.0, 0.0)
    #: The optimizer's seconds per step that the probes measured (it updates only parameters
    #: with gradients: PSPNet leaves the last encoder stages unused); others: per parameter.
    pair_optimizer_s: dict[str, float] = field(default_factory=dict)
    optimizer_s_per_param: float = 0.0
    build_s_per_param: float = 0.0
    data_train_s: float = 0.0
    data_val_s: float = 0.0
    epoch_overhead_s: float = 0.0
    setup_s: float = RUN_SETUP_S
    unit_overhead_s: float = UNIT_OVERHEAD_S
    probes: tuple[Probe, ...] = ()
    calibration_s: float = 0.0
    #: The machine's 1-minute load average and cores while the probes ran (None where unknown):
    #: a load above the cores means other processes shared them, and the times read slow.
    load: tuple[float, int] | None = None

    # -- per image
    def k(self, arch: str, encoder: str) -> tuple[float, float]:
        """``(train, eval)`` seconds per forward GFLOP of one image for this pair."""
        pair = f"{arch}/{encoder}"
        if pair in self.pair_k:
            return self.pair_k[pair]
        a, f = self.arch_log_k.get(arch), self.family_log_k.get(family(encoder))
        if a is None and f is None:
            return self.default_k
        a = a or _mean_pair(self.arch_log_k.values())  # an untimed architecture or family: the mean one
        f = f or _mean_pair(self.family_log_k.values())
        return math.exp(a[0] + f[0]), math.exp(a[1] + f[1])

    def fixed_s(self, c) -> tuple[float, float]:
        """``(train step, inference batch)`` seconds that do not grow with the batch."""
        return self.pair_fixed_s.get(f"{c.arch}/{c.encoder}", self.default_fixed_s)

    def train_image_s(self, c) -> float:
        return self.k(c.arch, c.encoder)[0] * c.gflops

    def eval_image_s(self, c) -> float:
        return self.k(c.arch, c.encoder)[1] * c.gflops

    # -- per step, epoch, run
    def step_s(self, c) -> float:
        """One training step of the recipe's batch: compute, optimizer and (without workers) data."""
        optimizer = self.pair_optimizer_s.get(f"{c.arch}/{c.encoder}", self.optimizer_s_per_param * c.params)
        compute = self.fixed_s(c)[0] + self.batch_size * self.train_image_s(c) + optimizer
        data = self.batch_size * self.data_train_s
        return max(compute, data / self.workers) if self.workers else compute + data

    def epoch_s(self, c, fold: int | None = None) -> float:
        """One epoch: the training steps, then the validation pass over every val image."""
        n_train, n_val = self._images(fold)
        batches = -(-n_val // self.batch_size)
        val_compute = batches * self.fixed_s(c)[1] + n_val * self.eval_image_s(c)
        val_data = n_val * self.data_val_s
        val = max(val_compute, val_data / self.workers) if self.workers else val_compute + val_data
        return (n_train // self.batch_size) * self.step_s(c) + val + self.epoch_overhead_s

    def run_s(self, c, epochs: int, fold: int | None = None) -> float:
        """A run's wall time, as a trial records it in ``wall_time_s``."""
        return self.setup_s + self.build_s_per_param * c.params + epochs * self.epoch_s(c, fold)

    def unit_s(self, c, epochs: int, fold: int | None = None) -> float:
        """A unit's share of the sweep's clock: its run and sweeper's own work around it."""
        return self.run_s(c, epochs, fold) + self.unit_overhead_s

    def _images(self, fold: int | None) -> tuple[int, int]:
        if fold in self.images:
            return self.images[fold]
        counts = list(self.images.values()) or [(0, 0)]
        return (round(sum(t for t, _ in counts) / len(counts)), round(sum(v for _, v in counts) / len(counts)))

    def describe(self) -> str:
        """One line saying how the estimate was made."""
        ok = [p for p in self.probes if p.ok]
        skipped = sum(p.error == SKIPPED for p in self.probes)
        failed = len(self.probes) - len(ok) - skipped
        sizes = sorted({p.image_size for p in ok})
        batches = sorted({p.batch_size for p in ok})
        at = (f"{sizes[0]}-{sizes[-1]}" if len(sizes) > 1 else f"{sizes[0]}") + " px, batch " + (
            f"{batches[0]}-{batches[-1]}" if len(batches) > 1 else f"{batches[0]}") if ok else ""
        if self.method == "pairs":
            how = f"{len(ok)} screened pair(s) timed on {self.device} at the recipe's batch and size"
        else:
            how = (f"{len(ok)} of {len(self.probes)} screened pair(s) timed on {self.device} ({at}) and scaled by "
                   "GFLOPs x images")
        left = len(self.probes) - len(ok)
        extra = f"; the other {left} modelled by architecture x encoder family" if left else ""
        if skipped:
            extra += f" ({skipped} left out by the {PROBE_BUDGET_S[self.method]:.0f} s time budget)"
        if failed:
            extra += f"; {failed} probe(s) failed"
        return f"{how}, in {self.calibration_s:.1f} s{extra}"


def _mean_pair(values: Iterable[tuple[float, float]]) -> tuple[float, float]:
    values = list(values)
    return sum(v[0] for v in values) / len(values), sum(v[1] for v in values) / len(values)


# --------------------------------------------------------------------------- fitting


def fit_log_k(probes: Iterable[Probe]) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
    """``(arch_log_k, family_log_k)``: least squares of ``log k = a[arch] + f[family]`` over the
    probes that ran, for training and for inference alike. The split between ``a`` and ``f`` is
    arbitrary (the minimum-norm solution); only their sums, for pairs linked by probes, mean
    anything."""
    import numpy as np

    ok = [p for p in probes if p.ok]
    if not ok:
        return {}, {}
    archs = sorted({p.arch for p in ok})
    fams = sorted({family(p.encoder) for p in ok})
    design = np.zeros((len(ok), len(archs) + len(fams)))
    for row, p in enumerate(ok):
        design[row, archs.index(p.arch)] = 1.0
        design[row, len(archs) + fams.index(family(p.encoder))] = 1.0
    targets = np.log([[p.train_k, p.eval_k] for p in ok])
    solution = np.linalg.lstsq(design, targets, rcond=None)[0]
    arch_k = {a: (float(solution[i, 0]), float(solution[i, 1])) for i, a in enumerate(archs)}
    fam_k = {f: (float(solution[len(archs) + i, 0]), float(solution[len(archs) + i, 1])) for i, f in enumerate(fams)}
    return arch_k, fam_k


def choose_probes(needed: Sequence) -> list:
    """The screened pairs in the order they are timed: first a set that links every architecture
    and every encoder family of ``needed`` to the others (Kruskal's spanning forest over the
    (architecture, family) graph, cheapest GFLOPs first), then the others, cheapest first.

    A time budget may stop the probes anywhere after the first: the spanning set first makes
    ``a[arch] + f[family]`` known for as many untimed pairs as possible (every needed pair is an
    edge of that graph, so its architecture and family end in one tree).
    """
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    edges = sorted({(c.arch, c.encoder): c for c in needed if c.gflops}.values(),
                   key=lambda c: (c.gflops, c.arch, c.encoder))
    spanning, rest = [], []
    for c in edges:
        a, f = root("a:" + c.arch), root("f:" + family(c.encoder))
        if a != f:
            parent[a] = f
            spanning.append(c)
        else:
            rest.append(c)
    return spanning + rest


def probe_config(gflops: float, image_size: int, batch_size: int, budget_gflops: float) -> tuple[int, int]:
    """``(size, batch)`` of a probe: ``batch_size`` at the recipe's size, else a smaller size
    (multiples of 32, down to :data:`PROBE_MIN_SIZE`), then a smaller batch (down to 4, twice the
    small batch), until one batch's forward costs at most ``budget_gflops`` (``gflops`` is one
    image at ``image_size``). The size goes first: a step's time scales with its pixels, while a
    smaller batch leaves the fixed cost of a step a larger share to separate."""
    size, batch = image_size, batch_size

    def cost(s: int, b: int) -> float:
        return b * gflops * (s / image_size) ** 2

    while size - 32 >= min(PROBE_MIN_SIZE, image_size) and cost(size, batch) > budget_gflops:
        size -= 32
    while batch > 2 * SMALL_BATCH and cost(size, batch) > budget_gflops:
        batch = max(2 * SMALL_BATCH, batch // 2)
    return size, batch


# --------------------------------------------------------------------------- measuring


def calibrate(space, data, *, screened: Sequence, method: str = "flops", device: str | None = None) -> CostModel:
    """Time probes of the ``screened`` pairs (zoo candidates) on ``device`` (default: the
    space's) and fit the model, within :data:`PROBE_BUDGET_S`.

    Checked on 2 CPU cores (load about 1) against real runs of the demo space's six pairs
    (``train_run``, 2 epochs at 64 px, batch 8; every pair probed, in 5.3 s): estimate / actual
    0.91-1.05 per run (mean error 5%), 32.0 against 32.7 s in total. Against real 256 px, batch 8
    training steps of ``zoo-50m`` pairs: 0.75-1.08 for probed pairs, 0.53-2.0 for pairs modelled
    by architecture x family. On a machine other processes share, every figure is as noisy as
    the machine (the probes last a second or so; a run averages over minutes).

    Nothing is written anywhere: probes train on random tensors, and only the first training
    images of fold 0 are read to time the data pipeline.
    """
    from sweeper.training.config import resolve_device

    start = time.perf_counter()
    device = resolve_device(device or space.base.device)
    images = {f.index: (len(f.train_idx), len(f.val_idx)) for f in data.folds}
    workers = space.base.num_workers
    if workers is None:  # make_loaders' rule
        import os

        workers = 0 if device == "cpu" else min(4, os.cpu_count() or 1)
    model = CostModel(method=method, device=device, batch_size=space.base.batch_size, images=images, workers=workers)
    if method == "none":
        return model
    kind = "cuda" if device.startswith("cuda") else "cpu"
    size, batch = space.base.image_size, space.base.batch_size
    chosen = choose_probes(screened)
    if method == "pairs":
        plan = [(c, size, batch) for c in chosen]
    else:
        total, least, most = PROBE_GFLOPS[kind]
        share = min(most, max(least, total / max(len(chosen), 1)))
        plan = [(c, *probe_config(c.gflops, size, PROBE_BATCH, share)) for c in chosen]
    _warm_up(device)
    probing = time.perf_counter()  # the budget counts probes only, not smp's import
    probes = []
    for c, s, b in plan:
        if time.perf_counter() - probing > PROBE_BUDGET_S[method]:
            probes.append(Probe(c.arch, c.encoder, s, b, c.gflops * (s / size) ** 2, c.params, error=SKIPPED))
            continue
        probes.append(_probe(space.base, c, s, b, data.num_classes, device))
    data_train_s, data_val_s, epoch_overhead_s = _time_data(space.base, data.folds[0], workers)
    ok = [p for p in probes if p.ok]
    arch_k, fam_k = fit_log_k(ok)
    default = (_median([p.train_k for p in ok]), _median([p.eval_k for p in ok])) if ok else model.default_k
    pair_k = {f"{p.arch}/{p.encoder}": (p.train_k, p.eval_k) for p in ok}
    fixed = {f"{p.arch}/{p.encoder}": (p.train_fixed_s, p.eval_fixed_s) for p in ok}
    default_fixed = (_median([f for f, _ in fixed.values()]), _median([f for _, f in fixed.values()]))
    return replace(
        model, arch_log_k=arch_k, family_log_k=fam_k, pair_k=pair_k, default_k=default, pair_fixed_s=fixed,
        default_fixed_s=default_fixed, pair_optimizer_s={f"{p.arch}/{p.encoder}": p.optimizer_s for p in ok},
        optimizer_s_per_param=_median([p.optimizer_s / p.params for p in ok]) if ok else 0.0,
        build_s_per_param=_median([p.build_s / p.params for p in ok]) if ok else 0.0,
        data_train_s=data_train_s, data_val_s=data_val_s, epoch_overhead_s=epoch_overhead_s,
        probes=tuple(probes), calibration_s=time.perf_counter() - start, load=_load(),
    )


def _load() -> tuple[float, int] | None:
    import os

    try:
        return os.getloadavg()[0], os.cpu_count() or 1
    except (AttributeError, OSError):
        return None


def _median(values: Sequence[float]) -> float:
    values = sorted(v for v in values if math.isfinite(v))
    if not values:
        return 0.0
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def _warm_up(device: str) -> None:
    """smp's import, and one small convolution forward and backward, so that the first probe does
    not pay for one-time start-ups (timm's registry, thread pools, kernel selection)."""
    import torch

    from sweeper.zoo.catalogue import import_smp

    import_smp()

    conv = torch.nn.Conv2d(3, 8, 3).to(device)
    conv(torch.randn(2, 3, 64, 64, device=device)).sum().backward()
    _sync(device)


def _probe(base, c, size: int, batch: int, num_classes: int, device: str) -> Probe:
    """Time one pair: build; a warm-up step and two timed ones (the faster counts; one when slow),
    then two at the small batch (the second counts: the first is the new shape's warm-up); the
    same for inference forwards."""
    import torch

    from sweeper.errors import one_line
    from sweeper.training.build import build_loss, build_model, build_optimizer

    gflops = c.gflops * (size / base.image_size) ** 2
    probe = Probe(c.arch, c.encoder, size, batch, gflops, c.params)
    config = replace(base, arch=c.arch, encoder=c.encoder, image_size=size, batch_size=batch, encoder_weights=None,
                     deterministic=False)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp)
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    for attempt in range(3):  # a size too small for the pair (PAN at 64 px): twice the size, up to the recipe's
        try:
            began = time.perf_counter()
            model = build_model(config, num_classes)
            build_s = time.perf_counter() - began
            model = model.to(device, memory_format=memory_format).train()
            criterion, optimizer = build_loss(config), build_optimizer(config, model.parameters())
            images = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=memory_format)
            masks = torch.randint(0, num_classes, (batch, size, size), device=device)
            small = min(SMALL_BATCH, batch)

            def train_step(n: int) -> tuple[float, float]:
                began = time.perf_counter()
                with torch.autocast(device_type, dtype=amp, enabled=amp is not None):
                    logits = model(images[:n])
                loss = criterion(logits.float(), masks[:n])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                _sync(device)
                stepped = time.perf_counter()
                optimizer.step()
                _sync(device)
                return time.perf_counter() - began, time.perf_counter() - stepped

            def forward(n: int) -> float:
                began = time.perf_counter()
                model(images[:n])
                _sync(device)
                return time.perf_counter() - began

            # Every batch shape gets a warm-up first: its first call selects (and on a CPU compiles)
            # kernels, which the training loop, whose shapes stay the same, pays once.
            steps = [train_step(batch)]
            while len(steps) < 1 + TIMED_STEPS and not (len(steps) >= 2 and sum(t for t, _ in steps) > SLOW_PROBE_S):
                steps.append(train_step(batch))
            step_s, optimizer_s = min(steps[1:])
            small_step_s = min(train_step(small)[0] for _ in range(2)) if small < batch else math.nan
            model.eval()
            with torch.inference_mode(), torch.autocast(device_type, dtype=amp, enabled=amp is not None):
                eval_s = min(forward(batch) for _ in range(2))
                small_eval_s = min(forward(small) for _ in range(2)) if small < batch else math.nan
            return replace(probe, small_batch=small, build_s=build_s, step_s=step_s, small_step_s=small_step_s,
                           optimizer_s=optimizer_s, eval_s=eval_s, small_eval_s=small_eval_s)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the pair to the other probes
            if size >= base.image_size or attempt == 2:
                return replace(probe, error=one_line(exc, 160))
            size = min(base.image_size, size * 2)
            gflops = c.gflops * (size / base.image_size) ** 2
            probe = replace(probe, image_size=size, gflops=gflops)
            config = replace(config, image_size=size)
    raise AssertionError("unreachable")


def _time_data(base, fold, workers: int, n: int = 6) -> tuple[float, float, float]:
    """``(train, val)`` seconds per image of the real data pipeline (read, mask, augment), on
    images already read once (as every epoch after the first), and the seconds a loader with
    ``workers`` takes to start and deliver its first batch (twice per epoch: train and val)."""
    from sweeper.augment import build_transforms
    from sweeper.data import SegmentationDataset
    from sweeper.training.loaders import scaled_recipe

    train_tf, val_tf = build_transforms(scaled_recipe(base.augment, base.augment_strength), size=base.image_size)
    per_image = []
    for data, idx, tf in ((fold.train_data, fold.train_idx, train_tf), (fold.val_data, fold.val_idx, val_tf)):
        dataset = SegmentationDataset(data, idx[:n], tf, seed=0)
        count = min(n, len(dataset))
        for i in range(count):  # the first read of each image: decode, rasterise (and cache) its mask
            dataset[i]
        began = time.perf_counter()
        for i in range(count):
            dataset[i]
        per_image.append((time.perf_counter() - began) / max(count, 1))
    start_s = 0.0
    if workers:
        import torch

        dataset = SegmentationDataset(fold.train_data, fold.train_idx[:base.batch_size], train_tf, seed=0)
        loader = torch.utils.data.DataLoader(dataset, batch_size=base.batch_size, num_workers=workers)
        began = time.perf_counter()
        next(iter(loader))
        start_s = 2 * (time.perf_counter() - began)
    return per_image[0], per_image[1], start_s
