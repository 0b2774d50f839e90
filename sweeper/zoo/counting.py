"""The catalogue counted: which pairs need counting, the worker processes, the disk cache.

:func:`list_candidates` filters the catalogue (:mod:`sweeper.zoo.catalogue`), counts on the
meta device (:mod:`sweeper.zoo.counter`) only the pairs the cache cannot answer, and spreads that
work over processes by encoder. Results are cached on disk per library versions and (classes,
in_channels, image_size); a row counted under a budget only as far as its parameters is
completed when a larger budget asks for it.
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import fields

from sweeper.cache import cache_dir, stable_hash, write_json_atomic
from sweeper.errors import SweeperError, did_you_mean
from sweeper.versions import library_versions
from sweeper.zoo.catalogue import (
    CACHE_SCHEMA,
    STACK,
    Candidate,
    InvalidPair,
    ZooResult,
    catalogue_names,
    import_smp,
    is_deprecated,
    natural_key,
    parse_count,
    select_pairs,
)
from sweeper.zoo.counter import PairCounter

# --------------------------------------------------------------------------- worker processes


def _weight_names(smp, encoder: str) -> tuple[str, ...]:
    if encoder.startswith("tu-"):
        import timm

        return tuple(sorted({n.split(".", 1)[1] for n in timm.list_pretrained(f"{encoder[3:]}.*")}))
    settings = smp.encoders.encoders.get(encoder, {}).get("pretrained_settings", {})
    return tuple(settings)


_WORKER: PairCounter | None = None


def _init_worker(classes: int, in_channels: int, image_size: int) -> None:
    global _WORKER
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    _WORKER = PairCounter(classes, in_channels, image_size)


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
        key = [CACHE_SCHEMA, library_versions(STACK), classes, in_channels, image_size]
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
    deprecated: bool = False,
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
    smp cannot build go to ``ZooResult.invalid`` with smp's reason. smp's deprecated ``timm-*``
    aliases come only with ``deprecated`` or when a pattern starting with ``timm-`` names them
    (:func:`~sweeper.zoo.select_pairs`); the others matched are named in
    ``ZooResult.left_out_deprecated``.
    """
    budget = parse_count(max_params) if max_params is not None else None
    for name, value in (("--classes", classes), ("--in-channels", in_channels), ("--image-size", image_size)):
        if int(value) < 1:
            raise SweeperError(f"{name}: must be a positive integer, got {value}")
    all_archs, all_encoders = catalogue_names(include_timm)
    filters = dict(arch_filter=archs, encoder_patterns=encoders, exclude_patterns=exclude)
    chosen_archs, chosen_encoders = select_pairs(all_archs, all_encoders, deprecated=deprecated, **filters)
    left_out = []
    if not deprecated and any(is_deprecated(e) for e in all_encoders):
        _, everything = select_pairs(all_archs, all_encoders, deprecated=True, **filters)
        left_out = [e for e in everything if e not in chosen_encoders]
    cache = _ZooCache(classes, in_channels, image_size)
    if not use_cache:
        cache.rows = {}
    tasks = []
    for encoder in chosen_encoders:
        missing = [a for a in chosen_archs if not _complete(cache.rows.get(f"{a}/{encoder}"), budget)]
        if missing:
            tasks.append((encoder, missing, budget))
    result = ZooResult(left_out_deprecated=left_out)
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
    import_smp()  # import once before forking so workers start warm
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


# --------------------------------------------------------------------------- sorting and records

SORT_KEYS = {
    "params": lambda c: (c.params, natural_key(c.key)),
    "flops": lambda c: (c.gflops if c.gflops is not None else math.inf, natural_key(c.key)),
    "name": lambda c: (natural_key(c.arch), natural_key(c.encoder)),
}
"""``--sort`` keys; ties break by the natural order of ``arch/encoder``."""


def sort_candidates(candidates: Iterable[Candidate], by: str = "params") -> list[Candidate]:
    """The candidates ordered by one of :data:`SORT_KEYS` (GFLOPs unknown sort last)."""
    if by not in SORT_KEYS:
        raise SweeperError(
            f"--sort: unknown key {by!r}{did_you_mean(by, SORT_KEYS)}; choose from {', '.join(SORT_KEYS)}"
        )
    return sorted(candidates, key=SORT_KEYS[by])


def to_records(candidates: Iterable[Candidate]) -> list[dict]:
    """Flat rows with units in the column names (millions of parameters, GFLOPs); ``deprecated``
    marks smp's deprecated ``timm-*`` aliases (listed with ``--deprecated`` or by name)."""
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
            "deprecated": c.deprecated,
        }
        for c in candidates
    ]
