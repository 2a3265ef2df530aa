"""The human audit of the test split, as the paper did (about 10,000 generated pairs reviewed, 7,654 kept).

* :func:`write_review_page` renders a self-contained HTML page on which people keep or drop each
  test pair with the keyboard, and export their decisions as ``audit.jsonl``;
* :func:`apply_audit` removes the dropped pairs from the test split and records the audit in
  ``manifest.json`` and on the card; the build re-applies stored decisions (:func:`reapply_after_build`).
"""

from __future__ import annotations

import importlib
from typing import Any

# imported on first use: the CLI imports this package at every start
_EXPORTS = {
    **dict.fromkeys(("apply_audit", "audit_sentence", "pair_sha256", "reapply_after_build"), "wikihow_tiir.audit.apply"),
    **dict.fromkeys(("DECISIONS", "REASONS", "AuditError", "Decision", "read_decision_file"),
                    "wikihow_tiir.audit.decisions"),
    "write_review_page": "wikihow_tiir.audit.page",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'wikihow_tiir.audit' has no attribute {name!r}")
