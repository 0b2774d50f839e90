"""Which architecture x encoder pairs a space lets compete, counted by the zoo at the space's size."""

from __future__ import annotations

import warnings

from sweeper.errors import SweeperError

#: The seed of the ``spread`` order: fixed, so that a space screens the same candidates whatever
#: its training seeds, and a study resumed or widened (``--trials``) keeps its first candidates.
ORDER_SEED = 0


def resolve_candidates(space, num_classes: int) -> list:
    """The zoo's :class:`~sweeper.zoo.Candidate` of every pair the space allows that runs at its
    image size, in the order screening follows when ``trials`` cuts the list: explicit ``pairs``
    in their order, else the zoo's filters in ``architectures.order`` (:mod:`sweeper.zoo.order`).

    smp's deprecated ``timm-*`` aliases compete only where the space names them (in ``pairs``,
    or by an ``encoders`` pattern that starts with ``timm-``), and never beside a twin of the same
    network: an alias whose twin is also a candidate is dropped, with a warning.
    """
    from sweeper import zoo

    arch = space.architectures
    size = space.base.image_size
    if arch.pairs:
        archs = sorted({a for a, _ in arch.pairs})
        encoders = sorted({e for _, e in arch.pairs})
        result = zoo.list_candidates(archs=archs, encoders=encoders,
                                     include_timm=any(e.startswith("tu-") for e in encoders),
                                     classes=num_classes, image_size=size)
        found = {(c.arch, c.encoder): c for c in result.candidates}
        invalid = {(p.arch, p.encoder): p.reason for p in result.invalid}
        where = f"{space.source}: architectures.pairs"
        for pair in arch.pairs:
            if pair in invalid:
                raise SweeperError(f"{where}: {pair[0]}/{pair[1]} cannot be built: {invalid[pair]}")
            if pair in found and not found[pair].runs:
                raise SweeperError(f"{where}: {pair[0]}/{pair[1]} does not run at {size} px: {found[pair].note}")
        chosen = [found[p] for p in arch.pairs if p in found]
    else:
        where = f"{space.source}: architectures"
        result = zoo.list_candidates(max_params=arch.max_params, archs=arch.archs or None,
                                     encoders=arch.encoders or None, exclude=arch.exclude or None,
                                     include_timm=arch.timm, classes=num_classes, image_size=size)
        chosen = zoo.order_candidates([c for c in result.candidates if c.runs], arch.order, seed=ORDER_SEED)
    chosen, dropped = zoo.drop_alias_twins(chosen)
    if dropped:
        names = ", ".join(c.key for c in dropped[:3]) + (", ..." if len(dropped) > 3 else "")
        warnings.warn(f"{where}: {len(dropped)} deprecated smp alias(es) left out ({names}): the same network "
                      "is a candidate under its current name", stacklevel=2)
    if not chosen:
        raise SweeperError(f"{space.source}: no architecture x encoder pair fits the space at {size} px")
    return chosen
