"""Helpers for build tests: small copies of the bundled archive that a test may damage freely."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from wikihow_tiir.io import dumps, sha256_bytes

ZUCCHINI = "https://www.wikihow.com/Grill-Zucchini"
TOILET = "https://www.wikihow.com/Unclog-a-Toilet"
CHOKING = "https://www.wikihow.com/Administer-First-Aid-to-a-Choking-Child"
GOLD = "https://www.wikihow.com/Clean-Gold-Jewelry"


def index_records(archive: Path) -> list[dict]:
    return [json.loads(line) for line in (archive / "index.jsonl").read_text(encoding="utf-8").splitlines()]


def write_index(archive: Path, records: list[dict]) -> None:
    records = sorted(records, key=lambda r: r["url"])
    (archive / "index.jsonl").write_text("".join(dumps(r) + "\n" for r in records), encoding="utf-8")


def blob(archive: Path, sha: str) -> Path:
    return archive / "blobs" / sha[:2] / sha


def put_blob(archive: Path, body: bytes) -> str:
    sha = sha256_bytes(body)
    path = blob(archive, sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return sha


def small_archive(src: Path, dst: Path, pages: list[str]) -> Path:
    """A copy of ``src`` with only these pages and their pictures (blobs copied, never linked: the
    tests damage them, and the bundled archive must stay as it is)."""
    keep = [r for r in index_records(src)
            if (r["kind"] == "page" and r["url"] in pages) or (r["kind"] == "image" and r["page_url"] in pages)]
    (dst / "blobs").mkdir(parents=True)
    for r in keep:
        if r["sha256"]:
            target = blob(dst, r["sha256"])
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(blob(src, r["sha256"]), target)
    write_index(dst, keep)
    return dst


def add_page(archive: Path, url: str, body: bytes, like: str) -> dict:
    """Store ``body`` as the page ``url`` (its record copied from the page ``like``)."""
    records = index_records(archive)
    rec = dict(next(r for r in records if r["url"] == like))
    rec.update(url=url, sha256=put_blob(archive, body), size=len(body))
    write_index(archive, [*records, rec])
    return rec


def page_body(archive: Path, url: str) -> bytes:
    rec = next(r for r in index_records(archive) if r["url"] == url)
    return blob(archive, rec["sha256"]).read_bytes()


def copy_of(archive: Path, dst: Path) -> Path:
    shutil.copytree(archive, dst)
    return dst
