"""The smp catalogue under a budget, counted on the meta device."""

from __future__ import annotations

from sweeper.zoo.catalogue import (
    DEPRECATED_PREFIX,
    Candidate,
    InvalidPair,
    ZooResult,
    alias_twins,
    catalogue_names,
    drop_alias_twins,
    format_count,
    is_deprecated,
    natural_key,
    parse_count,
    select_pairs,
)
from sweeper.zoo.counting import list_candidates, sort_candidates, to_records
from sweeper.zoo.order import ORDERS, encoder_family, order_candidates

__all__ = [
    "DEPRECATED_PREFIX",
    "ORDERS",
    "Candidate",
    "InvalidPair",
    "ZooResult",
    "alias_twins",
    "catalogue_names",
    "drop_alias_twins",
    "encoder_family",
    "format_count",
    "is_deprecated",
    "list_candidates",
    "natural_key",
    "order_candidates",
    "parse_count",
    "select_pairs",
    "sort_candidates",
    "to_records",
]
