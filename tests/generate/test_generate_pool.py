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


def test_the_pool_is_walked_once_per_build_not_once_per_query_shard(tmp_path, documents, monkeypatch):
    """Issue 15: fingerprint, step-text index and the renderer's filter columns are passes over every
    pooled image (770k at the paper's scale); computed per query shard they made the query stage
    quadratic in the corpus size. A pool computes each once, however many shards use it."""
    import wikihow_tiir.generate.pool as pool_mod

    hashed = []
    real = pool_mod.stable_hash
    monkeypatch.setattr(pool_mod, "stable_hash", lambda *a: (hashed.append(1), real(*a))[1])
    lazy = ImagePool.from_corpus_files(_corpus_files(tmp_path, documents), vector_cache=tmp_path / "gen")
    walked = []
    images = lazy.images

    class Counted(list):
        def __iter__(self):
            walked.append(1)
            return super().__iter__()

    lazy.images = Counted(images)
    after = []
    for n in range(3):
        result = generate_queries(documents[n::3], lazy, GenerateConfig(), seed=3, work_dir=tmp_path / "w",
                                  shard_id=f"s{n}")
        assert result.queries
        after.append(len(walked))
    assert len(hashed) == 1
    assert after[0] == after[1] == after[2]  # the first shard walked the pool; the others re-use what it found


def test_the_renderers_pick_is_the_first_acceptable_image_of_a_stable_sort_of_the_whole_pool():
    """The shortlist pick equals walking ``argsort(-scores, kind="stable")`` (ties: lower index first)
    through every image, for any mask and acceptance rule, ties at the shortlist's edge included."""
    from wikihow_tiir.generate.offline import _SHORTLIST, _best

    rng = np.random.default_rng(7)

    def reference(scores, allowed, ok):
        return next((int(i) for i in np.argsort(-scores, kind="stable") if allowed[i] and ok(int(i))), None)

    for trial in range(400):
        n = int(rng.integers(1, 4 * _SHORTLIST))
        scores = np.round(rng.random(n), int(rng.integers(1, 3))).astype(np.float32)  # many ties
        allowed = rng.random(n) < rng.choice([0.05, 0.5, 1.0])
        refused = set(rng.choice(n, size=int(rng.integers(0, n + 1)), replace=False).tolist())
        ok = refused.__contains__ if trial % 2 else (lambda i, r=refused: i not in r)
        assert _best(scores, allowed, ok) == reference(scores, allowed, ok), trial
