"""The request cache opened by several shards at the same moment (threads or processes of one host)."""

from __future__ import annotations

import threading

from wikihow_tiir.generate.cache import RequestCache


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
