"""Retry policy of the LLM client: exponential backoff, and a 429 pause shared by a stage's workers."""

from __future__ import annotations

import threading
import time

from wikihow_tiir.retry_after import retry_after_s

__all__ = ["MAX_RETRY_AFTER_S", "MIN_RATE_LIMIT_PAUSE_S", "RateGate", "backoff_s", "rate_limit_pause_s"]

MAX_RETRY_AFTER_S = 120.0  # the longest Retry-After honoured at once (rate_limit_max_wait_s bounds the sum)
# the least pause after the n-th 429 of one call (doubling from this): a server that keeps
# answering 429 with "Retry-After: 0" is not hammered, and the request count stays bounded
MIN_RATE_LIMIT_PAUSE_S = 0.05
MAX_BACKOFF_S = 60.0


def backoff_s(first: float, attempt: int) -> float:
    """The pause before retry ``attempt`` (0-based): ``first`` doubling, at most a minute."""
    return min(first * (2 ** attempt), MAX_BACKOFF_S)


def rate_limit_pause_s(retry_after: str | None, first_backoff: float, limited: int) -> float:
    """The pause after the ``limited``-th 429 (0-based) of one call: the server's Retry-After (capped),
    else our own backoff, and never less than the doubling floor."""
    told = retry_after_s(retry_after, cap=MAX_RETRY_AFTER_S)
    return max(told if told is not None else backoff_s(first_backoff, limited),
               MIN_RATE_LIMIT_PAUSE_S * 2 ** min(limited, 8))


class RateGate:
    """After a 429, no worker of the stage sends anything before the server's Retry-After."""

    def __init__(self) -> None:
        self._until = 0.0
        self._lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def wait(self) -> None:
        while True:
            with self._lock:
                delay = self._until - time.monotonic()
            if delay <= 0:
                return
            time.sleep(delay)
