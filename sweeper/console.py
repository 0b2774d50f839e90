"""The two rich consoles: results on stdout, everything else on stderr.

Keeping diagnostics off stdout is what makes ``sweeper zoo --format csv > zoo.csv`` safe.
"""

from __future__ import annotations

from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True)
