"""The human audit of the test split, as the paper did (about 10,000 generated pairs reviewed, 7,654 kept).

* :func:`write_review_page` renders a self-contained HTML page on which people keep or drop each
  test pair with the keyboard, and export their decisions as ``audit.jsonl``;
* :func:`apply_audit` removes the dropped pairs from the test split and records the audit in
  ``manifest.json`` and on the card; the build re-applies stored decisions (:func:`reapply_after_build`).
"""

from wikihow_tiir.audit.apply import apply_audit, audit_sentence, pair_sha256, reapply_after_build
from wikihow_tiir.audit.decisions import DECISIONS, REASONS, AuditError, Decision, read_decision_file
from wikihow_tiir.audit.page import write_review_page

__all__ = ["DECISIONS", "REASONS", "AuditError", "Decision", "apply_audit", "audit_sentence", "pair_sha256",
           "read_decision_file", "reapply_after_build", "write_review_page"]
