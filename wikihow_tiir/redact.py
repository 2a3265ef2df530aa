"""Keep credentials out of everything the project stores or prints.

Servers echo what they were sent: an OpenAI-compatible proxy answers a bad key with
``Incorrect API key provided: sk-...`` and a broken gateway may dump the request's headers into its
error page. Those texts end up in rejects, stage records, caches and logs, so every error text goes
through :func:`redact` before it is kept. Two kinds of secrets are removed:

* **known secrets**: the exact values registered with :func:`register_secret` (the generation
  backends register the key they read from ``api_key_env``; publish code can register its Hub
  token) or passed as ``secrets=``;
* **credential-shaped text**: ``Authorization:``/``api_key=``-style values, ``Bearer`` tokens,
  OpenAI-style ``sk-...`` keys and Hugging Face ``hf_...`` tokens.

:func:`redact_tokens` is the careful variant for a model's *answer*, which is data (a query about
"an authorization letter" must stay intact): it removes only known secrets and unmistakable token
shapes. Both are deterministic, so identical builds still write identical bytes.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

REDACTED = "[REDACTED]"
# shorter values are not registered: replacing e.g. "test" everywhere would corrupt ordinary text
MIN_SECRET_LENGTH = 8

# unmistakable token shapes (safe on ordinary prose)
_TOKENS = [
    re.compile(r"\bsk-[A-Za-z0-9_*\-]{16,}"),  # OpenAI-style keys, also the masked "sk-abc***xyz" echo
    re.compile(r"\bhf_[A-Za-z0-9]{16,}"),  # Hugging Face tokens
    # a bearer token with at least one digit ("bearer instruments" is prose, "Bearer eyJ0e1..." is not)
    re.compile(r"(?i)(\bbearer\s+)(?=[A-Za-z._~+/=*\-]*\d)[A-Za-z0-9._~+/=*\-]{12,}"),
]
# header- or parameter-like values: error texts only
_FIELDS = re.compile(
    r"(?i)(\b(?:proxy-)?authorization|\bx-api-key|\bapi[_-]?key|\baccess[_-]?token|\bhf[_-]?token)"
    r"([\"']?\s*[:=]\s*[\"']?)((?:bearer|basic|token)\s+)?([^\s\"',;&}]+)")

_lock = threading.Lock()
_known: set[str] = set()
_known_re: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Remember a secret so every later :func:`redact`/:func:`redact_tokens` removes it (values
    shorter than ``MIN_SECRET_LENGTH`` are ignored)."""
    global _known_re
    if not value or len(value.strip()) < MIN_SECRET_LENGTH:
        return
    value = value.strip()
    with _lock:
        if value in _known:
            return
        _known.add(value)
        _known_re = _alternation(_known)


def _alternation(values: Iterable[str]) -> re.Pattern[str] | None:
    # longest first, so a secret that contains another is removed whole
    ordered = sorted({v for v in values if v}, key=lambda v: (-len(v), v))
    return re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None


def _known_secrets(text: str, secrets: Iterable[str]) -> str:
    extra = [s.strip() for s in secrets if s and len(s.strip()) >= MIN_SECRET_LENGTH]
    with _lock:
        pattern = _known_re if not extra else _alternation([*_known, *extra])
    return pattern.sub(REDACTED, text) if pattern is not None else text


def redact_tokens(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without known secrets and token-shaped credentials (for model answers kept as data)."""
    if not text:
        return text
    text = _known_secrets(text, secrets)
    for pattern in _TOKENS:
        text = pattern.sub(lambda m: (m.group(1) if m.re.groups else "") + REDACTED, text)
    return text


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without any credential we can recognise (for error texts, rejects and logs)."""
    if not text:
        return text
    text = redact_tokens(text, secrets)
    return _FIELDS.sub(lambda m: m.group(1) + m.group(2) + (m.group(3) or "")
                       + (m.group(4) if m.group(4) == REDACTED else REDACTED), text)
