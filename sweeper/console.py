"""The two rich consoles: results on stdout, everything else on stderr.

Keeping diagnostics off stdout is what makes ``sweeper zoo --format csv > zoo.csv`` safe. When
stdout is not a terminal (a pipe, a file, a test) tables get 200 columns instead of rich's
default 80, so that a saved table is not cut to ellipses.
"""

from __future__ import annotations

import sys

from rich.console import Console

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200, emoji=False)
#: Diagnostics are never hard-wrapped: a log keeps each line whole for grep (the terminal wraps).
err = Console(stderr=True, emoji=False, soft_wrap=True)
