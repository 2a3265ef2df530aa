"""The corpus image pool that the offline renderer draws query images from.

Every image of the corpus with its document, article, language, the step text just before it
and its perceptual hash. The offline renderer picks, for an image prompt, the pooled image whose
step text is most similar (MiniLM) -- always from a *different article* than the query's positive
document, and never a perceptual near-copy of one of the positive document's images.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from wikihow_tiir.io import stable_hash
from wikihow_tiir.model import Document, ImageMeta


@dataclass(frozen=True, slots=True)
class PoolImage:
    key: str  # "<doc id>#<position>"
    doc_id: str
    article_id: str
    lang: str
    step_text: str  # the text position just before the image ("" when none)
    meta: ImageMeta
    data: bytes | None


def step_texts(doc: Document) -> list[tuple[int, str]]:
    """``(image position, text of the step it illustrates)`` for each image of a document."""
    out = []
    last_text = ""
    for i, (text, meta) in enumerate(zip(doc.content.texts, doc.content.image_meta, strict=True)):
        if meta is not None:
            out.append((i, last_text))
        elif i >= 2 and text:  # positions 0/1 are the goal and section title, not steps
            last_text = text
    return out


class ImagePool:
    def __init__(self, images: Sequence[PoolImage]):
        self.images = list(images)
        self._by_key = {im.key: im for im in self.images}
        self._vectors: np.ndarray | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_documents(cls, documents: Iterable[Document]) -> ImagePool:
        images = []
        for doc in documents:
            for pos, text in step_texts(doc):
                meta = doc.content.image_meta[pos]
                assert meta is not None
                images.append(PoolImage(key=f"{doc.id}#{pos}", doc_id=doc.id, article_id=doc.article_id,
                                        lang=doc.lang, step_text=text, meta=meta, data=doc.content.images[pos]))
        images.sort(key=lambda im: im.key)  # order-independent: same corpus, same pool
        return cls(images)

    def __len__(self) -> int:
        return len(self.images)

    def get(self, key: str) -> PoolImage | None:
        return self._by_key.get(key)

    def text_index(self) -> dict[str, int]:
        """Step text -> the index of its first pool image (to re-use embeddings already computed)."""
        out: dict[str, int] = {}
        for i, im in enumerate(self.images):
            out.setdefault(im.step_text, i)
        return out

    @property
    def fingerprint(self) -> str:
        return stable_hash([(im.key, im.meta.sha256, im.meta.phash, im.step_text) for im in self.images])

    def vectors(self) -> np.ndarray:
        """MiniLM embeddings of the step texts (computed once, on first use)."""
        with self._lock:
            if self._vectors is None:
                from wikihow_tiir.embeddings import encode_texts

                self._vectors = encode_texts([im.step_text for im in self.images])
            return self._vectors
