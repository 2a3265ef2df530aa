"""The model interface every scorer implements (baselines, adapters, CLIP, MME).

A model turns interleaved sequences into vectors. Queries and documents may be encoded
differently (instructions, token budgets), so there are two methods. Vectors need not be
normalized; the search normalizes and rejects NaN, zero-norm or wrong-dimension output with
an error naming the ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from wikihow_tiir.model import Document, Query


@runtime_checkable
class RetrievalModel(Protocol):
    name: str  # shown in tables and run files, e.g. "bm25", "minilm", "mme-mini@N=3"

    def encode_queries(self, queries: Sequence[Query]) -> np.ndarray:  # (n, dim) float
        ...

    def encode_documents(self, documents: Sequence[Document]) -> np.ndarray:  # (n, dim) float
        ...


class ScoringModel(Protocol):
    """Models that score without dense vectors (BM25): return a (n_queries, n_docs) matrix."""

    name: str

    def score(self, queries: Sequence[Query], documents: Sequence[Document]) -> np.ndarray:
        ...
