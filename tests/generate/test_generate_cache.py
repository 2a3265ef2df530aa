"""The request cache opened by several shards at the same moment (threads or processes of one host)."""

from __future__ import annotations

import sqlite3
import threading

from wikihow_tiir.llm.cache import RequestCache


def test_many_shards_opening_a_new_cache_at_once_all_succeed(tmp_path):
    """SQLite answers a concurrent switch to WAL mode with 'database is locked' at once: the cache
    retries instead of failing the shard (seen as a flaky build when two query shards start)."""
    errors: list[BaseException] = []
    for round_ in range(120):
        path = tmp_path / f"r{round_}" / "cache.sqlite"
        start = threading.Barrier(12)

        def open_and_write(i: int, path=path, start=start) -> None:
            try:
                start.wait()
                cache = RequestCache(path)
                cache.put(f"k{i}", "write", "m", {"i": i})
                cache.close()
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=open_and_write, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(RequestCache(path)) == 12
    assert errors == []


def test_a_cache_from_before_checksums_stays_usable(tmp_path):
    path = tmp_path / "cache.sqlite"
    with sqlite3.connect(path) as db:  # the schema older builds wrote
        db.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, stage TEXT NOT NULL, model TEXT NOT NULL, "
                   "response TEXT NOT NULL)")
        db.execute("INSERT INTO responses VALUES ('k', 'write', 'm', '{\"content\": \"old\"}')")
    db.close()
    cache = RequestCache(path)
    assert cache.get("k") == {"content": "old"}  # paid for once, still used
    cache.put("k2", "write", "m", {"content": "new"})
    assert cache.get("k2") == {"content": "new"} and len(cache) == 2 and not cache.set_aside
    cache.close()


def test_an_unreadable_row_is_a_miss_and_is_replaced(tmp_path):
    cache = RequestCache(tmp_path / "cache.sqlite")
    cache.put("k", "write", "m", {"content": "good"})
    with cache._lock:
        cache._db.execute("UPDATE responses SET response = '{not json' WHERE key = 'k'")
        cache._db.commit()
    assert cache.get("k") is None  # fails its checksum (and would fail to parse)
    with cache._lock:
        cache._db.execute("UPDATE responses SET response = '{not json', sha256 = NULL WHERE key = 'k'")
        cache._db.commit()
    assert cache.get("k") is None  # no checksum (an old row) but not JSON: a miss, never a crash
    cache.put("k", "write", "m", {"content": "again"})
    assert cache.get("k") == {"content": "again"}
    cache.close()
