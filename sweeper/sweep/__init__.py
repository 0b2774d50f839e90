"""The study side: decides what to run next and records it in an Optuna storage.

Homes: :mod:`.storage` (URLs, opening storages), :mod:`.workers` (trials of dead workers),
:mod:`.disk` (refused writes, torn journals), :mod:`.records` (the one view of a trial and of a
study), :mod:`.plans` (what to run next), :mod:`.runner` (claim, train, record a
unit), :mod:`.pruners` (the pruner table), :mod:`.space` (search space files, with :mod:`.fields` and
:mod:`.hparams`),
:mod:`.candidates` (the pairs a space allows), :mod:`.ranking` (a study's ranked table),
:mod:`.study` (the tune and noise jobs), :mod:`.dashboard` (optuna-dashboard).
"""
