"""Seeded perturbations of the interleaved order (``--perturb``, the paper's Figure 4).

* ``shuffle-order`` - the pictures trade places among the picture positions (texts stay put);
* ``shuffle-positions`` - the pictures keep their order but move to random positions of the
  sequence (the texts keep theirs);
* ``both`` - the order shuffled, then the positions.

Queries and documents are both perturbed. Each item's permutation comes from a hash of the seed,
the perturbation and the item id, so a run is the same whatever the batch size or the model, and
two models see the same perturbed items. A plain shuffle may leave an item as it was (more often
with two pictures), as the paper's shuffling would.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from wikihow_tiir.io import stable_hash
from wikihow_tiir.model import Document, Interleaved, Query

PERTURBATIONS = ("shuffle-order", "shuffle-positions", "both")


def perturb_content(content: Interleaved, kind: str, rng: random.Random) -> Interleaved:
    """A perturbed copy of ``content`` (the lists are new; bytes and metadata are shared)."""
    if kind not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {kind!r}; choose {', '.join(PERTURBATIONS)}")
    texts = [t for t in content.texts if t is not None]
    pictures = [(b, m) for t, b, m in zip(content.texts, content.images, content.image_meta, strict=True)
                if t is None]
    slots = [t is None for t in content.texts]  # True where a picture goes
    if kind in ("shuffle-order", "both"):
        rng.shuffle(pictures)
    if kind in ("shuffle-positions", "both"):
        chosen = set(rng.sample(range(len(slots)), len(pictures)))
        slots = [i in chosen for i in range(len(slots))]
    out = Interleaved()
    ti, pi = iter(texts), iter(pictures)
    for is_picture in slots:
        if is_picture:
            data, meta = next(pi)
            out.add_image(meta, data)
        else:
            out.add_text(next(ti))
    return out


def perturb_items(items: Sequence[Document | Query], kind: str, seed: int) -> list:
    return [replace(it, content=perturb_content(it.content, kind, random.Random(stable_hash(seed, kind, it.id))))
            for it in items]


class _Perturbed:
    def __init__(self, model, kind: str, seed: int, name: str | None):
        if kind not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {kind!r}; choose {', '.join(PERTURBATIONS)}")
        self.model, self.kind, self.seed = model, kind, seed
        self.name = name or f"{getattr(model, 'name', 'model')} ({kind})"
        self.needs_images = getattr(model, "needs_images", True)

    def _p(self, items):
        return perturb_items(items, self.kind, self.seed)

    def report(self) -> dict:
        inner = self.model.report() if hasattr(self.model, "report") else {}
        return {**inner, "perturbation": self.kind, "seed": self.seed}


class PerturbedEncoder(_Perturbed):
    def encode_queries(self, queries: Sequence[Query]) -> np.ndarray:
        return self.model.encode_queries(self._p(queries))

    def encode_documents(self, documents: Sequence[Document]) -> np.ndarray:
        return self.model.encode_documents(self._p(documents))


class PerturbedScorer(_Perturbed):
    def score(self, queries, documents) -> np.ndarray:
        if getattr(self, "_docs_key", None) != id(documents):  # the scorer indexes one documents object once
            self._docs_key, self._docs = id(documents), self._p(documents)
        return self.model.score(self._p(queries), self._docs)


def perturbed(model, kind: str, seed: int = 0, name: str | None = None):
    """``model`` (a RetrievalModel or a ScoringModel) fed perturbed queries and documents."""
    if hasattr(model, "encode_queries"):
        return PerturbedEncoder(model, kind, seed, name)
    return PerturbedScorer(model, kind, seed, name)
