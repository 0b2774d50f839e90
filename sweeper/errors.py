"""The one exception type the CLI turns into a one-line message.

Anything a user can cause (a bad path, a malformed file, an unknown name, a budget like ``50MB``)
raises :class:`SweeperError` with a message that names the file or field and, where it helps, the
close match. The CLI prints ``error: <message>`` on stderr and exits with :attr:`exit_code`;
library callers catch it like any other exception. Bugs are not wrapped: they keep their
traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SweeperError(Exception):
    """A problem with the user's input or environment; ``str(err)`` is the whole message."""

    exit_code = 2


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest of ``choices``, or ``''``."""
    match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
