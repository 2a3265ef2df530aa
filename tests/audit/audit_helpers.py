"""Helpers for the audit tests: folder snapshots, split ids, decision files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def build_config(sample_archive: Path):
    from wikihow_tiir.config import load_config

    return load_config(overrides=[f'source.archive="{sample_archive}"', "scorer.enabled=false"])


def folder_bytes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``: what "nothing was written" and "same bytes" compare."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def split_ids(root: Path, config: str, split: str) -> list[str]:
    from wikihow_tiir.layout import split_files
    from wikihow_tiir.storage import read_rows

    column = "query-id" if config == "qrels" else "id"
    return [r[column] for r in read_rows(split_files(root, config, split), [column])]


def write_decisions(path: Path, records: list[dict | str]) -> Path:
    """A decision file: dicts as JSON lines, strings as they are (for malformed lines)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records),
                    encoding="utf-8")
    return path


def decision(query_id: str, verdict: str = "keep", reason: str | None = None, note: str = "",
             reviewer: str = "ana") -> dict:
    return {"query_id": query_id, "decision": verdict, "reason": reason, "note": note, "reviewer": reviewer}
