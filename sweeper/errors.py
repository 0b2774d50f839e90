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


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    """An exception's text as one line of at most ``limit`` characters, for an ``error:`` line
    or a record field (the type's name when the text is empty)."""
    text = " ".join(str(exc).split()) or (type(exc).__name__ if isinstance(exc, BaseException) else "")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RunError(Exception):
    """A training run that ended early for a reason of its own; ``kind`` names the reason.

    These are not the user's mistakes (those raise :class:`SweeperError` before training): the
    same seed fails the same way, so a study records the kind and does not retry the run.
    """

    kind = "error"


class BuildError(RunError):
    """smp refused the pair (e.g. an encoder that cannot dilate, under DeepLabV3)."""

    kind = "build"


class OutOfMemory(RunError):
    kind = "oom"


class NonFiniteLoss(RunError):
    kind = "nan"


class DataLoaderError(RunError):
    """A DataLoader worker process died."""

    kind = "dataloader"


#: Every ``kind`` a :class:`RunError` can have, as recorded in a failed trial.
RUN_FAIL_KINDS = ("build", "oom", "nan", "dataloader", "error")


class Interrupted(KeyboardInterrupt):
    """A stop asked for by a signal: Ctrl-C (SIGINT), a scheduler's SIGTERM, a closed terminal's
    SIGHUP. All three end the running trial the same way; the command exits with 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
