"""The web archive: fetched pages and images keyed by URL, content-addressed by sha256.

Layout (documented for users in the archive's own ``ARCHIVE.md``)::

    <archive>/
      index.jsonl                  one JSON record per URL (see ArchiveRecord), sorted by URL
      blobs/<sha[:2]>/<sha256>     the exact response bodies, named by their sha256

Why not WARC: a crawl must be resumable by many writers and re-read by URL in random order
(images per step), and the bundled sample must be byte-reproducible; a sorted JSON-lines index
over content-addressed blobs gives both with no extra dependency, and `wikihow-tiir crawl`
appends to it safely. Records are appended under a lock while crawling and the index is
rewritten sorted and de-duplicated (last record per URL wins) by :meth:`Archive.compact`.

A damaged archive loses what is damaged, not the rest: an index line that is not a record (torn by
a killed crawl, cut, edited by hand) is skipped and listed in :meth:`Archive.bad_lines`; a blob
that is missing or does not match its sha256 raises :class:`ArchiveError` with a ``reason``
(``archive-blob-missing``, ``archive-blob-corrupt``, ``archive-blob-unreadable``) for that URL
only, which the build turns into a reject.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wikihow_tiir.errors import WikihowTiirError
from wikihow_tiir.io import atomic_write_bytes, atomic_write_text, dumps, sha256_bytes

INDEX = "index.jsonl"
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(slots=True)
class ArchiveRecord:
    url: str
    kind: str  # "page" | "image" | "robots" | "sitemap" | "api"
    sha256: str = ""  # of the body ("" when nothing was stored, e.g. a failed fetch)
    size: int = 0
    status: int = 200  # HTTP status, 0 when no response
    fetched_at: str = ""  # ISO-8601 UTC
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # headers of note (X-Robots-Tag, Last-Modified ...)
    stand_in: bool = False  # body is a locally rendered stand-in, not what the URL serves
    license: str = ""  # per-image licence text when known
    page_url: str = ""  # for images: the article page that uses it
    origin: str = ""  # how it got here: "fixture:<file>", "live", "stand-in-renderer:<version>"
    error: str = ""  # reason when the fetch failed (then sha256 is "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchiveRecord:
        names = cls.__slots__  # type: ignore[attr-defined]
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_index_line(cls, data: Any) -> ArchiveRecord:
        """A record from a decoded index line, checked: ValueError says what is wrong with it."""
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        data = {k: v for k, v in data.items() if v is not None}  # null: the field's default
        for name, kind in _FIELD_TYPES.items():
            if name in ("url", "kind") and not data.get(name):
                raise ValueError(f"field {name!r} is missing")
            if name in data and not isinstance(data[name], kind):
                raise ValueError(f"field {name!r} is not a {_JSON_TYPES[kind]}")
        if data.get("sha256") and not _SHA256.fullmatch(data["sha256"]):
            raise ValueError("field 'sha256' is not 64 lowercase hex digits")  # it names a file under blobs/
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in (data.get("headers") or {}).items()):
            raise ValueError("field 'headers' is not an object of strings")
        return cls.from_dict(data)


_FIELD_TYPES: dict[str, type] = {
    "url": str, "kind": str, "sha256": str, "size": int, "status": int, "fetched_at": str,
    "content_type": str, "headers": dict, "stand_in": bool, "license": str, "page_url": str, "origin": str,
    "error": str,
}
_JSON_TYPES = {str: "string", int: "number", dict: "object", bool: "boolean"}


class ArchiveError(WikihowTiirError):
    """The archive cannot give something back; ``reason`` is a short machine-friendly code."""

    reason = "archive-error"


@dataclass(frozen=True, slots=True)
class BadLine:
    """An index line that is not a record: its 1-based number, what is wrong, and its start."""

    line: int
    problem: str
    text: str


class Archive:
    """Read and append to an archive folder. Safe to share between threads of one process."""

    def __init__(self, root: str | os.PathLike, create: bool = False):
        self.root = Path(root)
        if create:
            (self.root / "blobs").mkdir(parents=True, exist_ok=True)
            (self.root / INDEX).touch(exist_ok=True)
        elif not (self.root / INDEX).exists():  # one that cannot be read says so when loaded
            raise ArchiveError(f"{self.root} is not an archive (no {INDEX}); run `wikihow-tiir crawl` "
                               "or point --archive at data/sample/archive")
        self._lock = threading.Lock()
        self._records: dict[str, ArchiveRecord] | None = None
        self._bad: list[BadLine] = []

    # ------------------------------------------------------------------ reading
    def _load(self) -> dict[str, ArchiveRecord]:
        if self._records is None:
            try:
                raw = (self.root / INDEX).read_bytes()
            except OSError as exc:
                raise ArchiveError(f"{self.root / INDEX} cannot be read ({exc.strerror or type(exc).__name__})",
                                   "archive-index-unreadable") from None
            records: dict[str, ArchiveRecord] = {}
            bad: list[BadLine] = []
            for n, line in enumerate(raw.split(b"\n"), 1):
                if not line.strip():
                    continue
                try:
                    rec = ArchiveRecord.from_index_line(json.loads(line.decode("utf-8")))
                except UnicodeDecodeError:
                    bad.append(BadLine(n, "not UTF-8", _excerpt(line)))
                except json.JSONDecodeError as exc:  # e.g. torn by a crawl killed mid-append
                    bad.append(BadLine(n, f"not JSON ({exc.msg} at column {exc.colno})", _excerpt(line)))
                except (ValueError, TypeError) as exc:
                    bad.append(BadLine(n, f"not an archive record: {exc}", _excerpt(line)))
                else:
                    records[rec.url] = rec
            self._records, self._bad = records, bad
        return self._records

    def bad_lines(self) -> list[BadLine]:
        """The index lines that were skipped because they are not records, in file order."""
        self._load()
        return list(self._bad)

    def __contains__(self, url: str) -> bool:
        return url in self._load()

    def __len__(self) -> int:
        return len(self._load())

    def get(self, url: str) -> ArchiveRecord | None:
        return self._load().get(url)

    def records(self, kind: str | None = None) -> list[ArchiveRecord]:
        """Records sorted by URL (optionally of one kind)."""
        recs = sorted(self._load().values(), key=lambda r: r.url)
        return [r for r in recs if kind is None or r.kind == kind]

    def pages(self) -> list[ArchiveRecord]:
        return [r for r in self.records("page") if r.sha256 and 200 <= r.status < 300]

    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def read(self, rec_or_url: ArchiveRecord | str) -> bytes:
        """The stored body; ArchiveError (with a ``reason``) when there is none or its blob is damaged.
        Messages name the blob relative to the archive, so they do not depend on where it lies."""
        rec = self.get(rec_or_url) if isinstance(rec_or_url, str) else rec_or_url
        if rec is None or not rec.sha256:
            raise ArchiveError(f"no stored body for {rec_or_url if isinstance(rec_or_url, str) else rec_or_url.url}",
                               "archive-no-body")
        blob = f"blobs/{rec.sha256[:2]}/{rec.sha256}"
        try:
            data = self.blob_path(rec.sha256).read_bytes()
        except FileNotFoundError:
            raise ArchiveError(f"the blob {blob} of {rec.url} is missing from the archive",
                               "archive-blob-missing") from None
        except OSError as exc:
            raise ArchiveError(f"the blob {blob} of {rec.url} cannot be read ({exc.strerror or type(exc).__name__})",
                               "archive-blob-unreadable") from None
        if sha256_bytes(data) != rec.sha256:
            raise ArchiveError(f"the blob {blob} of {rec.url} does not match its sha256 ({len(data)} bytes; "
                               f"the index says {rec.size}): the archive is corrupt", "archive-blob-corrupt")
        return data

    def get_bytes(self, url: str) -> bytes | None:
        """Body for a URL, or None when the archive has none (image-store protocol)."""
        rec = self.get(url)
        if rec is None or not rec.sha256:
            return None
        return self.read(rec)

    def is_stand_in(self, url: str) -> bool:
        rec = self.get(url)
        return bool(rec and rec.stand_in)

    def iter_pages(self) -> Iterator[tuple[ArchiveRecord, bytes]]:
        for rec in self.pages():
            yield rec, self.read(rec)

    # ------------------------------------------------------------------ writing
    def put(self, url: str, body: bytes | None, kind: str, **meta: Any) -> ArchiveRecord:
        """Store a body (atomically, content-addressed) and append its record to the index."""
        rec = ArchiveRecord(url=url, kind=kind, **meta)
        if body is not None:
            rec.sha256 = sha256_bytes(body)
            rec.size = len(body)
            path = self.blob_path(rec.sha256)
            if not path.exists():
                atomic_write_bytes(path, body)
        line = dumps(rec.to_dict()) + "\n"
        with self._lock:
            with open(self.root / INDEX, "a+b") as f:
                # a crawl killed mid-append leaves a line without its newline: end it first, so this
                # record does not fuse with it (and both get lost)
                end = f.seek(0, os.SEEK_END)
                if end:
                    f.seek(end - 1)
                    if f.read(1) != b"\n":
                        line = "\n" + line
                f.write(line.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
            if self._records is not None:
                self._records[url] = rec
        return rec

    def compact(self) -> None:
        """Rewrite the index sorted by URL with one record per URL (deterministic bytes)."""
        with self._lock:
            self._records = None
            recs = sorted(self._load().values(), key=lambda r: r.url)
            atomic_write_text(self.root / INDEX, "".join(dumps(r.to_dict()) + "\n" for r in recs))

    def stand_in_count(self) -> int:
        return sum(1 for r in self._load().values() if r.stand_in)


def _excerpt(line: bytes, limit: int = 160) -> str:
    text = line.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."
