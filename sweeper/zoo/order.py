"""The order a capped screen takes candidates in, so that its first N are a spread of the catalogue.

``tune`` screens the first ``trials`` candidates of the space. Smallest first, the 40 of ``zoo-50m``
are all under 7M parameters and miss two of its 11 architectures; ``spread``, the default, makes
every prefix a spread of the catalogue instead. It goes round by round; a round gives each
architecture that has candidates left one pick (in a seeded order per round), so every
architecture is covered before any repeats. Each pick takes, of that architecture's remaining
candidates, the one that comes first by

1. the encoder picked least so far (a new encoder before one screened with another decoder),
2. the encoder family picked least so far (:func:`encoder_family`: families interleave),
3. the largest distance in log-params to the sizes this architecture already has, then to every
   size picked so far (farthest-first: the smallest and the largest models come early),
4. a seeded tie-break.

So a prefix covers the architectures, then distinct encoders of every family, then the range of
sizes, in that order of priority. The order is a pure function of the set of candidates and
``seed`` (not of the input order), and a longer screen extends a shorter one. ``params``
(smallest first) and ``name`` (natural order of ``arch/encoder``) are the plain alternatives.
Nothing here imports torch.
"""

from __future__ import annotations

import bisect
import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

from sweeper.errors import SweeperError, did_you_mean
from sweeper.zoo.catalogue import DEPRECATED_PREFIX, Candidate, natural_key
from sweeper.zoo.counting import sort_candidates

#: The orders :func:`order_candidates` knows (the space's ``architectures.order``).
ORDERS = ("spread", "params", "name")

# Name prefixes that are not part of the network's family: smp's timm wrappers, and timm's
# ports and test models (``tf_efficientnet_lite0``, ``legacy_seresnet18``, ``test_vit``).
_WRAPPERS = ("tu-", DEPRECATED_PREFIX)
_VENDORS = ("tf_", "legacy_", "gluon_", "ig_", "ssl_", "swsl_", "test_")
# Leading words that name one family under several spellings: exact words, then prefixes.
_WORDS = {"se": "senet", "mit": "mit"}
_PREFIXES = (("seresne", "senet"), ("senet", "senet"), ("inception", "inception"), ("regnet", "regnet"),
             ("skresne", "sknet"), ("resnext", "resnext"), ("resnet", "resnet"), ("mobilenet", "mobilenet"),
             ("efficientnet", "efficientnet"), ("densenet", "densenet"), ("xception", "xception"))


def encoder_family(encoder: str) -> str:
    """The network family of an smp encoder name, for spreading a screen over families.

    The leading word of the name without its size or version (``resnet50`` -> ``resnet``,
    ``efficientnet-b3`` -> ``efficientnet``, ``mobilenet_v2`` and ``tu-mobilenetv3_large_100`` ->
    ``mobilenet``, ``inceptionresnetv2`` -> ``inception``, ``se_resnext50_32x4d`` -> ``senet``,
    ``mit_b2`` -> ``mit``); ``tu-*`` by their timm name the same way (``tu-convnext_tiny`` ->
    ``convnext``, ``tu-regnety_016`` -> ``regnet``).
    """
    name = encoder.lower()
    for prefix in _WRAPPERS:
        name = name.removeprefix(prefix)
    name = name.split(".", 1)[0]  # tu-<model>.<pretrained tag>
    for prefix in _VENDORS:
        name = name.removeprefix(prefix)
    word = re.split(r"[_\-]", name, maxsplit=1)[0]
    word = re.sub(r"v?\d+[a-z]?$", "", word) or word
    if word in _WORDS:
        return _WORDS[word]
    for prefix, family in _PREFIXES:
        if word.startswith(prefix):
            return family
    return word


def order_candidates(candidates: Iterable[Candidate], how: str = "spread", *, seed: int = 0) -> list[Candidate]:
    """The candidates in the order ``how`` (one of :data:`ORDERS`; see the module's docstring).

    The result depends on the set of candidates and on ``seed`` only, not on the input order.
    """
    if how not in ORDERS:
        raise SweeperError(f"order: unknown order {how!r}{did_you_mean(how, ORDERS)}; choose from {', '.join(ORDERS)}")
    items = sort_candidates(candidates, "name")
    if how == "params":
        return sort_candidates(items, "params")
    if how == "name":
        return items
    return _spread(items, random.Random(seed))


class _Sizes:
    """Log-params picked so far, sorted, for the distance of a new size to the nearest of them."""

    def __init__(self):
        self.values: list[float] = []

    def gap(self, x: float) -> float:
        values = self.values
        if not values:
            return math.inf
        i = bisect.bisect_left(values, x)
        if i == 0:
            return values[0] - x
        if i == len(values):
            return x - values[-1]
        return min(x - values[i - 1], values[i] - x)

    def add(self, x: float) -> None:
        bisect.insort(self.values, x)


def _spread(items: list[Candidate], rng: random.Random) -> list[Candidate]:
    tie = [rng.random() for _ in items]
    family = [encoder_family(c.encoder) for c in items]
    size = [math.log(max(c.params, 1)) for c in items]
    # The candidates not yet picked, as arch -> times their encoder was picked -> family -> indices:
    # a pick then looks at the few candidates that tie on the first two keys, not at all of them.
    pending: dict[str, dict[int, dict[str, set[int]]]] = {}
    of_encoder: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(items):
        pending.setdefault(c.arch, {}).setdefault(0, {}).setdefault(family[i], set()).add(i)
        of_encoder[c.encoder].append(i)
    picked = [False] * len(items)
    families: Counter = Counter()
    encoders: Counter = Counter()
    arch_sizes: dict[str, _Sizes] = defaultdict(_Sizes)
    all_sizes = _Sizes()

    def move(i: int, level: int, to: int | None) -> None:
        levels = pending[items[i].arch]
        group = levels[level][family[i]]
        group.discard(i)
        if not group:
            del levels[level][family[i]]
            if not levels[level]:
                del levels[level]
        if to is not None:
            levels.setdefault(to, {}).setdefault(family[i], set()).add(i)

    out: list[Candidate] = []
    while pending:
        archs = sorted(pending, key=natural_key)
        rng.shuffle(archs)
        for arch in archs:
            levels = pending[arch]
            level = min(levels)  # 1. the encoder picked least
            groups = levels[level]
            low = min(families[f] for f in groups)  # 2. the family picked least
            pool = [i for f, members in groups.items() if families[f] == low for i in members]
            gaps = [arch_sizes[arch].gap(size[i]) for i in pool]  # 3. farthest from this arch's sizes,
            far = max(gaps)
            pool = [i for i, g in zip(pool, gaps) if g == far]
            best = min(pool, key=lambda i: (-all_sizes.gap(size[i]), tie[i], i))  # then from all, 4. seeded
            move(best, level, None)
            picked[best] = True
            if not levels:
                del pending[arch]
            encoder = items[best].encoder
            for j in of_encoder[encoder]:
                if not picked[j]:
                    move(j, encoders[encoder], encoders[encoder] + 1)
            encoders[encoder] += 1
            families[family[best]] += 1
            arch_sizes[arch].add(size[best])
            all_sizes.add(size[best])
            out.append(items[best])
    return out
