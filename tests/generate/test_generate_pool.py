"""The lazy image pool the build uses: metadata from the corpus files, bytes read only for the
pictures picked, step-text embeddings computed once per build and re-used from work/generate/."""

from __future__ import annotations

import numpy as np

from wikihow_tiir.config import GenerateConfig
from wikihow_tiir.generate import ImagePool, generate_queries
from wikihow_tiir.model import document_to_row
from wikihow_tiir.storage import write_parquet


def _corpus_files(tmp_path, documents, per_file=2):
    files = []
    docs = sorted(documents, key=lambda d: d.id)
    for i in range(0, len(docs), per_file):
        f = tmp_path / "corpus" / f"corpus-{i // per_file:05d}-of-99999.parquet"
        write_parquet(f, [document_to_row(d) for d in docs[i:i + per_file]], "corpus")
        files.append(f)
    return files


def test_lazy_pool_matches_the_full_pool_and_holds_no_bytes(tmp_path, documents, pool):
    lazy = ImagePool.from_corpus_files(_corpus_files(tmp_path, documents))
    assert [im.key for im in lazy.images] == [im.key for im in pool.images]
    assert lazy.fingerprint == pool.fingerprint  # same render-stage cache key as the in-memory pool
    assert all(im.data is None and im.has_image for im in lazy.images)
    keys = [pool.images[0].key, pool.images[-1].key, pool.images[len(pool) // 2].key]
    assert lazy.image_bytes(keys + ["nope#3"]) == {k: pool.get(k).data for k in keys}


def test_pool_vectors_are_cached_once_per_build(tmp_path, documents, pool):
    files = _corpus_files(tmp_path, documents)
    first = ImagePool.from_corpus_files(files, vector_cache=tmp_path / "gen")
    np.testing.assert_allclose(first.vectors(), pool.vectors(), atol=1e-6)
    (cached,) = (tmp_path / "gen").glob("pool-vectors-*.npy")
    marked = np.full_like(np.load(cached), 0.5)
    np.save(cached, marked)  # a later shard or worker reads the file instead of encoding again
    second = ImagePool.from_corpus_files(files, vector_cache=tmp_path / "gen")
    np.testing.assert_array_equal(second.vectors(), marked)


def test_queries_from_the_lazy_pool_are_byte_identical(tmp_path, documents, pool):
    lazy = ImagePool.from_corpus_files(_corpus_files(tmp_path, documents))
    cfg = GenerateConfig()
    a = generate_queries(documents, pool, cfg, seed=3, work_dir=tmp_path / "a", shard_id="s")
    b = generate_queries(documents, lazy, cfg, seed=3, work_dir=tmp_path / "b", shard_id="s")
    assert a.queries and [q.content.images for q in a.queries] == [q.content.images for q in b.queries]
    assert [q.content.texts for q in a.queries] == [q.content.texts for q in b.queries]


def test_a_picked_image_without_bytes_is_a_reject_not_a_crash(tmp_path, documents):
    # the corpus files lose their image bytes (a damaged file): queries are rejected with the reason
    from wikihow_tiir.model import document_from_row

    stripped = []
    for d in documents:
        row = document_to_row(d)
        row["images"] = [None] * len(row["images"])
        stripped.append(document_from_row(row))
    lazy = ImagePool.from_corpus_files(_corpus_files(tmp_path, stripped))
    result = generate_queries(documents, lazy, GenerateConfig(), seed=3, work_dir=tmp_path / "w", shard_id="s")
    assert not result.queries
    assert {r.reason for r in result.rejects} == {"missing-image-bytes"}
