"""Exact blocked search against a brute-force sort, ties, and the vector checks."""

from __future__ import annotations

import numpy as np
import pytest

from wikihow_tiir.evaluate.search import EmbeddingError, exact_search, normalize


def brute_force(q: np.ndarray, d: np.ndarray, k: int, doc_ids: list[str]):
    scores = q @ d.T
    out = []
    for row in scores:
        order = sorted(range(len(doc_ids)), key=lambda j: (-row[j], tuple(-ord(c) for c in doc_ids[j])))[:k]
        out.append(order)
    return np.asarray(out)


def test_matches_brute_force_for_any_block_size():
    rng = np.random.default_rng(0)
    d = normalize(rng.standard_normal((257, 16)), [str(i) for i in range(257)])
    q = normalize(rng.standard_normal((37, 16)), [str(i) for i in range(37)])
    ids = [f"doc{i:03d}" for i in range(257)]
    expected = brute_force(q, d, 10, ids)
    for qb, db in ((1024, 16384), (5, 7), (37, 256), (1, 1000)):
        top = exact_search(q, d, k=10, doc_ids=ids, query_block=qb, doc_block=db)
        np.testing.assert_array_equal(top.indices, expected)
        np.testing.assert_allclose(top.scores, np.take_along_axis(q @ d.T, expected, axis=1), rtol=1e-5)


def test_ties_at_the_cutoff_are_broken_by_doc_id_across_blocks():
    # 40 identical documents: the top 5 must be the 5 greatest ids, whatever the blocks hold
    d = np.ones((40, 4), dtype=np.float32) / 2
    q = np.ones((2, 4), dtype=np.float32) / 2
    ids = [f"d{i:02d}" for i in range(40)]
    for db in (3, 8, 40):
        top = exact_search(q, d, k=5, doc_ids=ids, doc_block=db)
        assert [ids[j] for j in top.indices[0]] == ["d39", "d38", "d37", "d36", "d35"]


def test_k_larger_than_corpus():
    d = np.eye(3, dtype=np.float32)
    top = exact_search(np.eye(3, dtype=np.float32), d, k=100, doc_ids=["a", "b", "c"])
    assert top.indices.shape == (3, 3)
    assert top.to_run(["x", "y", "z"], ["a", "b", "c"])["y"] == {"b": 1.0, "c": 0.0, "a": 0.0}


@pytest.mark.parametrize(
    ("vectors", "needle"),
    [
        (np.array([[1.0, 0.0], [np.nan, 1.0]]), "NaN or infinite values for ids ['b']"),
        (np.array([[1.0, 0.0], [0.0, 0.0]]), "zero-norm vectors (nothing to compare) for ids ['b']"),
        (np.array([1.0, 0.0]), "expected a (2, dim) matrix"),
    ],
)
def test_bad_vectors_name_the_ids(vectors, needle):
    with pytest.raises(EmbeddingError) as err:
        normalize(vectors, ["a", "b"], "test vectors")
    assert needle in str(err.value)


def test_wrong_dimension_is_refused():
    with pytest.raises(EmbeddingError, match="dimension 3 differs from the other side's 2"):
        normalize(np.ones((2, 3)), ["a", "b"], "queries", dim=2)
    with pytest.raises(EmbeddingError, match="do not match"):
        exact_search(np.ones((1, 3), np.float32), np.ones((2, 2), np.float32))


def test_faiss_matches_the_exact_search_or_says_it_is_missing():
    try:
        import faiss  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="faiss is not installed"):
            exact_search(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), use_faiss=True)
        return
    rng = np.random.default_rng(1)
    d = normalize(rng.standard_normal((500, 8)), [str(i) for i in range(500)])
    q = normalize(rng.standard_normal((20, 8)), [str(i) for i in range(20)])
    ids = [f"d{i:04d}" for i in range(500)]
    np.testing.assert_array_equal(exact_search(q, d, 10, doc_ids=ids, use_faiss=True).indices,
                                  exact_search(q, d, 10, doc_ids=ids).indices)
    same = np.ones((40, 4), dtype=np.float32) / 2  # ties past FAISS's extra candidates
    top = exact_search(same[:2], same, k=5, doc_ids=[f"d{i:02d}" for i in range(40)], use_faiss=True)
    assert top.indices[0].tolist() == [39, 38, 37, 36, 35]
