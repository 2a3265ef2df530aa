"""The request cache: a resumed or repeated build never pays twice for the same model call.

Like datatrove's replay cache (``checkpointing.RequestCache``), answers are stored in SQLite,
keyed by everything that decides the answer: stage, model, sampling parameters, the prompt
template's sha256 and the hash of the request's input. Only answers the server actually gave
(HTTP 200) and the stage accepted for storage (within size caps, secrets redacted) are stored;
errors and timeouts are retried on the next run.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from wikihow_tiir.io import dumps, sha256_bytes

log = logging.getLogger(__name__)


def request_key(stage: str, model: str, params: dict[str, Any], prompt_sha256: str, payload: Any) -> str:
    input_hash = sha256_bytes(dumps(payload).encode("utf-8"))
    return sha256_bytes(dumps([stage, model, params, prompt_sha256, input_hash]).encode("utf-8"))


def _corrupt(exc: sqlite3.Error) -> bool:
    """SQLite's own words for a damaged file: not a database at all, or a malformed image."""
    return getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or (
        "malformed" in str(exc) or "not a database" in str(exc))


class RequestCache:
    """A small thread-safe key -> JSON store (one connection, one lock; SQLite in WAL mode so
    another process reading the build does not block us).

    Every answer is stored with the sha256 of its text and checked when read back; a damaged
    file (garbage, truncated) is set aside as ``<name>.corrupt-N`` with a warning and a new cache
    is started, at open or whenever SQLite reports the damage: a bad cache costs model calls,
    never a crash and never a wrong answer."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.set_aside: list[Path] = []  # damaged files this cache renamed
        with self._lock:
            try:
                self._open()
            except sqlite3.DatabaseError as exc:
                if not _corrupt(exc):
                    raise
                self._recover(exc)

    def _open(self) -> None:
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        try:
            self._init(deadline=time.monotonic() + 30.0)
            self._db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # reads the schema pages
            self._inode = os.stat(self.path).st_ino
        except BaseException:
            self._db.close()
            raise

    def _init(self, deadline: float) -> None:
        """WAL mode and the table. Shards that start together open the same new file at once, and
        SQLite answers the journal-mode switch with "database is locked" at once instead of
        waiting: retry with backoff until ``deadline``."""
        delay = 0.01
        while True:
            try:
                if str(self._db.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, stage TEXT NOT NULL, "
                    "model TEXT NOT NULL, response TEXT NOT NULL, sha256 TEXT)")
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
                if "sha256" not in columns:  # a cache from before checksums: its answers stay usable
                    try:
                        self._db.execute("ALTER TABLE responses ADD COLUMN sha256 TEXT")
                    except sqlite3.OperationalError as exc:
                        if "duplicate column" not in str(exc):  # another shard added it first
                            raise
                self._db.commit()
                return
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                    raise
                self._db.rollback()
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _recover(self, exc: sqlite3.Error) -> None:
        """Set the damaged file aside and start a new cache (the lock is held). When another shard
        already replaced it, only reconnect."""
        try:
            self._db.close()
        except (sqlite3.Error, AttributeError):
            pass
        try:
            replaced = os.stat(self.path).st_ino != getattr(self, "_inode", None)
        except FileNotFoundError:
            replaced = True
        if not replaced or not hasattr(self, "_inode"):
            n = 1
            while self.path.with_name(f"{self.path.name}.corrupt-{n}").exists():
                n += 1
            aside = self.path.with_name(f"{self.path.name}.corrupt-{n}")
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    os.replace(side, aside.with_name(aside.name + suffix))
            self.set_aside.append(aside)
            log.warning("request cache %s is damaged (%s); set aside as %s, starting a new one",
                        self.path, exc, aside.name)
        self._open()

    def get(self, key: str) -> Any | None:
        with self._lock:
            try:
                row = self._db.execute("SELECT response, sha256 FROM responses WHERE key = ?", (key,)).fetchone()
            except sqlite3.DatabaseError as exc:
                if not _corrupt(exc):
                    raise
                self._recover(exc)
                row = None
            if row is not None and row[1] is not None and row[1] != sha256_bytes(row[0].encode("utf-8")):
                log.warning("request cache %s: an answer does not match its checksum; asking again", self.path)
                row = None
            try:
                value = json.loads(row[0]) if row is not None else None
            except ValueError:
                row = value = None
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        return value

    def put(self, key: str, stage: str, model: str, response: Any) -> None:
        text = json.dumps(response, sort_keys=True, ensure_ascii=False)
        row = (key, stage, model, text, sha256_bytes(text.encode("utf-8")))
        sql = "INSERT OR REPLACE INTO responses (key, stage, model, response, sha256) VALUES (?, ?, ?, ?, ?)"
        with self._lock:
            try:
                self._db.execute(sql, row)
                self._db.commit()
            except sqlite3.DatabaseError as exc:
                if not _corrupt(exc):
                    raise
                self._recover(exc)
                self._db.execute(sql, row)
                self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            try:
                return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                if not _corrupt(exc):
                    raise
                self._recover(exc)
                return 0

    def close(self) -> None:
        with self._lock:
            self._db.close()
