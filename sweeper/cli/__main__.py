"""``python -m sweeper.cli``: the same as the ``sweeper`` command."""

from sweeper.cli import main

main()
