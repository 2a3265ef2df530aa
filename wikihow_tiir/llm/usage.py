"""What calls cost: tokens and images per work item, network counters per process."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "calls", "images")


def token_counts(value: Any) -> dict[str, int]:
    """The token counts of a body's ``usage`` (counts a server or an old cache got wrong are left out)."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k in ("prompt_tokens", "completion_tokens", "total_tokens")
            if isinstance(v := value.get(k), int) and not isinstance(v, bool) and v >= 0}


@dataclass
class Usage:
    """Tokens and images of one work item (stored with its record, so resumed runs count the same)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0  # model calls made for the item (cached or not)
    images: int = 0

    def add(self, response: dict[str, Any]) -> None:
        u = token_counts(response.get("usage"))
        self.prompt_tokens += u.get("prompt_tokens", 0)
        self.completion_tokens += u.get("completion_tokens", 0)
        self.calls += 1

    def __iadd__(self, other: Usage) -> Usage:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.calls += other.calls
        self.images += other.images
        return self

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "calls": self.calls, "images": self.images}

    @classmethod
    def from_dict(cls, data: Any) -> Usage:
        """The inverse of :meth:`to_dict`; ValueError for anything else (a record file not to trust)."""
        if not isinstance(data, dict) or not all(type(data.get(k)) is int for k in USAGE_KEYS):
            raise ValueError("usage is not four integer counts")
        return cls(**{k: data[k] for k in USAGE_KEYS})


def total_usage(usages) -> Usage:
    total = Usage()
    for u in usages:
        total += u
    return total


@dataclass
class RunCounters:
    """What this process did over the network (differs between a fresh and a resumed run)."""

    http_requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    rate_limited: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def bump(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def to_dict(self) -> dict[str, int]:
        return {"http_requests": self.http_requests, "cache_hits": self.cache_hits,
                "retries": self.retries, "rate_limited": self.rate_limited}
