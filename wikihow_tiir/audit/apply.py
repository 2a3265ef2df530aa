"""Applying people's decisions to a built dataset: the dropped pairs leave the test split.

:func:`apply_audit` checks every decision file completely before it writes anything, then

1. stores the decisions in the build folder (``audit/decisions.jsonl``, each bound to the sha256 of
   the pair it judged, and ``audit/applied.jsonl``, the files they came from), so that a re-run of
   the build applies them again (:func:`reapply_after_build`) instead of bringing dropped pairs back;
2. rewrites ``queries/test-*`` and ``qrels/test-*`` without the dropped pairs (the corpus and the
   train split are never touched);
3. updates ``manifest.json`` (file entries, test statistics and an ``audit`` section) and the card.

Decisions accumulate: applying a second file adds its decisions to the stored ones, and applying
the same files again changes nothing (same bytes). Two decisions on one pair must agree on
keep/drop and the reason; reviewers and notes may differ (a pair reviewed twice).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from wikihow_tiir import layout
from wikihow_tiir.audit.decisions import AuditError, Decision, Located, read_decision_file
from wikihow_tiir.io import (
    atomic_write_json,
    atomic_write_text,
    sha256_bytes,
    sha256_file,
    stable_hash,
)
from wikihow_tiir.layout import split_files
from wikihow_tiir.publish.card import audit_sentence
from wikihow_tiir.storage import read_rows, write_sharded, write_sharded_iter

STORE = layout.AUDIT_DECISIONS  # every applied decision, bound to its pair's content
APPLIED = layout.AUDIT_APPLIED  # the decision files applied so far (name, sha256, count)
STALE = layout.AUDIT_STALE  # decisions on pairs a later build no longer has, set aside (kept)
DEFAULT_ROWS_PER_FILE = 1000


def pair_sha256(row: dict[str, Any]) -> str:
    """The identity of a generated pair as people saw it: query text, pictures (bytes) and its positive.

    Query ids are ``q-<document>-<k>``, so a build with other generation settings reuses an id for a
    different query; a decision is bound to this hash and never carried over to another text."""
    images = [sha256_bytes(im["bytes"]) if im and im.get("bytes") else None for im in row["images"]]
    return stable_hash("audit-pair", row["id"], row["positive_id"], row["texts"], images)


def test_pairs(root: Path) -> dict[str, str]:
    """``{query id: pair sha256}`` of the test split on disk (read a row group at a time)."""
    files = split_files(root, "queries", "test")
    return {r["id"]: pair_sha256(r) for r in read_rows(files, ["id", "positive_id", "texts", "images"])}


def read_manifest(root: Path) -> dict[str, Any]:
    path = layout.manifest_path(root)
    if not root.is_dir():
        raise AuditError(f"{root}: not a folder")
    if not path.is_file():
        raise AuditError(f"{root} has no manifest.json: is it a built dataset folder?")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuditError(f"{path}: does not parse ({exc})") from None
    if not isinstance(manifest, dict):
        raise AuditError(f"{path}: not a JSON object")
    return manifest


def read_stored(root: Path) -> list[Located]:
    path = root / STORE
    return read_decision_file(path, stored=True) if path.is_file() else []


def read_applied(root: Path) -> dict[str, dict[str, Any]]:
    """The decision files applied so far, by sha256 (``audit/applied.jsonl``)."""
    path = root / APPLIED
    out: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return out
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            out[entry["sha256"]] = {"name": str(entry["name"]), "sha256": str(entry["sha256"]),
                                    "decisions": int(entry["decisions"])}
        except (ValueError, TypeError, KeyError) as exc:
            raise AuditError(f"{path} line {number}: not a record of an applied file "
                             f"({type(exc).__name__}: {exc})") from None
    return out


def applied_drops(stored: list[Located], current: dict[str, str]) -> dict[str, str]:
    """Stored drops whose pair is gone from the test split: applied by an earlier run (id -> sha256)."""
    return {s.decision.query_id: s.query_sha256 or "" for s in stored
            if s.decision.decision == "drop" and s.decision.query_id not in current}


def dataset_identity(current: dict[str, str], dropped: dict[str, str]) -> str:
    """The test split as generated (before any drop): what a review's progress belongs to."""
    return stable_hash("wikihow-tiir-audit", sorted({**dropped, **current}.items()))


