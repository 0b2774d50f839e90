"""Ranking statistics, pure numpy/scipy on one array convention: ``values`` (runs x candidates).

Homes: :mod:`.arrays` (the convention, input checks), :mod:`.summary` (per-candidate mean, sd,
intervals), :mod:`.verdicts` (the decision rule of the table and of racing), :mod:`.compare`
(reference paired tests), :mod:`.power` (noise floor, detectable gaps, seeds needed),
:mod:`.srange` (the studentized range), :mod:`.ranking` (the ranked table), :mod:`.ablation`
(changes against a fixed baseline: Dunnett's many-to-one intervals, paired by seed).
"""

from sweeper.stats.ablation import (
    ABLATION_PROCEDURE,
    ARM_VERDICTS,
    BETTER,
    AblationResult,
    ArmEffect,
    compare_to_baseline,
    many_to_one_isf,
    many_to_one_sf,
    next_arms,
)
from sweeper.stats.arrays import Label, as_values, pivot_runs
from sweeper.stats.compare import Comparison, best_index, compare_to_best, holm, probability_of_improvement
from sweeper.stats.power import min_detectable_effect, noise_floor, seeds_needed
from sweeper.stats.ranking import Ranking, Row, rank_candidates
from sweeper.stats.srange import studentized_range_isf, studentized_range_sf
from sweeper.stats.summary import CI_METHODS, Summary, summarize
from sweeper.stats.verdicts import (
    BEST,
    EQUIVALENT,
    NOISY_RATIO,
    PROCEDURE,
    UNDECIDED,
    VERDICTS,
    WORSE,
    Verdicts,
    decide,
    needs_more_seeds,
    next_candidates,
)

__all__ = [
    "ABLATION_PROCEDURE", "ARM_VERDICTS", "AblationResult", "ArmEffect", "BETTER", "compare_to_baseline",
    "many_to_one_isf", "many_to_one_sf", "next_arms",
    "BEST", "CI_METHODS", "EQUIVALENT", "NOISY_RATIO", "PROCEDURE", "UNDECIDED", "VERDICTS", "WORSE",
    "Comparison", "Label", "Ranking", "Row", "Summary", "Verdicts", "as_values", "best_index",
    "compare_to_best", "decide", "holm", "min_detectable_effect", "needs_more_seeds", "next_candidates",
    "noise_floor", "pivot_runs", "probability_of_improvement", "rank_candidates", "seeds_needed",
    "studentized_range_isf", "studentized_range_sf", "summarize",
]
