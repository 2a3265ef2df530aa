"""What an LLM call can fail with: ``reason`` (the reject code) and ``detail`` (the redacted sentence)."""

from __future__ import annotations

from wikihow_tiir.errors import WikihowTiirError
from wikihow_tiir.redact import redact


class GenerationError(WikihowTiirError):
    """A call that produced nothing usable; ``reason`` becomes the recorded reject, ``detail`` its
    (redacted) explanation and ``answer`` keeps the model's answer when it was refused for its content."""

    reason = "generation-failed"

    def __init__(self, reason: str, detail: str = "", answer: str | None = None):
        super().__init__(redact(detail), reason)
        self.answer = answer


class Invalid(WikihowTiirError):
    """An answer that parsed but is not acceptable: ``reason``, and ``detail`` (the problem, told to the
    model in the repair turn)."""

    reason = "invalid-answer"

    def __init__(self, reason: str, detail: str, answer: str | None = None):
        super().__init__(detail, reason)
        self.answer = answer


class BadResponse(Exception):
    """A body that is not the answer the API promises (retried, then the reject ``bad-response``)."""