def _train_ids(root: Path) -> set[str]:
    return {r["id"] for r in read_rows(split_files(root, "queries", "train"), ["id"])}


def _unknown(root: Path, rec: Located, train: set[str]) -> AuditError:
    qid = rec.decision.query_id
    hint = " (it is a train query; only the test split is audited)" if qid in train else ""
    return AuditError(f"{rec.where}: query id {qid!r} is not a test pair of {root}{hint}")


def _merge(records: Iterable[Located]) -> dict[tuple[Decision, str], Located]:
    """Identical decisions once; two decisions on one pair that disagree are an error naming both."""
    first: dict[tuple[str, str], Located] = {}
    merged: dict[tuple[Decision, str], Located] = {}
    for rec in records:
        pair = (rec.decision.query_id, rec.query_sha256 or "")
        seen = first.setdefault(pair, rec)
        if seen.decision.verdict != rec.decision.verdict:
            raise AuditError(f"{rec.where}: conflicting decisions for query {pair[0]!r}: "
                             f"{rec.decision.describe()} here, {seen.decision.describe()} in {seen.where}")
        merged.setdefault((rec.decision, pair[1]), rec)
    return merged


def _stored_rows(records: Iterable[tuple[Decision, str]]) -> list[dict[str, Any]]:
    return [{**d.to_dict(), "query_sha256": sha} for d, sha in sorted(set(records))]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    # one decision per line, keys in the export's order (easier to read and diff than sorted keys)
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _rows_per_file(manifest: dict[str, Any]) -> int:
    value = ((manifest.get("config") or {}).get("output") or {}).get("rows_per_file")
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_ROWS_PER_FILE


def _rewrite_test_split(root: Path, drop: set[str], rows_per_file: int) -> None:
    """queries/test-* and qrels/test-* without the dropped pairs, in the build's order and file layout.

    The new files are written aside first (the old ones are still being read), then moved in."""
    staging = layout.audit_staging(root)
    shutil.rmtree(staging, ignore_errors=True)
    qfiles = split_files(root, "queries", "test")
    total = sum(1 for r in read_rows(qfiles, ["id"]) if r["id"] not in drop)
    new = {"queries": write_sharded_iter(layout.config_dir(staging, "queries"),
                                         (r for r in read_rows(qfiles) if r["id"] not in drop),
                                         total, "queries", "test", rows_per_file),
           "qrels": write_sharded(layout.config_dir(staging, "qrels"),
                                  [r for r in read_rows(split_files(root, "qrels", "test")) if r["query-id"] not in drop],
                                  "qrels", "test", max(rows_per_file, 10000))}  # the build's qrels layout
    for config, paths in new.items():
        names = {p.name for p in paths}
        for p in paths:
            os.replace(p, layout.config_dir(root, config) / p.name)
        for old in split_files(root, config, "test"):
            if old.name not in names:
                old.unlink()
    shutil.rmtree(staging, ignore_errors=True)


def _test_statistics(root: Path) -> dict[str, Any] | None:
    from wikihow_tiir.stats import interleaved_row

    files = split_files(root, "queries", "test")
    if not files:
        return None
    return interleaved_row(((r["texts"], r["image_meta"]) for r in read_rows(files, ["texts", "image_meta"])),
                           positives=1)


def _write_card(root: Path, manifest: dict[str, Any]) -> str | None:
    """Re-render a generated card; a card maintained by hand (marker removed) is left alone."""
    from wikihow_tiir.publish.card import GENERATED_MARKER, render_card

    card = layout.card_path(root)
    if card.is_file() and GENERATED_MARKER not in card.read_text(encoding="utf-8", errors="replace"):
        return None
    atomic_write_text(card, render_card(manifest))
    return layout.CARD


