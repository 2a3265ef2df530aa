"""Expected failures: bad input or settings the user can fix, as opposed to bugs.

An expected failure is a :class:`WikihowTiirError` (every area's "bad input" error derives from it,
with a ``reason`` and a ``detail``), an invalid config (pydantic) or a missing input file, see
:func:`expected_error_message`; the ``wikihow-tiir`` command prints it as one ``error: ...`` line
and exits 2. Anything else is a bug and keeps its traceback. The messages are
deterministic (no addresses, no timings), like everything else a build writes.
"""

from __future__ import annotations


class WikihowTiirError(Exception):
    """An expected failure. ``reason`` is a short machine-friendly code (like a ``Reject``'s), ``detail``
    the human sentence, saying what to do where that is not obvious; ``str(exc)`` is the detail."""

    reason: str = "error"
    exit_code: int = 2

    def __init__(self, detail: str, reason: str | None = None):
        super().__init__(detail)
        self.detail = detail
        if reason is not None:
            self.reason = reason


class ConfigError(WikihowTiirError, ValueError):
    """A build configuration that cannot be used (a ValueError too, for callers that catch that)."""

    reason = "bad-config"


class RetiredSettingWarning(FutureWarning):
    """A setting of an older version, accepted but ignored; the ``wikihow-tiir`` command prints it as one
    ``warning: ...`` line (a FutureWarning: shown by default, meant for users)."""


def expected_error_message(exc: BaseException) -> str | None:
    """The one-line message of an expected failure, or None for a bug (which keeps its traceback)."""
    if isinstance(exc, WikihowTiirError):
        return _one_line(str(exc))
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return _one_line(validation_message(exc))
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return _one_line(f"{exc.filename}: no such file or folder")
    return None


def validation_message(exc) -> str:
    """A pydantic ValidationError as one deterministic line: ``where: what (got value)`` per problem."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err.get("loc", ())) or "configuration"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        got = err.get("input")
        # scalars only: a container's text could be huge (or, for an alias bomb, exponential)
        shown = f" (got {_short(got)})" if isinstance(got, (str, int, float, bool)) or got is None else ""
        parts.append(f"{where}: {msg}{shown}")
    return "; ".join(parts)


def _short(value, limit: int = 60) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
