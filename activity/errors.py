"""User-facing errors.

Anything raised as :class:`ActivityError` is printed by the CLI as one line
(``error: <message>``) with a non-zero exit code and no traceback. Library code
raises these for problems the user can fix (a missing file, a bad config value);
genuine bugs stay ordinary exceptions so that they keep their tracebacks.
"""

from __future__ import annotations


class ActivityError(Exception):
    """A problem with the user's input, explained in one line."""


class VideoError(ActivityError):
    """A video file that cannot be opened or decoded.

    Args:
        path: the offending file.
        reason: a short, human-readable reason.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ConfigError(ActivityError, ValueError):
    """An unknown key or name, a wrong type or an out-of-range value (in a config, or passed to a
    function that takes a registered name)."""


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first non-blank line of ``str(exc)``, stripped and cut to ``limit`` characters; "" when it has none.
    How a library's multi-line message becomes part of one line of ours."""
    line = next((l.strip() for l in str(exc).splitlines() if l.strip()), "")
    return line[:limit] if limit is not None else line


def describe(exc: BaseException, limit: int | None = None) -> str:
    """``"TypeName: first line of the message"``: how an exception from a library is named inside one line
    of ours (:func:`first_line`, cut to ``limit`` characters)."""
    return f"{type(exc).__name__}: {first_line(exc, limit)}"
