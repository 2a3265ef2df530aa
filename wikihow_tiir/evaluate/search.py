"""Exact inner-product top-k search over L2-normalized embeddings, in bounded memory.

Queries and documents are scored in blocks (``query_block`` x ``doc_block`` scores at a time, 64 MiB
by default), so memory stays bounded whatever the corpus size. Within a block only the candidates
that can still be in the top k survive, including every document tied with the block's k-th best,
so the final ranking breaks ties by document id (descending, as trec_eval does) and the top k does
not depend on the block sizes (up to float rounding of the dot products).

FAISS (``faiss-cpu``, the ``faiss`` extra) is used when asked for and installed; its flat
inner-product index gives the same top k and order (rows with ties past its candidates are redone
exactly).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from wikihow_tiir.errors import WikihowTiirError

if TYPE_CHECKING:
    import torch


class EmbeddingError(WikihowTiirError, ValueError):
    """Vectors that cannot be searched (NaN, zero norm, wrong shape); the message names the ids."""

    reason = "bad-embeddings"


def _name_ids(ids: Sequence[str], rows: np.ndarray, limit: int = 10) -> str:
    shown = [ids[i] for i in rows[:limit]]
    more = f" (and {len(rows) - limit} more)" if len(rows) > limit else ""
    return f"{shown}{more}"


def normalize(vectors: np.ndarray, ids: Sequence[str], what: str = "vectors",
              dim: int | None = None) -> np.ndarray:
    """Check and L2-normalize a (n, dim) matrix into float32; errors name the offending ids."""
    arr = np.asarray(vectors)
    if arr.ndim != 2 or arr.shape[0] != len(ids):
        raise EmbeddingError(f"{what}: expected a ({len(ids)}, dim) matrix, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise EmbeddingError(f"{what}: dimension {arr.shape[1]} differs from the other side's {dim} "
                             f"(ids {_name_ids(ids, np.arange(len(ids)), 3)})")
    if not np.issubdtype(arr.dtype, np.number):
        raise EmbeddingError(f"{what}: vectors must be numeric, got {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        raise EmbeddingError(f"{what}: NaN or infinite values for ids {_name_ids(ids, np.flatnonzero(~finite))}")
    norms = np.linalg.norm(arr.astype(np.float64), axis=1)
    zero = norms == 0
    if zero.any():
        raise EmbeddingError(f"{what}: zero-norm vectors (nothing to compare) for ids "
                             f"{_name_ids(ids, np.flatnonzero(zero))}")
    return (arr / norms[:, None]).astype(np.float32)


@dataclass(slots=True)
class TopK:
    """``indices[i]`` are the document rows ranked for query i, best first; ``scores`` match."""

    indices: np.ndarray  # (n_queries, k) int64
    scores: np.ndarray  # (n_queries, k) float32

    def to_run(self, query_ids: Sequence[str], doc_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        return {q: {doc_ids[j]: float(s) for j, s in zip(idx.tolist(), sc.tolist(), strict=True)}
                for q, idx, sc in zip(query_ids, self.indices, self.scores, strict=True)}


def id_order(doc_ids: Sequence[str]) -> np.ndarray:
    """The position of each document id in ascending id order (the tie-breaking key)."""
    order = np.argsort(np.asarray(doc_ids, dtype=object), kind="stable")
    rank = np.empty(len(doc_ids), dtype=np.int64)
    rank[order] = np.arange(len(doc_ids))
    return rank


def _final_rank(cand_idx: list[np.ndarray], cand_scores: list[np.ndarray], k: int,
                tie_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query: candidates -> top k by score descending, then document id descending."""
    idx_out = np.zeros((len(cand_idx), k), dtype=np.int64)
    sc_out = np.zeros((len(cand_idx), k), dtype=np.float32)
    for i, (idx, sc) in enumerate(zip(cand_idx, cand_scores, strict=True)):
        idx, first = np.unique(idx, return_index=True)  # a tied extra may repeat a top-k candidate
        sc = sc[first]
        order = np.lexsort((-tie_key[idx], -sc))[:k]
        idx_out[i], sc_out[i] = idx[order], sc[order]
    return idx_out, sc_out


