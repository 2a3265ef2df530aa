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
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wikihow_tiir.io import atomic_write_bytes, atomic_write_text, dumps, sha256_bytes

INDEX = "index.jsonl"


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


class ArchiveError(Exception):
    pass


class Archive:
    """Read and append to an archive folder. Safe to share between threads of one process."""

    def __init__(self, root: str | os.PathLike, create: bool = False):
        self.root = Path(root)
        if create:
            (self.root / "blobs").mkdir(parents=True, exist_ok=True)
            (self.root / INDEX).touch(exist_ok=True)
        elif not (self.root / INDEX).is_file():
            raise ArchiveError(f"{self.root} is not an archive (no {INDEX}); run `wikihow-tiir crawl` "
                               "or point --archive at data/sample/archive")
        self._lock = threading.Lock()
        self._records: dict[str, ArchiveRecord] | None = None

    # ------------------------------------------------------------------ reading
    def _load(self) -> dict[str, ArchiveRecord]:
        if self._records is None:
            records: dict[str, ArchiveRecord] = {}
            lines = (self.root / INDEX).read_text(encoding="utf-8").splitlines()
            for n, line in enumerate(lines, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = ArchiveRecord.from_dict(json.loads(line))
                except (json.JSONDecodeError, TypeError) as exc:
                    if n == len(lines):  # a crawl killed mid-append leaves a torn last line: skip it
                        continue
                    raise ArchiveError(f"{self.root / INDEX}:{n}: bad record: {exc}") from exc
                records[rec.url] = rec
            self._records = records
        return self._records

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
        rec = self.get(rec_or_url) if isinstance(rec_or_url, str) else rec_or_url
        if rec is None or not rec.sha256:
            raise ArchiveError(f"no stored body for {rec_or_url if isinstance(rec_or_url, str) else rec_or_url.url}")
        data = self.blob_path(rec.sha256).read_bytes()
        if sha256_bytes(data) != rec.sha256:
            raise ArchiveError(f"blob of {rec.url} does not match its sha256 (corrupt archive)")
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
            with open(self.root / INDEX, "a", encoding="utf-8") as f:
                f.write(line)
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
