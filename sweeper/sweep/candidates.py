"""Which architecture x encoder pairs a space lets compete, counted by the zoo at the space's size."""

from __future__ import annotations

from sweeper.errors import SweeperError


def resolve_candidates(space, num_classes: int) -> list:
    """The zoo's :class:`~sweeper.zoo.Candidate` of every pair the space allows that runs at its
    image size: explicit ``pairs`` in their order, else the zoo's filters, smallest first (the
    order screening follows when ``trials`` cuts the list)."""
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
        result = zoo.list_candidates(max_params=arch.max_params, archs=arch.archs or None,
                                     encoders=arch.encoders or None, exclude=arch.exclude or None,
                                     include_timm=arch.timm, classes=num_classes, image_size=size)
        chosen = [c for c in zoo.sort_candidates(result.candidates, "params") if c.runs]
    if not chosen:
        raise SweeperError(f"{space.source}: no architecture x encoder pair fits the space at {size} px")
    return chosen
