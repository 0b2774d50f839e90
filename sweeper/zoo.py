"""The smp catalogue: every architecture x encoder pair, its size and cost, without any weights.

Counting works on the meta device, where a module has shapes but no storage, so a 800M-parameter
encoder costs the same few milliseconds as a small one. What keeps the whole catalogue fast (see
``benchmarks/zoo.py`` for the figures):

* an encoder is built once and shared by every decoder that asks for it; smp's own encoder
  classes serve every depth and output stride from one module (``_encoder_variant``), timm-built
  ones are built once per (depth, stride);
* builds skip weight initialisation, and a forward replaces torch's Python meta kernels for the
  common ops by exact shape stand-ins (``meta.shape_handler``);
* the encoder's forward is traced once per variant for its FLOPs and feature shapes; each
  decoder then runs on empty meta features of those shapes;
* an encoder whose own parameters exceed the budget rules out all its pairs before any forward.

Results are cached on disk per library versions and (classes, in_channels, image_size), and the
work is spread over processes by encoder.

Numbers mean: ``params`` counts every parameter of the whole model (encoder + decoder + heads);
``gflops`` is 1e9 floating-point operations of one forward of one image at ``image_size`` as
torch's ``flop_counter`` formulas count them (2 per multiply-add, matmul/conv/attention only).
"""

from __future__ import annotations

import csv
import fnmatch
import gc
import io
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata

from .cache import cache_dir, stable_hash, write_json_atomic
from . import meta
from .errors import SweeperError, did_you_mean

#: Bump when the meaning of a cached row changes.
CACHE_SCHEMA = 3

_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9}
_BUDGET_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmMgGbB]?)\s*$")


def parse_count(text: str | int | float, *, what: str = "--max-params") -> int:
    """Parse a parameter budget such as ``50M``, ``2.5m``, ``500K``, ``1.2G`` or ``50000000``.

    Suffixes are decimal (K = 1e3, M = 1e6, G = B = 1e9), matching how papers quote sizes. A
    unit such as ``50MB`` is refused: a budget counts parameters, not bytes.
    """
    if isinstance(text, bool):
        raise SweeperError(f"{what}: {text!r} is not a parameter count")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _BUDGET_RE.match(str(text))
        if not match:
            raise SweeperError(
                f"{what}: {str(text)!r} is not a parameter count "
                "(use e.g. 50M, 2.5M, 500K, 1.2G or 50000000)"
            )
        value = float(match.group(1)) * _SUFFIXES[match.group(2).upper()]
    if not math.isfinite(value) or value < 1:
        raise SweeperError(f"{what}: {text!r} must be a positive parameter count")
    return int(round(value))


def format_count(n: int | None) -> str:
    """``14329804`` -> ``'14.33M'``; the inverse of :func:`parse_count` up to rounding."""
    if n is None:
        return "-"
    for suffix, scale in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            return f"{n / scale:.2f}{suffix}"
    return str(n)


def natural_key(text: str) -> list:
    """Sort key that puts ``resnet18`` before ``resnet101`` (digits compare as numbers)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text.lower()) if part]


@dataclass(frozen=True)
class Candidate:
    """One buildable architecture x encoder pair and what it costs.

    ``params`` is the whole model; ``encoder_params`` + ``decoder_params`` add up to it
    (``decoder_params`` includes the segmentation head). ``gflops`` is ``None`` when the
    forward at ``image_size`` fails; then ``runs`` is False and ``note`` says why.
    """

    arch: str
    encoder: str
    params: int
    encoder_params: int
    decoder_params: int
    gflops: float | None
    weights: tuple[str, ...] = ()
    runs: bool = True
    note: str = ""

    @property
    def key(self) -> str:
        """The candidate's identity in studies and reports: ``arch/encoder``."""
        return f"{self.arch}/{self.encoder}"

    @property
    def params_m(self) -> float:
        return self.params / 1e6


@dataclass(frozen=True)
class InvalidPair:
    """A pair smp refuses to build, with smp's own reason."""

    arch: str
    encoder: str
    reason: str

    @property
    def key(self) -> str:
        return f"{self.arch}/{self.encoder}"