def apply_audit(dataset_dir: str | Path, files: Iterable[str | Path] = (), *, fresh: bool = False,
                report: bool = True) -> dict[str, Any]:
    """Apply decision files (and the decisions stored by earlier runs) to a built dataset.

    ``fresh``: the test split was just written by the build and holds every generated pair, so a
    stored decision that matches none of them belongs to an earlier, different build: it is set
    aside in ``audit/stale.jsonl`` (kept, not applied). Otherwise a stored drop whose pair is gone
    was applied by an earlier run. ``report``: regenerate report/ when the folder has one.
    Returns the manifest's ``audit`` section plus what was written; raises :class:`AuditError`
    (and writes nothing) for a bad file, an unknown pair or conflicting decisions.
    """
    root = Path(dataset_dir)
    manifest = read_manifest(root)
    stored = read_stored(root)
    current = test_pairs(root)
    gone = {} if fresh else applied_drops(stored, current)
    live: list[Located] = []
    stale: list[Located] = []
    for s in stored:
        matches = current.get(s.decision.query_id, gone.get(s.decision.query_id)) == s.query_sha256
        (live if matches else stale).append(s)
    if not current and not gone:
        raise AuditError(f"{root} has no test split to audit ({layout.split_pattern('queries', 'test')})")
    old_stale = read_decision_file(root / STALE, stored=True) if (root / STALE).is_file() else []
    applied_files = read_applied(root)

    new: list[Located] = []
    new_files: list[dict[str, Any]] = []
    train: set[str] | None = None
    for f in files:
        records = read_decision_file(Path(f))
        for rec in records:
            sha = current.get(rec.decision.query_id, gone.get(rec.decision.query_id))
            if sha is None:
                raise _unknown(root, rec, train if train is not None else (train := _train_ids(root)))
            new.append(Located(rec.decision, rec.where, sha))
        new_files.append({"name": Path(f).name, "sha256": sha256_file(f), "decisions": len(records)})
    merged = _merge([*live, *new])

    # ---- everything is checked; from here on the build folder is written
    verdicts = {d.query_id: d.verdict for d, _ in merged}
    dropped = {q for q, (decision, _) in verdicts.items() if decision == "drop"}
    for entry in new_files:
        applied_files.setdefault(entry["sha256"], entry)
    layout.audit_dir(root).mkdir(exist_ok=True)
    _write_jsonl(root / STORE, _stored_rows(merged))
    _write_jsonl(root / APPLIED, sorted(applied_files.values(), key=lambda e: (e["name"], e["sha256"])))
    written = [STORE, APPLIED]
    set_aside = _stored_rows((s.decision, s.query_sha256 or "") for s in [*old_stale, *stale])
    if stale:
        _write_jsonl(root / STALE, set_aside)
        written.append(STALE)
    if dropped & current.keys():
        _rewrite_test_split(root, dropped & current.keys(), _rows_per_file(manifest))
        written += [layout.split_pattern("queries", "test"), layout.split_pattern("qrels", "test")]

    from wikihow_tiir.storage import file_entries

    kept = current.keys() - dropped
    audit = {
        "pairs": {"generated": len(current) + len(gone), "kept": len(kept), "dropped": len(dropped),
                  "unaudited": len(kept - verdicts.keys())},
        "decisions": dict(sorted(Counter(d for d, _ in verdicts.values()).items())),
        "reasons": dict(sorted(Counter(r for d, r in verdicts.values() if d == "drop").items())),
        "reviewers": dict(sorted(Counter(d.reviewer for d, _ in merged).items())),
        "files": sorted(applied_files.values(), key=lambda e: (e["name"], e["sha256"])),
        "stale": len(set_aside),  # decisions set aside in audit/stale.jsonl (on pairs no longer built)
        "decisions_file": STORE,
    }
    manifest["audit"] = audit
    manifest["files"] = file_entries(root)
    stats = manifest.setdefault("statistics", {}).setdefault("queries", {})
    test_stats = _test_statistics(root)
    if test_stats is None:
        stats.pop("test", None)
    else:
        stats["test"] = test_stats
    atomic_write_json(layout.manifest_path(root), manifest)
    written.append(layout.MANIFEST)
    if (card := _write_card(root, manifest)) is not None:
        written.append(card)
    if report and layout.report_index(root).is_file():
        from wikihow_tiir.report import write_report

        write_report(root)
        written.append(f"{layout.REPORT}/")
    return {**audit, "written": written, "card_updated": card is not None}


def reapply_after_build(output: str | Path, log: Callable[[str], None] = lambda m: None) -> dict[str, Any] | None:
    """The build's last step: apply the decisions people made on an earlier run of this build folder."""
    root = Path(output)
    if not (root / STORE).is_file():
        return None
    summary = apply_audit(root, fresh=True, report=False)
    log(f"audit: {audit_sentence(summary)}" + (f"; {summary['stale']} stale decision(s) set aside in {STALE}"
                                                  if summary["stale"] else ""))
    return summary
