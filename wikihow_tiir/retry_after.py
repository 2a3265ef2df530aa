"""The one ``Retry-After`` parser, for every HTTP client of the project (the crawler and the LLM client).

A server's header is input like any other: a malformed value must never raise (one bad 429 would
end a crawl or a query shard), and ``inf``/``nan``/an absurd date must not become a pause.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from datetime import UTC

# delta-seconds (RFC 9110 says digits; servers also send decimals), ASCII only: float() would also
# take "1_0", "١٠" and "infinity"
_SECONDS = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def retry_after_s(value: str | None, cap: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date), at least 0 and at
    most ``cap``; None when there is none or it is malformed (the caller then uses its own pause)."""
    text = str(value or "").strip()
    if not text:
        return None
    if _SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        try:
            parsed = email.utils.parsedate_to_datetime(text)
            if parsed.tzinfo is None:  # HTTP dates are GMT
                parsed = parsed.replace(tzinfo=UTC)
            seconds = parsed.timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    seconds = max(seconds, 0.0)
    return min(seconds, cap) if cap is not None else seconds
