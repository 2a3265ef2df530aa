"""The build's output folder: whose it is, and which of its files the build may rewrite or remove.

A build writes ``README.md`` (the card), ``manifest.json``, ``corpus/``, ``queries/``, ``qrels/``,
``rejects/``, ``report/`` and ``work/``; everything in ``corpus/``, ``queries/`` and ``qrels/`` named
``*.parquet`` is published as the dataset. So a build refuses to start in a non-empty folder that is
not one of its own (the user's README.md would be overwritten) unless told to (``--force``), and
always refuses one whose data folders hold Parquet files it did not write (they would be published
with the dataset, or stop the build at the manifest). Removing stale files is limited to names
the build writes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from wikihow_tiir import layout
from wikihow_tiir.io import atomic_write_json

# written when a build starts, so an interrupted build is recognised as ours before any shard is done
OWNER_FILE = layout.OWNER_FILE
BUILD_ENTRIES = layout.BUILD_ENTRIES
# rejects/<stage>.jsonl of the stages that reject things (Reject.stage); generate.<step> for the generator
_REJECT_FILE = re.compile(r"^(parse|segment|images|vgsi|filter|generate\.[a-z][a-z0-9_-]*)\.jsonl$")


def _entries(folder: Path, limit: int = 5) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(layout.manifest_path(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (isinstance(data, dict) and data.get("name") == "wikiHow-TIIR"
            and (data.get("created_by") or {}).get("package") == "wikihow-tiir"):
        return data
    return None


def is_build_folder(folder: Path) -> bool:
    """A build of ours, finished (its manifest) or not (the owner file, or finished work shards)."""
    folder = Path(folder)
    return ((folder / OWNER_FILE).is_file() or _manifest(folder) is not None
            or bool(layout.work_shard_files(folder, "corpus", "done")))


def check_output_folder(output: Path, force: bool = False) -> None:
    """Refuse an output folder the build would damage (see the module's docstring), before any work."""
    from wikihow_tiir.build import BuildError

    output = Path(output)
    if not output.exists():
        return
    if not output.is_dir():
        raise BuildError(f"the output {output} is a file, not a folder; choose a folder", "output-not-a-folder")
    foreign = sorted(f"{config}/{p.name}" for config in layout.CONFIGS if layout.config_dir(output, config).is_dir()
                     for p in layout.config_dir(output, config).iterdir()
                     if p.name.endswith(".parquet") and not layout.is_own_data_file(config, p.name))
    if foreign:
        more = f" (and {len(foreign) - 3} more)" if len(foreign) > 3 else ""
        raise BuildError(f"{output}: {', '.join(foreign[:3])}{more} was not written by the build, and every "
                         "Parquet file in corpus/, queries/ and qrels/ is published as the dataset; move it out "
                         "of the build folder", "foreign-data-file")
    if force or not any(output.iterdir()) or is_build_folder(output):
        return
    raise BuildError(f"the output folder {output} is not empty and is not a wikihow-tiir build (it holds "
                     f"{_entries(output)}); choose a new or empty folder, or pass --force to build there "
                     "(README.md, manifest.json, corpus/, queries/, qrels/, rejects/, report/ and work/ are "
                     "then written; nothing else is touched)", "output-not-empty")


def claim_output_folder(output: Path) -> None:
    """Mark the folder as a build of ours from the start (an interrupted build is resumed without --force)."""
    marker = Path(output) / OWNER_FILE
    if not marker.is_file():
        atomic_write_json(marker, {"tool": "wikihow-tiir",
                                   "note": "a wikihow-tiir build folder: a build here rewrites "
                                           + ", ".join(BUILD_ENTRIES[:-1]) + "; nothing else"})


def stale_reject_files(output: Path, keep: set[str]) -> list[Path]:
    """``rejects/<stage>.jsonl`` files an earlier build wrote that this one has no rejects for: the known
    stage names, and the stages the folder's manifest counted; any other file there is the user's."""
    manifest = _manifest(Path(output)) or {}
    earlier = set(manifest.get("rejects") or {}) if isinstance(manifest.get("rejects"), dict) else set()
    return sorted(p for p in layout.reject_files(output)
                  if p.is_file() and p.stem not in keep and (_REJECT_FILE.match(p.name) or p.stem in earlier))