@dataclass
class ZooResult:
    """What :func:`list_candidates` found: the pairs within the filters and the refused ones."""

    candidates: list[Candidate] = field(default_factory=list)
    invalid: list[InvalidPair] = field(default_factory=list)
    cached: int = 0
    counted: int = 0


# --------------------------------------------------------------------------- the catalogue


def library_versions() -> dict[str, str]:
    """Versions that decide what the catalogue holds, read without importing the packages."""
    out = {}
    for dist in ("segmentation-models-pytorch", "timm", "torch"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover - broken install
            out[dist] = "missing"
    return out


def _catalogue_names(include_timm: bool) -> tuple[list[str], list[str]]:
    """Architectures and encoder names; cached so a warm ``zoo`` never imports torch."""
    path = cache_dir("zoo") / f"names-{stable_hash([library_versions(), include_timm, CACHE_SCHEMA])}.json"
    if path.exists():
        data = json.loads(path.read_text())
        return data["archs"], data["encoders"]
    smp = _import_smp()
    archs = list(smp.MODEL_ARCHITECTURES_MAPPING)
    encoders = list(smp.encoders.get_encoder_names())
    if include_timm:
        import timm

        encoders += [f"tu-{name}" for name in timm.list_models()]
    write_json_atomic(path, {"archs": archs, "encoders": encoders})
    return archs, encoders


def _import_smp():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import segmentation_models_pytorch as smp
    return smp


def _split_csv(values: Iterable[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or ():
        out += [v.strip() for v in str(value).split(",") if v.strip()]
    return out


def select_pairs(
    archs: Sequence[str],
    encoders: Sequence[str],
    *,
    arch_filter: Iterable[str] | None = None,
    encoder_patterns: Iterable[str] | None = None,
    exclude_patterns: Iterable[str] | None = None,
) -> tuple[list[str], list[str]]:
    """Apply ``--arch`` (exact names) and ``--encoder``/``--exclude`` (fnmatch wildcards).

    Unknown architectures and patterns that match nothing are errors with the close match, as
    a silent empty table would read as "nothing fits the budget".
    """
    wanted = [a.lower() for a in _split_csv(arch_filter)]
    for name in wanted:
        if name not in archs:
            raise SweeperError(f"--arch: unknown architecture {name!r}{did_you_mean(name, archs)}; choose from {', '.join(archs)}")
    chosen_archs = [a for a in archs if not wanted or a in wanted]

    patterns = _split_csv(encoder_patterns)
    chosen: list[str] = []
    if patterns:
        for pattern in patterns:
            hits = [e for e in encoders if fnmatch.fnmatchcase(e, pattern)]
            if not hits:
                raise SweeperError(
                    f"--encoder: {pattern!r} matches no encoder{did_you_mean(pattern, encoders)}"
                    + ("" if pattern.startswith("tu-") else "; add --timm for timm encoders (tu-*)")
                )
            chosen += [e for e in hits if e not in chosen]
    else:
        chosen = list(encoders)
    excludes = _split_csv(exclude_patterns)
    chosen = [e for e in chosen if not any(fnmatch.fnmatchcase(e, p) for p in excludes)]
    return chosen_archs, sorted(chosen, key=natural_key)


# --------------------------------------------------------------------------- counting (worker side)


def _encoder_settings(arch_cls) -> tuple[int, int]:
    """The encoder depth and output stride an architecture asks for by default."""
    import inspect

    params = inspect.signature(arch_cls.__init__).parameters
    depth = params["encoder_depth"].default if "encoder_depth" in params else 5
    stride = params["encoder_output_stride"].default if "encoder_output_stride" in params else 32
    return int(depth), int(stride or 32)


def _meta_input(in_channels: int, image_size: int):
    import torch

    return torch.empty(1, in_channels, image_size, image_size, device="meta")


def _n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass
class _EncoderInfo:
    module: object = None
    params: int = 0
    error: str | None = None
    built_on: str = "meta"
    flops: int | None = None
    shapes: list | None = None
    forward_error: str | None = None
    depth: int | None = None  # set on a shared native module by _encoder_variant
    stride: int = 32


@contextmanager
def _encoder_variant(info: _EncoderInfo):
    """Give a shared native encoder the depth and output stride of ``info`` for a while.

    This repeats what smp's ``get_encoder`` does after construction (``make_dilated``) and
    undoes it on exit, so the stride-32 module stays intact for the next pair; dilation
    changes strides, dilations and paddings only, never a parameter.
    """
    module = info.module
    if info.depth is None:
        yield module
        return
    import torch.nn as nn

    saved = (module._depth, module._output_stride)
    convs = []
    if info.stride != 32:
        convs = [(m, m.stride, m.dilation, m.padding, m._modules.get("static_padding"))
                 for m in module.modules() if isinstance(m, nn.Conv2d)]
    try:
        module._depth, module._output_stride = info.depth, info.stride
        if info.stride != 32:
            module.make_dilated(info.stride)
        yield module
    finally:
        module._depth, module._output_stride = saved
        for m, stride, dilation, padding, static in convs:
            m.stride, m.dilation, m.padding = stride, dilation, padding
            if static is not None:
                m.static_padding = static


class _Counter:
    """Per-process state: encoders built so far, keyed by everything that changes them."""

    def __init__(self, classes: int, in_channels: int, image_size: int):
        self.classes = classes
        self.in_channels = in_channels
        self.image_size = image_size
        self.smp = _import_smp()
        self.encoders: dict[tuple, _EncoderInfo] = {}
        self._real_get_encoder = self.smp.encoders.get_encoder

    def _timm_routed(self, name: str) -> bool:
        """Encoders smp builds through timm, which takes the output stride at construction."""
        routed = getattr(self.smp.encoders, "is_equivalent_to_timm_universal", lambda n: False)
        return name.startswith("tu-") or routed(name)

    def encoder(self, name: str, depth: int, output_stride: int) -> _EncoderInfo:
        key = (name, depth, output_stride)
        info = self.encoders.get(key)
        if info is not None:
            return info
        if self._timm_routed(name):
            info = self._build_encoder(name, depth, output_stride)
        else:
            # smp's own encoder classes read the depth only in forward and get dilated after
            # construction, so one module per name serves every (depth, stride), set in place
            # by _encoder_variant while a pair uses it.
            base = self.encoders.get((name, None, None))
            if base is None:
                base = self.encoders[(name, None, None)] = self._build_encoder(name, 5, 32)
            info = _EncoderInfo(module=base.module, params=base.params, error=base.error,
                                built_on=base.built_on, depth=depth, stride=output_stride)
            if info.error is None:
                try:
                    with _encoder_variant(info):
                        pass
                except Exception as exc:  # noqa: BLE001 - e.g. DenseNet refuses to dilate
                    info.module, info.error = None, _one_line(exc)
        self.encoders[key] = info
        return info

    def _build_encoder(self, name: str, depth: int, output_stride: int) -> _EncoderInfo:
        info = _EncoderInfo()
        try:
            info.module, info.built_on = meta.build_on_meta(
                lambda: self._real_get_encoder(
                    name, in_channels=self.in_channels, depth=depth, weights=None, output_stride=output_stride,
                )
            )
            info.module.eval()
            info.params = _n_params(info.module)
        except Exception as exc:  # noqa: BLE001
            info.error = _one_line(exc)
        return info

    def trace_encoder(self, info: _EncoderInfo) -> None:
        """FLOPs and output shapes of the encoder's forward, once per encoder key."""
        if info.flops is not None or info.forward_error is not None:
            return
        import torch

        try:
            with torch.no_grad(), meta.flop_trace() as counter:
                feats = info.module(_meta_input(self.in_channels, self.image_size))
            info.flops = counter.total
            info.shapes = [tuple(f.shape) for f in feats]
        except Exception as exc:  # noqa: BLE001
            info.forward_error = _one_line(exc)

    def count_pair(self, arch: str, encoder: str, budget: int | None, weights: tuple[str, ...]) -> dict:
        """One catalogue row as a plain dict (the cache's format)."""
        cls = self.smp.MODEL_ARCHITECTURES_MAPPING[arch]
        depth, stride = _encoder_settings(cls)
        module = sys.modules[cls.__module__]
        shares_encoder = hasattr(module, "get_encoder") and cls.forward is self.smp.base.SegmentationModel.forward
        if not shares_encoder:
            return self._count_model(arch, encoder, budget, weights, None)
        enc = self.encoder(encoder, depth, stride)
        if enc.error:
            return {"arch": arch, "encoder": encoder, "invalid": enc.error}
        if budget is not None and enc.params > budget:
            return {"arch": arch, "encoder": encoder, "over_budget": enc.params}
        original = module.get_encoder
        module.get_encoder = lambda *a, **k: enc.module
        try:
            with _encoder_variant(enc):
                return self._count_model(arch, encoder, budget, weights, enc)
        finally:
            module.get_encoder = original

    def _count_model(self, arch, encoder, budget, weights, enc: _EncoderInfo | None) -> dict:
        """Build the whole model (around a shared encoder when ``enc`` is given) and trace it."""
        import torch

        def build():
            return self.smp.create_model(arch, encoder_name=encoder, encoder_weights=None,
                                         classes=self.classes, in_channels=self.in_channels)

        try:
            model, built_on = meta.build_on_meta(build)
        except Exception as exc:  # noqa: BLE001
            return {"arch": arch, "encoder": encoder, "invalid": _one_line(exc)}
        if enc is None or getattr(model, "encoder", None) is not enc.module:
            model.eval()
            enc_params = _n_params(model.encoder)
            params = _n_params(model)
        else:
            # The shared encoder is in eval mode and counted already; walking its thousands of
            # modules again per decoder would cost more than the decoder.
            model.training = False
            rest = [child for child in model.children() if child is not enc.module]
            for child in rest:
                child.eval()
            enc_params = enc.params
            seen: set[int] = set()
            params = enc_params + sum(
                p.numel() for p in [*model._parameters.values(), *(q for c in rest for q in c.parameters())]
                if p is not None and id(p) not in seen and not seen.add(id(p))
            )
        how = enc.built_on if enc else built_on
        row = {
            "arch": arch, "encoder": encoder, "params": params, "encoder_params": enc_params,
            "decoder_params": params - enc_params, "weights": list(weights), "gflops": None,
            "runs": None, "note": "" if how == "meta" else f"counted via {how} build",
        }
        if budget is not None and params > budget:
            return row  # no forward for pairs over the budget; a larger budget completes the row
        x = _meta_input(self.in_channels, self.image_size)
        try:
            if enc is not None:
                self.trace_encoder(enc)
                if enc.forward_error:
                    raise RuntimeError(enc.forward_error)
                shapes = enc.shapes
                enc.module.forward = lambda _x: [torch.empty(s, device="meta") for s in shapes]
                try:
                    with torch.no_grad(), meta.flop_trace() as counter:
                        model(x)
                finally:
                    del enc.module.forward
                flops = counter.total + enc.flops
            else:
                with torch.no_grad(), meta.flop_trace() as counter:
                    model(x)
                flops = counter.total
            row["gflops"], row["runs"] = flops / 1e9, True
        except Exception as exc:  # noqa: BLE001
            row["runs"] = False
            row["note"] = _one_line(exc)
        return row


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _weight_names(smp, encoder: str) -> tuple[str, ...]:
    if encoder.startswith("tu-"):
        import timm

        return tuple(sorted({n.split(".", 1)[1] for n in timm.list_pretrained(f"{encoder[3:]}.*")}))
    settings = smp.encoders.encoders.get(encoder, {}).get("pretrained_settings", {})
    return tuple(settings)


_WORKER: _Counter | None = None


def _init_worker(classes: int, in_channels: int, image_size: int) -> None:
    global _WORKER
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    _WORKER = _Counter(classes, in_channels, image_size)


def _count_encoder(task: tuple[str, list[str], int | None]) -> tuple[str, list[dict]]:
    """Worker entry: every requested arch for one encoder (so the encoder is built once)."""
    encoder, archs, budget = task
    counter = _WORKER
    # Building a model allocates thousands of small objects and few cycles: the cyclic GC's
    # passes during construction cost about a third of the build time, so it waits until the
    # encoder is done.
    gc.disable()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            weights = _weight_names(counter.smp, encoder)
            rows = [counter.count_pair(arch, encoder, budget, weights) for arch in archs]
    finally:
        counter.encoders.clear()  # one encoder at a time keeps a worker's memory flat
        gc.enable()
    return encoder, rows


# --------------------------------------------------------------------------- the public API


class _ZooCache:
    """One JSON file per (library versions, classes, in_channels, image_size)."""

    def __init__(self, classes: int, in_channels: int, image_size: int):
        key = [CACHE_SCHEMA, library_versions(), classes, in_channels, image_size]
        self.path = cache_dir("zoo") / f"pairs-{stable_hash(key)}.json"
        self.rows: dict[str, dict] = {}
        if self.path.exists():
            try:
                self.rows = json.loads(self.path.read_text())["rows"]
            except (ValueError, KeyError):
                self.rows = {}  # a damaged cache is recomputed, never fatal

    def save(self) -> None:
        write_json_atomic(self.path, {"rows": self.rows})


def _complete(row: dict | None, budget: int | None) -> bool:
    """Whether a cached row answers this query without counting again."""
    if row is None:
        return False
    if "invalid" in row:
        return True
    if "over_budget" in row:
        return budget is not None and row["over_budget"] > budget
    if row["runs"] is None:  # counted params only, because it was over an earlier budget
        return budget is not None and row["params"] > budget
    return True


def list_candidates(
    *,
    max_params: int | str | None = None,
    archs: Iterable[str] | None = None,
    encoders: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    include_timm: bool = False,
    classes: int = 12,
    in_channels: int = 3,
    image_size: int = 256,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    use_cache: bool = True,
) -> ZooResult:
    """Every architecture x encoder pair within the filters and the parameter budget.

    ``archs`` are exact names, ``encoders``/``exclude`` fnmatch wildcards (comma-separated
    strings are split). ``progress(done, total)`` is called per encoder counted. Pairs that
    smp cannot build go to ``ZooResult.invalid`` with smp's reason.
    """
    budget = parse_count(max_params) if max_params is not None else None
    for name, value in (("--classes", classes), ("--in-channels", in_channels), ("--image-size", image_size)):
        if int(value) < 1:
            raise SweeperError(f"{name}: must be a positive integer, got {value}")
    all_archs, all_encoders = _catalogue_names(include_timm)
    chosen_archs, chosen_encoders = select_pairs(
        all_archs, all_encoders, arch_filter=archs, encoder_patterns=encoders, exclude_patterns=exclude
    )
    cache = _ZooCache(classes, in_channels, image_size)
    if not use_cache:
        cache.rows = {}
    tasks = []
    for encoder in chosen_encoders:
        missing = [a for a in chosen_archs if not _complete(cache.rows.get(f"{a}/{encoder}"), budget)]
        if missing:
            tasks.append((encoder, missing, budget))
    result = ZooResult()
    if tasks:
        for encoder, rows in _run_tasks(tasks, classes, in_channels, image_size, jobs, progress):
            for row in rows:
                cache.rows[f"{row['arch']}/{encoder}"] = row
            result.counted += len(rows)
        cache.save()
    for encoder in chosen_encoders:
        for arch in chosen_archs:
            row = cache.rows[f"{arch}/{encoder}"]
            if "invalid" in row:
                result.invalid.append(InvalidPair(arch, encoder, row["invalid"]))
            elif "over_budget" in row or (budget is not None and row["params"] > budget):
                continue
            else:
                result.candidates.append(_candidate(row))
    result.cached = len(chosen_archs) * len(chosen_encoders) - result.counted
    return result


def _candidate(row: dict) -> Candidate:
    names = {f.name for f in fields(Candidate)}
    data = {k: v for k, v in row.items() if k in names}
    data["weights"] = tuple(data.get("weights", ()))
    data["runs"] = bool(data.get("runs"))
    return Candidate(**data)


def _run_tasks(tasks, classes, in_channels, image_size, jobs, progress):
    """Count in worker processes (forked after torch is imported) or in this process."""
    jobs = jobs or min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 4)
    jobs = max(1, min(jobs, len(tasks)))
    total = len(tasks)
    if progress:
        progress(0, total)
    _import_smp()  # import once before forking so workers start warm
    import multiprocessing as mp

    if jobs > 1 and "fork" in mp.get_all_start_methods():
        ctx = mp.get_context("fork")
        with ctx.Pool(jobs, initializer=_init_worker, initargs=(classes, in_channels, image_size)) as pool:
            for done, item in enumerate(pool.imap_unordered(_count_encoder, _heavy_first(tasks)), 1):
                if progress:
                    progress(done, total)
                yield item
        return
    import torch

    threads = torch.get_num_threads()
    try:
        _init_worker(classes, in_channels, image_size)
        for done, task in enumerate(tasks, 1):
            item = _count_encoder(task)
            if progress:
                progress(done, total)
            yield item
    finally:
        torch.set_num_threads(threads)


def _heavy_first(tasks):
    """Big encoders first, so one of them does not finish alone at the end."""
    def weight(task):
        digits = [int(d) for d in re.findall(r"\d+", task[0])] or [0]
        return -max(digits)

    return sorted(tasks, key=weight)


# --------------------------------------------------------------------------- sorting and output

SORT_KEYS = {
    "params": lambda c: (c.params, natural_key(c.key)),
    "flops": lambda c: (c.gflops if c.gflops is not None else math.inf, natural_key(c.key)),
    "name": lambda c: (natural_key(c.arch), natural_key(c.encoder)),
}

CSV_COLUMNS = [
    "arch", "encoder", "params_m", "encoder_params_m", "decoder_params_m", "gflops",
    "weights", "runs_at_size", "note",
]


def sort_candidates(candidates: Iterable[Candidate], by: str = "params") -> list[Candidate]:
    if by not in SORT_KEYS:
        raise SweeperError(f"--sort: unknown key {by!r}{did_you_mean(by, SORT_KEYS)}; choose from {', '.join(SORT_KEYS)}")
    return sorted(candidates, key=SORT_KEYS[by])


def to_records(candidates: Iterable[Candidate]) -> list[dict]:
    """Flat rows with units in the column names (millions of parameters, GFLOPs)."""
    return [
        {
            "arch": c.arch,
            "encoder": c.encoder,
            "params_m": round(c.params / 1e6, 4),
            "encoder_params_m": round(c.encoder_params / 1e6, 4),
            "decoder_params_m": round(c.decoder_params / 1e6, 4),
            "gflops": None if c.gflops is None else round(c.gflops, 3),
            "weights": ";".join(c.weights),
            "runs_at_size": c.runs,
            "note": c.note,
        }
        for c in candidates
    ]


def to_csv(candidates: Iterable[Candidate]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(to_records(candidates))
    return buf.getvalue()


def to_json(candidates: Iterable[Candidate]) -> str:
    """Exact integers (params) alongside the columns of the CSV."""
    rows = [dict(asdict(c), weights=list(c.weights)) for c in candidates]
    return json.dumps(rows, indent=2)


def to_markdown(candidates: Iterable[Candidate]) -> str:
    lines = [
        "| arch | encoder | params (M) | encoder (M) | decoder+head (M) | GFLOPs | weights | runs |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in to_records(candidates):
        gflops = "-" if r["gflops"] is None else f"{r['gflops']:.2f}"
        lines.append(
            f"| {r['arch']} | {r['encoder']} | {r['params_m']:.2f} | {r['encoder_params_m']:.2f} | "
            f"{r['decoder_params_m']:.2f} | {gflops} | {r['weights'].replace(';', ', ') or '-'} | "
            f"{'yes' if r['runs_at_size'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def render_table(candidates: Sequence[Candidate], *, image_size: int, title: str | None = None):
    """A rich Table of the candidates (the caller prints it)."""
    from rich.table import Table

    table = Table(title=title, header_style="bold", show_lines=False)
    table.add_column("arch")
    table.add_column("encoder")
    table.add_column("params (M)", justify="right")
    table.add_column("encoder (M)", justify="right")
    table.add_column("decoder+head (M)", justify="right")
    table.add_column(f"GFLOPs @{image_size}", justify="right")
    table.add_column("weights")
    table.add_column(f"runs @{image_size}")
    for c in candidates:
        table.add_row(
            c.arch, c.encoder, f"{c.params / 1e6:.2f}", f"{c.encoder_params / 1e6:.2f}",
            f"{c.decoder_params / 1e6:.2f}", "-" if c.gflops is None else f"{c.gflops:.2f}",
            ", ".join(c.weights) or "-", "yes" if c.runs else f"[red]no[/]: {c.note}",
        )
    return table
