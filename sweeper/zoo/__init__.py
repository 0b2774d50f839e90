"""The smp catalogue under a budget, counted on the meta device."""

from __future__ import annotations

from sweeper.zoo.catalogue import (
    Candidate,
    InvalidPair,
    ZooResult,
    catalogue_names,
    format_count,
    natural_key,
    parse_count,
    select_pairs,
)
from sweeper.zoo.counting import list_candidates, sort_candidates, to_records

__all__ = [
    "Candidate",
    "InvalidPair",
    "ZooResult",
    "catalogue_names",
    "format_count",
    "list_candidates",
    "natural_key",
    "parse_count",
    "select_pairs",
    "sort_candidates",
    "to_records",
]
