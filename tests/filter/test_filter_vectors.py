"""Chunked exact search and near-duplicate resolution against brute force."""

from __future__ import annotations

import numpy as np

from wikihow_tiir.filter.vectors import embed_cached, near_duplicates, positive_stats


def _unit(rng, n, d=16):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_positive_stats_match_brute_force_for_any_block_size():
    rng = np.random.default_rng(0)
    docs, queries = _unit(rng, 50), _unit(rng, 23)
    doc_article = rng.integers(0, 12, size=50)
    pos = rng.integers(0, 50, size=23)
    q_article = doc_article[pos]
    sims = queries @ docs.T
    for block in (1, 4, 23, 100):
        ps = positive_stats(queries, docs, pos, q_article, doc_article, block=block)
        for i in range(23):
            p = sims[i, pos[i]]
            # BLAS sums in a block-dependent order: equal up to float32 rounding
            assert abs(ps.positive_score[i] - p) < 1e-5
            assert ps.rank[i] == 1 + int((sims[i] > p + 1e-5).sum())
            other = np.where(doc_article != q_article[i])[0]
            j = other[np.argmax(sims[i, other])]
            assert ps.best_other_index[i] == j and abs(ps.best_other_score[i] - sims[i, j]) < 1e-5


def test_positive_stats_single_article_corpus_has_no_competitor():
    rng = np.random.default_rng(1)
    docs, queries = _unit(rng, 3), _unit(rng, 2)
    ps = positive_stats(queries, docs, np.array([0, 2]), np.array([7, 7]), np.array([7, 7, 7]))
    assert list(ps.best_other_index) == [-1, -1]
    assert not np.isfinite(ps.best_other_score).any()


def test_near_duplicates_resolve_chains_in_order():
    # a ~ b (0.98), b ~ c (0.98), a !~ c: b is dropped, c is kept (its only near twin was dropped)
    a = np.array([1.0, 0.0])
    theta = np.arccos(0.98)
    b = np.array([np.cos(theta), np.sin(theta)])
    c = np.array([np.cos(2 * theta), np.sin(2 * theta)])
    d = np.array([0.0, 1.0])
    vecs = np.stack([a, b, c, d]).astype(np.float32)
    for block in (1, 2, 10):
        max_cos, dup_of, keep = near_duplicates(vecs, np.ones(4, dtype=bool), 0.97, block=block)
        assert list(keep) == [True, False, True, True]
        assert list(dup_of) == [-1, 0, -1, -1]
        assert max_cos[0] > 0.97 and max_cos[3] < 0.97
    # a non-candidate never causes a drop
    _, _, keep = near_duplicates(vecs, np.array([False, True, True, True]), 0.97)
    assert list(keep) == [False, True, False, True]


def test_embed_cached_reuses_shards(tmp_path):
    calls = []

    def fake_encode(texts, batch_size):
        calls.append(list(texts))
        return np.stack([np.eye(384, dtype=np.float32)[len(t)] for t in texts])

    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    first, stats = embed_cached(texts, shard_size=2, cache_dir=tmp_path, encode=fake_encode)
    assert stats == {"texts": 5, "shards": 3, "cached_shards": 0, "encoded_texts": 5, "reused_texts": 0}
    calls.clear()
    changed = texts[:4] + ["ffffff"]  # only the last shard differs
    second, stats = embed_cached(changed, shard_size=2, cache_dir=tmp_path, encode=fake_encode)
    assert stats["cached_shards"] == 2 and calls == [["ffffff"]]
    assert np.array_equal(first[:4], second[:4]) and second[4, 6] == 1.0
    (next(tmp_path.glob("*.npy"))).write_bytes(b"broken")  # a damaged file is recomputed, not fatal
    third, _ = embed_cached(texts, shard_size=2, cache_dir=tmp_path, encode=fake_encode)
    assert np.array_equal(first, third)


def test_embed_cached_reads_back_texts_encoded_in_other_shards(tmp_path):
    """Issue 15: the difficulty table embeds the filter's queries again, grouped otherwise (the kept ones,
    the test split); whole-shard keys never matched, so every text was encoded twice. A text any cached
    shard holds is read back; only new texts are encoded; a damaged shard's texts are encoded again."""
    calls = []

    def fake_encode(texts, batch_size):
        calls.append(list(texts))
        return np.stack([np.eye(384, dtype=np.float32)[len(t)] * (1 + 0.001 * len(calls)) for t in texts])

    first, _ = embed_cached(["a", "bb", "ccc", "dddd", "eeeee"], shard_size=2, cache_dir=tmp_path, encode=fake_encode)
    calls.clear()
    regrouped, stats = embed_cached(["ccc", "a", "zz", "eeeee"], shard_size=3, cache_dir=tmp_path, encode=fake_encode)
    assert calls == [["zz"]]
    assert (stats["encoded_texts"], stats["reused_texts"], stats["cached_shards"]) == (1, 2, 1)  # ["eeeee"]: a shard
    assert np.array_equal(regrouped[[0, 1, 3]], first[[2, 0, 4]])  # the very vectors of the first run
    calls.clear()
    again, stats = embed_cached(["ccc", "a", "zz", "eeeee"], shard_size=3, cache_dir=tmp_path, encode=fake_encode)
    assert calls == [] and stats["cached_shards"] == 2 and np.array_equal(again, regrouped)
    for npy in tmp_path.glob("*.npy"):
        npy.write_bytes(b"broken")
    calls.clear()
    embed_cached(["a", "bb"], shard_size=3, cache_dir=tmp_path, encode=fake_encode)
    assert calls == [["a", "bb"]]
