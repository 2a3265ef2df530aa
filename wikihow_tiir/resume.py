"""The one resume-marker format: a step that is done says so in a ``.done`` marker beside its files.

Every shard-level step (the build's corpus and query shards, each generation stage of a query
shard) writes its files atomically, then ``<folder>/<name>.done`` holding the fingerprint of its
inputs and settings, its stats and the size and sha256 of each file it wrote (paths relative to
``<folder>``). A re-run trusts the step only when the fingerprint matches and every file is still
what the step wrote, so a killed, cut or edited file is redone, never read; and it hashes only
this step's own files, so resuming stays cheap.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from wikihow_tiir.io import atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file

log = logging.getLogger(__name__)

MARKER_SUFFIX = ".done"


def marker_path(folder: Path, name: str) -> Path:
    return Path(folder) / f"{name}{MARKER_SUFFIX}"


def write_file(path: Path, data: bytes) -> dict[str, Any]:
    """Write one file of a step atomically; returns what its marker records about it."""
    atomic_write_bytes(path, data)
    return {"bytes": len(data), "sha256": sha256_bytes(data)}


def file_entry(path: Path) -> dict[str, Any]:
    """What a marker records about a file the step has already written (read back and hashed)."""
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def file_problem(path: Path, want: Any) -> str | None:
    """Why ``path`` is not the file a marker recorded (size first: a cut file costs no hashing)."""
    if not isinstance(want, dict):
        return f"{path.name}: no size and sha256 in the marker"
    try:
        size = path.stat().st_size
    except OSError:
        return f"{path.name} is missing"
    if size != want.get("bytes"):
        return f"{path.name} has {size} bytes, the shard wrote {want.get('bytes')}"
    if sha256_file(path) != want.get("sha256"):
        return f"{path.name} does not match the sha256 the shard wrote"
    return None


def read_marker(folder: Path, name: str) -> dict[str, Any] | None:
    """The marker's JSON object, or None when there is none (or it is not one)."""
    try:
        data = json.loads(marker_path(folder, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable, not UTF-8, not JSON
        return None
    return data if isinstance(data, dict) else None


def done(folder: Path, name: str, fingerprint: str) -> dict[str, Any] | None:
    """The stats of a finished step, or None when it must be (re)done: no marker, another
    fingerprint, a marker that vouches for no file (an older format), or a file the marker vouches
    for that is no longer what the step wrote (cut, rewritten, deleted): that one is logged."""
    data = read_marker(folder, name)
    if data is None or data.get("fingerprint") != fingerprint:
        return None  # not done, or done with other inputs or settings: nothing is wrong
    files = data.get("files")
    if not isinstance(files, dict) or not files:
        return None
    for rel, want in sorted(files.items()):
        problem = file_problem(Path(folder) / rel, want)
        if problem:
            log.warning("%s/%s: %s; rebuilding the shard", Path(folder).name, name, problem)
            return None
    stats = data.get("stats", {})
    return stats if isinstance(stats, dict) else {}


def finish(folder: Path, name: str, fingerprint: str, stats: dict[str, Any],
           files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Write the marker last: it vouches for the fingerprint and for each file the step wrote."""
    atomic_write_json(marker_path(folder, name), {"fingerprint": fingerprint, "stats": stats, "files": files})
    return stats
