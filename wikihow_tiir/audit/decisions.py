"""The decision format of the human audit: reading people's ``audit.jsonl`` files strictly.

One JSON object per line, one line per decided pair, as the review page exports it::

    {"query_id": "q-wh-12-s1-0", "decision": "drop", "reason": "illogical", "note": "", "reviewer": "ana"}

Every mistake is an :class:`AuditError` naming the file and the line, so a reviewer can fix the file
by hand; nothing is guessed (an unknown field is refused rather than ignored: it is usually a typo).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wikihow_tiir.errors import WikihowTiirError

DECISIONS = ("keep", "drop")
# the paper's reasons for dropping a generated pair (§2.3: illegal/invalid content, illogical
# content, image-text mismatch), plus "other", which must say why in the note
REASONS = ("invalid-content", "illogical", "image-text-mismatch", "other")
FIELDS = ("query_id", "decision", "reason", "note", "reviewer")
STORED_FIELDS = (*FIELDS, "query_sha256")  # audit/decisions.jsonl also binds a decision to the pair's content


class AuditError(WikihowTiirError, ValueError):
    """An expected failure of the audit (bad decision file, unknown pair, conflict): one clear message."""

    reason = "bad-audit"


@dataclass(frozen=True, slots=True, order=True)
class Decision:
    query_id: str
    decision: str  # keep | drop
    reason: str | None  # one of REASONS for a drop, None for a keep
    note: str
    reviewer: str

    @property
    def verdict(self) -> tuple[str, str | None]:
        """What must agree between two decisions on one pair (reviewers and notes may differ)."""
        return self.decision, self.reason

    def describe(self) -> str:
        return self.decision + (f" ({self.reason})" if self.reason else "") + f" by {self.reviewer!r}"

    def to_dict(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "decision": self.decision, "reason": self.reason, "note": self.note,
                "reviewer": self.reviewer}


@dataclass(frozen=True, slots=True)
class Located:
    """A decision and where it was read (``FILE line N``), for error messages."""

    decision: Decision
    where: str
    query_sha256: str | None = None  # known for stored decisions; filled in when applied


def _string(obj: dict[str, Any], key: str, where: str, *, required: bool) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise AuditError(f"{where}: the field {key!r} is missing")
        return ""
    if not isinstance(value, str):
        raise AuditError(f"{where}: {key!r} must be a string, not {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise AuditError(f"{where}: {key!r} is empty")
    return value


def parse_decision(obj: Any, where: str, *, stored: bool = False) -> Located:
    """One line's object -> a checked :class:`Located` decision (``stored``: a line of audit/decisions.jsonl)."""
    if not isinstance(obj, dict):
        raise AuditError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    allowed = STORED_FIELDS if stored else FIELDS
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise AuditError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; a decision has "
                         f"{', '.join(allowed)}")
    query_id = _string(obj, "query_id", where, required=True)
    reviewer = _string(obj, "reviewer", where, required=True)
    decision = _string(obj, "decision", where, required=True)
    if decision not in DECISIONS:
        raise AuditError(f"{where}: decision {decision!r} is not one of {', '.join(DECISIONS)}")
    reason = _string(obj, "reason", where, required=False) or None
    note = _string(obj, "note", where, required=False)
    if decision == "drop":
        if reason is None:
            raise AuditError(f"{where}: a drop needs a reason, one of {', '.join(REASONS)}")
        if reason not in REASONS:
            raise AuditError(f"{where}: reason {reason!r} is not one of {', '.join(REASONS)}")
        if reason == "other" and not note:
            raise AuditError(f"{where}: a drop for reason 'other' needs a note saying why")
    elif reason is not None:
        raise AuditError(f"{where}: a keep takes no reason (got {reason!r})")
    sha = None
    if stored:
        sha = _string(obj, "query_sha256", where, required=True)
    return Located(Decision(query_id, decision, reason, note, reviewer), where, sha)


def read_decision_file(path: Path, *, stored: bool = False, label: str | None = None) -> list[Located]:
    """Every decision of one JSON-lines file, checked; blank lines are skipped (but counted)."""
    name = label or str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise AuditError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise AuditError(f"{name}: is a folder, not a decision file") from None
    except OSError as exc:
        raise AuditError(f"{name}: cannot be read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8-sig")  # a BOM from a Windows editor is harmless
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise AuditError(f"{name} line {line}: not UTF-8 text (byte {exc.start} of the file cannot be decoded)"
                         ) from None
    out: list[Located] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AuditError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        out.append(parse_decision(obj, where, stored=stored))
    return out
