"""The one exception the parser raises."""

from __future__ import annotations


class ParseError(ValueError):
    """A page that yields no usable article.

    ``reason`` is a short machine-friendly code ("empty", "not-html", "not-wikihow", "no-steps",
    "truncated"); the message explains it for people.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __reduce__(self):  # keep both arguments when sent across processes (dask workers)
        return (type(self), (self.reason, self.message))
