"""The catalogue's names and filters: which architecture x encoder pairs a query asks for.

Nothing here imports torch: budgets are parsed, names sorted and filtered as plain strings, and
the list of names smp (and timm) offer is cached on disk per library versions, so a warm
``sweeper zoo`` answers without importing either.

Deprecated aliases: smp 0.6 warns on every encoder name that starts with ``timm-`` ("`timm-`
encoders are deprecated ... use `tu-` equivalent encoders instead", ``smp.encoders.get_encoder``).
Each is another name of a network the catalogue already has (:func:`alias_twins`), so they are
left out unless asked for: ``deprecated=True`` (``sweeper zoo --deprecated``), or an encoder
pattern that itself starts with ``timm-`` (naming an alias is asking for it).

Numbers mean: ``params`` counts every parameter of the whole model (encoder + decoder + heads);
``gflops`` is 1e9 floating-point operations of one forward of one image at ``image_size`` as
torch's ``flop_counter`` formulas count them (2 per multiply-add, matmul/conv/attention only).
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sweeper.cache import cache_dir, stable_hash, write_json_atomic
from sweeper.errors import SweeperError, did_you_mean
from sweeper.versions import library_versions

#: Bump when the meaning of a cached row changes.
CACHE_SCHEMA = 3

#: smp's prefix of its deprecated encoder aliases (every such name warns in ``get_encoder``).
DEPRECATED_PREFIX = "timm-"

#: The packages whose versions decide what the catalogue holds (and so key its caches).
STACK = ("segmentation-models-pytorch", "timm", "torch")

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
    deprecated: bool = False

    def __post_init__(self):
        object.__setattr__(self, "deprecated", is_deprecated(self.encoder))

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
    """What :func:`~sweeper.zoo.list_candidates` found: the pairs within the filters and the refused ones."""

    candidates: list[Candidate] = field(default_factory=list)
    invalid: list[InvalidPair] = field(default_factory=list)
    cached: int = 0
    counted: int = 0
    #: Deprecated encoder aliases the filters matched but left out (``deprecated=False``).
    left_out_deprecated: list[str] = field(default_factory=list)


def is_deprecated(encoder: str) -> bool:
    """Whether ``encoder`` is one of smp's deprecated ``timm-*`` aliases."""
    return encoder.startswith(DEPRECATED_PREFIX)


def alias_twins(encoder: str) -> tuple[str, ...]:
    """The other names of a deprecated alias's network; ``()`` for a name that is not deprecated.

    smp's own port under the bare name where it has one (``timm-efficientnet-b0`` ->
    ``efficientnet-b0``: the same EfficientNet-B0 with the same parameter count), and the timm
    universal name that smp's warning points to (``tu-efficientnet_b0``,
    ``tu-tf_efficientnet_lite0``, ``tu-skresnet18``): the same timm architecture, less the final
    1x1 conv that the EfficientNets' smp copies carry and never use, and with the SK-ResNets'
    selective-kernel settings a little different (up to 6% of the parameters). A twin may be absent
    from a catalogue (``tu-*`` needs ``--timm``; smp has no bare ``skresnet18``).
    """
    if not is_deprecated(encoder):
        return ()
    bare = encoder[len(DEPRECATED_PREFIX):]
    return (bare, "tu-" + bare.replace("-", "_"))


def drop_alias_twins(candidates: Iterable[Candidate]) -> tuple[list[Candidate], list[Candidate]]:
    """``(kept, dropped)``: a deprecated alias is dropped where a twin with the same architecture is
    also among the candidates, so that a study never trains one network under two names. The
    order of the kept candidates is unchanged."""
    candidates = list(candidates)
    present = {(c.arch, c.encoder) for c in candidates}
    kept: list[Candidate] = []
    dropped: list[Candidate] = []
    for c in candidates:
        twin = any((c.arch, name) in present for name in alias_twins(c.encoder))
        (dropped if twin else kept).append(c)
    return kept, dropped


def catalogue_names(include_timm: bool) -> tuple[list[str], list[str]]:
    """Architectures and encoder names; cached so a warm ``zoo`` never imports torch.

    Encoders are smp's own names, plus every timm model as ``tu-<name>`` with ``include_timm``.
    """
    key = stable_hash([library_versions(STACK), include_timm, CACHE_SCHEMA])
    path = cache_dir("zoo") / f"names-{key}.json"
    if path.exists():
        data = json.loads(path.read_text())
        return data["archs"], data["encoders"]
    smp = import_smp()
    archs = list(smp.MODEL_ARCHITECTURES_MAPPING)
    encoders = list(smp.encoders.get_encoder_names())
    if include_timm:
        import timm

        encoders += [f"tu-{name}" for name in timm.list_models()]
    write_json_atomic(path, {"archs": archs, "encoders": encoders})
    return archs, encoders


def import_smp():
    """``segmentation_models_pytorch``, imported without its import-time warnings."""
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
    deprecated: bool = False,
) -> tuple[list[str], list[str]]:
    """Apply ``--arch`` (exact names) and ``--encoder``/``--exclude`` (fnmatch wildcards).

    Deprecated ``timm-*`` aliases are matched only with ``deprecated`` or by a pattern that
    starts with ``timm-`` (``'*efficientnet*'`` does not bring them, ``'timm-*'`` does).
    Unknown architectures and patterns that match nothing are errors with the close match, as
    a silent empty table would read as "nothing fits the budget".
    """
    wanted = [a.lower() for a in _split_csv(arch_filter)]
    for name in wanted:
        if name not in archs:
            raise SweeperError(
                f"--arch: unknown architecture {name!r}{did_you_mean(name, archs)}; choose from {', '.join(archs)}"
            )
    chosen_archs = [a for a in archs if not wanted or a in wanted]

    patterns = _split_csv(encoder_patterns)
    current = [e for e in encoders if deprecated or not is_deprecated(e)]
    chosen: list[str] = []
    if patterns:
        for pattern in patterns:
            pool = encoders if pattern.startswith(DEPRECATED_PREFIX) else current
            hits = [e for e in pool if fnmatch.fnmatchcase(e, pattern)]
            if not hits:
                aliases = [e for e in encoders if fnmatch.fnmatchcase(e, pattern)]
                if aliases:
                    raise SweeperError(
                        f"--encoder: {pattern!r} matches only deprecated smp aliases ({', '.join(aliases[:3])}"
                        f"{', ...' if len(aliases) > 3 else ''}); name them with a pattern that starts with "
                        f"{DEPRECATED_PREFIX!r} or add --deprecated"
                    )
                raise SweeperError(
                    f"--encoder: {pattern!r} matches no encoder{did_you_mean(pattern, pool)}"
                    + ("" if pattern.startswith("tu-") else "; add --timm for timm encoders (tu-*)")
                )
            chosen += [e for e in hits if e not in chosen]
    else:
        chosen = current
    excludes = _split_csv(exclude_patterns)
    chosen = [e for e in chosen if not any(fnmatch.fnmatchcase(e, p) for p in excludes)]
    return chosen_archs, sorted(chosen, key=natural_key)
