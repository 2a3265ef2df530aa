"""The model interface every scorer implements (baselines, adapters, CLIP, MME).

A model turns interleaved sequences into vectors. Queries and documents may be encoded
differently (instructions, token budgets), so there are two methods. Vectors need not be
normalized; the search normalizes and rejects NaN, zero-norm or wrong-dimension output with
an error naming the ids.

A model may set ``needs_images = False`` (text-only models): the scorer then reads no image bytes
and accepts a dataset whose images are missing. Without the attribute, images are read.

The smaller protocols below are the parts the adapters (``adapters.py``) combine into a
RetrievalModel for models that cannot read interleaved input themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from wikihow_tiir.model import Document, Query

Role = Literal["query", "document"]


@runtime_checkable
class RetrievalModel(Protocol):
    name: str  # shown in tables and run files, e.g. "bm25", "minilm", "mme-mini@N=3"

    def encode_queries(self, queries: Sequence[Query]) -> np.ndarray:  # (n, dim) float
        ...

    def encode_documents(self, documents: Sequence[Document]) -> np.ndarray:  # (n, dim) float
        ...


@runtime_checkable
class ScoringModel(Protocol):
    """Models that score without dense vectors (BM25): return a (n_queries, n_docs) matrix.

    The scorer calls ``score`` with blocks of queries and the same ``documents`` sequence each
    time, so a model may build its index once per documents object.
    """

    name: str

    def score(self, queries: Sequence[Query], documents: Sequence[Document]) -> np.ndarray:
        ...


class TextEncoder(Protocol):
    """Texts -> (n, dim) vectors; ``role`` lets a model add its query/passage prefix."""

    name: str

    def encode_texts(self, texts: Sequence[str], role: Role) -> np.ndarray:
        ...


class ImageEncoder(Protocol):
    """PIL images -> (n, dim) vectors."""

    name: str

    def encode_images(self, images: Sequence) -> np.ndarray:
        ...


class PairEncoder(Protocol):
    """One text and one image per item -> (n, dim) vectors (VISTA, GME, E5-V, MM-Embed style)."""

    name: str

    def encode_pairs(self, texts: Sequence[str], images: Sequence, role: Role) -> np.ndarray:
        ...


class SequenceEncoder(Protocol):
    """Interleaved sequences (lists of str and PIL images, in order) -> (n, dim) vectors."""

    name: str

    def encode_sequences(self, sequences: Sequence[list], role: Role) -> np.ndarray:
        ...
