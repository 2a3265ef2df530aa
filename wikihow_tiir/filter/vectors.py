"""Embeddings with a per-shard cache, exact chunked corpus search, and near-duplicate resolution.

Memory stays bounded at the paper's scale (155,262 documents, ~81k queries): the corpus matrix is
155k x 384 float32 (~240 MB) and similarities are only ever materialised for one block of queries
at a time (block x corpus x 4 bytes, ~640 MB for a block of 1024).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wikihow_tiir.encoders.minilm import DIM, MODEL_NAME, encode_texts
from wikihow_tiir.io import atomic_write_bytes

EncodeFn = Callable[[Sequence[str], int], np.ndarray]


def _shard_key(texts: Sequence[str]) -> str:
    h = hashlib.sha256(f"{MODEL_NAME}\x00{DIM}\x00".encode())
    for t in texts:
        h.update(t.encode("utf-8", errors="replace"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


def embed_cached(texts: Sequence[str], *, batch_size: int = 64, shard_size: int = 4096,
                 cache_dir: Path | None = None, encode: EncodeFn | None = None,
                 device: str = "cpu") -> tuple[np.ndarray, dict]:
    """L2-normalised embeddings of ``texts`` (n x 384 float32) and cache statistics.

    Texts are encoded in shards of ``shard_size``; with ``cache_dir`` each shard is stored as
    ``<cache_dir>/<sha256 of the model and the shard's texts>.npy``, so a re-run (or a build that only
    added queries at the end) re-encodes only the shards whose texts changed.
    """
    encode = encode or (lambda t, b: encode_texts(t, batch_size=b, device=device))
    out = np.empty((len(texts), DIM), dtype=np.float32)
    stats = {"texts": len(texts), "shards": 0, "cached_shards": 0, "encoded_texts": 0}
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(texts), shard_size):
        chunk = [str(t) for t in texts[start:start + shard_size]]
        stats["shards"] += 1
        path = cache_dir / f"{_shard_key(chunk)}.npy" if cache_dir is not None else None
        vecs = None
        if path is not None and path.exists():
            try:
                vecs = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                vecs = None  # a damaged cache file is simply recomputed
            if vecs is not None and vecs.shape != (len(chunk), DIM):
                vecs = None
            if vecs is not None:
                stats["cached_shards"] += 1
        if vecs is None:
            vecs = np.asarray(encode(chunk, batch_size), dtype=np.float32)
            stats["encoded_texts"] += len(chunk)
            if path is not None:
                buf = io.BytesIO()
                np.save(buf, vecs, allow_pickle=False)
                atomic_write_bytes(path, buf.getvalue())
        out[start:start + len(chunk)] = vecs
    return out, stats


@dataclass(slots=True)
class PositiveStats:
    """Per query (rows of the query matrix): how its positive fares against the whole corpus."""

    positive_score: np.ndarray  # cosine(query, positive)
    rank: np.ndarray  # 1 + number of documents scoring strictly above the positive
    best_other_score: np.ndarray  # best cosine among documents of OTHER articles (-inf if none)
    best_other_index: np.ndarray  # its corpus row (-1 if none)
    runner_up_score: np.ndarray  # best cosine among ALL documents but the positive (-inf if none)


def positive_stats(queries: np.ndarray, corpus: np.ndarray, positive_index: np.ndarray,
                   query_article: np.ndarray, doc_article: np.ndarray, *, block: int = 1024) -> PositiveStats:
    """Exact search of every query against the whole corpus, ``block`` queries at a time.

    Only the positive's rank and the best other-article competitor are kept per query, so the
    full query x corpus similarity matrix never exists. ``query_article`` / ``doc_article`` are
    integer article codes (same code = same article); documents of the query's own article (its
    other methods) count for the rank but are never false-negative suspects.
    """
    n = len(queries)
    pos = np.zeros(n, dtype=np.float32)
    rank = np.zeros(n, dtype=np.int64)
    best = np.full(n, -np.inf, dtype=np.float32)
    best_idx = np.full(n, -1, dtype=np.int64)
    runner_up = np.full(n, -np.inf, dtype=np.float32)
    if n == 0 or len(corpus) == 0:
        return PositiveStats(pos, rank, best, best_idx, runner_up)
    # documents of each article, to mask a query's own article in its row
    order = np.argsort(doc_article, kind="stable")
    sorted_codes = doc_article[order]
    for start in range(0, n, block):
        stop = min(n, start + block)
        sims = queries[start:stop] @ corpus.T  # (b, n_docs)
        rows = np.arange(stop - start)
        p = sims[rows, positive_index[start:stop]]
        pos[start:stop] = p
        rank[start:stop] = 1 + (sims > p[:, None]).sum(axis=1)
        sims[rows, positive_index[start:stop]] = -np.inf
        runner_up[start:stop] = sims.max(axis=1)
        lo = np.searchsorted(sorted_codes, query_article[start:stop], side="left")
        hi = np.searchsorted(sorted_codes, query_article[start:stop], side="right")
        for r in range(stop - start):
            if hi[r] > lo[r]:
                sims[r, order[lo[r]:hi[r]]] = -np.inf
        j = sims.argmax(axis=1)
        best_idx[start:stop] = j
        best[start:stop] = sims[rows, j]
    best_idx[~np.isfinite(best)] = -1  # every document belongs to the query's own article
    return PositiveStats(pos, rank, best, best_idx, runner_up)


def near_duplicates(vectors: np.ndarray, candidates: np.ndarray, threshold: float, *,
                    block: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy near-duplicate resolution in row order.

    Returns ``(max_cosine, duplicate_of, keep)``: each row's highest cosine to any other row; for a
    candidate row dropped as a duplicate, the earlier kept candidate it duplicates (else -1); and
    whether each candidate is kept. A candidate is dropped only when an EARLIER candidate that was
    itself kept is above ``threshold`` (so chains a~b~c with a !~ c keep a and c). Non-candidates
    (already rejected) never cause a drop.
    """
    n = len(vectors)
    max_cos = np.full(n, -np.inf, dtype=np.float32)
    dup_of = np.full(n, -1, dtype=np.int64)
    keep = candidates.copy()
    for start in range(0, n, block):
        stop = min(n, start + block)
        sims = vectors[start:stop] @ vectors.T
        rows = np.arange(stop - start)
        sims[rows, rows + start] = -np.inf  # self
        max_cos[start:stop] = sims.max(axis=1) if n > 1 else -np.inf
        hits = (sims > threshold) & candidates[None, :]
        # columns at or after the row are decided later; only earlier rows can cause a drop
        hits &= np.arange(n)[None, :] < (rows + start)[:, None]
        for r in np.nonzero(hits.any(axis=1))[0]:
            i = start + r
            if not candidates[i]:
                continue
            earlier_kept = np.nonzero(hits[r] & keep)[0]  # keep[] of earlier rows is final by now
            if len(earlier_kept):
                keep[i] = False
                dup_of[i] = earlier_kept[np.argmax(sims[r, earlier_kept])]
    return max_cos, dup_of, keep
