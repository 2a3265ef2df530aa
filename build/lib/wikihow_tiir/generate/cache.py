"""The request cache: a resumed or repeated build never pays twice for the same model call.

Like datatrove's replay cache (``checkpointing.RequestCache``), answers are stored in SQLite,
keyed by everything that decides the answer: stage, model, sampling parameters, the prompt
template's sha256 and the hash of the request's input. Only answers the server actually gave
(HTTP 200) are stored; errors and timeouts are retried on the next run.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from wikihow_tiir.io import dumps, sha256_bytes


def request_key(stage: str, model: str, params: dict[str, Any], prompt_sha256: str, payload: Any) -> str:
    input_hash = sha256_bytes(dumps(payload).encode("utf-8"))
    return sha256_bytes(dumps([stage, model, params, prompt_sha256, input_hash]).encode("utf-8"))


class RequestCache:
    """A small thread-safe key -> JSON store (one connection, one lock; SQLite in WAL mode so
    another process reading the build does not block us)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        with self._lock:
            self._init(deadline=time.monotonic() + 30.0)
        self.hits = 0
        self.misses = 0

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
                    "model TEXT NOT NULL, response TEXT NOT NULL)")
                self._db.commit()
                return
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                    raise
                self._db.rollback()
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, stage: str, model: str, response: Any) -> None:
        text = json.dumps(response, sort_keys=True, ensure_ascii=False)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", (key, stage, model, text))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