def top_k_blocks(blocks: Iterable[tuple[int, torch.Tensor]], k: int,
                 tie_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top k of a score matrix given as column blocks ``(first column, (n_rows, width) scores)``.

    Each block keeps its k best columns per row (``torch.topk``: multi-threaded, ~3x faster than
    ``np.partition``). Where the (k+1)-th best equals the k-th, every column tied with it is kept
    too, so the final order among equal scores is by id, whatever the block boundaries.
    """
    import torch

    cand_i, cand_s = [], []
    extras: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for c0, block in blocks:
        width = block.shape[1]
        kk = min(k + 1, width)
        values, index = torch.topk(block, kk, dim=1)
        if kk > k:
            tied = torch.nonzero(values[:, k] == values[:, k - 1]).flatten().tolist()
            for r in tied:
                cols = torch.nonzero(block[r] >= values[r, k - 1]).flatten()
                extras.setdefault(r, []).append(((cols + c0).numpy(), block[r, cols].numpy()))
            values, index = values[:, :k], index[:, :k]
        cand_i.append(index.numpy() + c0)
        cand_s.append(values.numpy())
    ci = np.concatenate(cand_i, axis=1)
    cs = np.concatenate(cand_s, axis=1)
    kk = min(k, ci.shape[1])
    order = np.lexsort((-tie_key[ci], -cs), axis=-1)[:, :kk]
    idx = np.take_along_axis(ci, order, axis=1)
    sc = np.take_along_axis(cs, order, axis=1)
    if extras:
        rows = sorted(extras)
        ri, rs = _final_rank([np.concatenate([ci[r]] + [e[0] for e in extras[r]]) for r in rows],
                             [np.concatenate([cs[r]] + [e[1] for e in extras[r]]) for r in rows], kk, tie_key)
        idx[rows], sc[rows] = ri, rs
    return idx, sc


def exact_search(queries: np.ndarray, documents: np.ndarray, k: int = 100, doc_ids: Sequence[str] | None = None,
                 query_block: int = 1024, doc_block: int = 16384, use_faiss: bool = False) -> TopK:
    """Top-k documents by inner product for each query (pass normalized vectors for cosine).

    ``doc_ids`` gives the tie-breaking order (id descending among equal scores); without it, the
    row number is used. Scores are float32 matrix products (torch's BLAS, all cores).
    """
    import torch

    if queries.ndim != 2 or documents.ndim != 2 or queries.shape[1] != documents.shape[1]:
        raise EmbeddingError(f"query vectors {queries.shape} and document vectors {documents.shape} do not match")
    n_q, n_d = queries.shape[0], documents.shape[0]
    if n_d == 0:
        raise EmbeddingError("there are no documents to search")
    k = min(k, n_d)
    tie_key = id_order(doc_ids) if doc_ids is not None else np.arange(n_d, dtype=np.int64)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    documents = np.ascontiguousarray(documents, dtype=np.float32)
    if use_faiss:
        return _faiss_search(queries, documents, k, tie_key)
    if n_q == 0:
        return TopK(np.zeros((0, k), np.int64), np.zeros((0, k), np.float32))
    tq, td = torch.from_numpy(queries), torch.from_numpy(documents)
    idx_parts, sc_parts = [], []
    with torch.inference_mode():
        for q0 in range(0, n_q, query_block):
            qb = tq[q0:q0 + query_block]
            blocks = ((d0, qb @ td[d0:d0 + doc_block].T) for d0 in range(0, n_d, doc_block))
            i, s = top_k_blocks(blocks, k, tie_key)
            idx_parts.append(i)
            sc_parts.append(s)
    return TopK(np.concatenate(idx_parts), np.concatenate(sc_parts))


def _faiss_search(queries, documents, k, tie_key) -> TopK:
    try:
        import faiss
    except ImportError as exc:
        raise RuntimeError("FAISS search was asked for but faiss is not installed: "
                           "pip install 'wikihow-tiir[faiss]' (or faiss-cpu)") from exc
    import torch

    index = faiss.IndexFlatIP(documents.shape[1])
    index.add(documents)
    # a few more than k, so ties at the cut-off can be ordered by id like the exact search
    extra = min(documents.shape[0], k + 16)
    scores, idx = index.search(queries, extra)
    i, s = _final_rank(list(idx), list(scores), k, tie_key)
    # rows whose ties run past the extra candidates: redo them exactly, so the top k is the same
    if extra > k:
        redo = np.flatnonzero(scores[:, extra - 1] == scores[:, k - 1])
        if len(redo):
            td = torch.from_numpy(documents)
            with torch.inference_mode():
                ri, rs = top_k_blocks([(0, torch.from_numpy(queries[redo]) @ td.T)], k, tie_key)
            i[redo], s[redo] = ri, rs
    return TopK(i, s)
