"""The corpus image pool that the offline renderer draws query images from.

Every image of the corpus with its document, article, language, the step text just before it
and its perceptual hash. The offline renderer picks, for an image prompt, the pooled image whose
step text is most similar (MiniLM) -- always from a *different article* than the query's positive
document, and never a perceptual near-copy of one of the positive document's images.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

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
    data: bytes | None  # None in a lazy pool (bytes read on demand, see ImagePool.image_bytes)
    has_image: bool = True  # False: no bytes to show (never picked)


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


# keys ("<doc id>#<position>") -> image bytes, for the keys it can find
BytesLoader = Callable[[Sequence[str]], dict[str, bytes]]


class ImagePool:
    """The pool, either holding every image's bytes (:meth:`from_documents`) or lazy: metadata only,
    with bytes read for the pictures actually picked (:meth:`from_corpus_files`, what the build uses:
    at the paper's scale the corpus images are tens of GB)."""

    def __init__(self, images: Sequence[PoolImage], loader: BytesLoader | None = None,
                 vector_cache: Path | None = None):
        self.images = list(images)
        self._by_key = {im.key: im for im in self.images}
        self._vectors: np.ndarray | None = None
        self._lock = threading.Lock()
        self._loader = loader
        self._vector_cache = Path(vector_cache) if vector_cache is not None else None

    @classmethod
    def from_documents(cls, documents: Iterable[Document]) -> ImagePool:
        return cls(_pool_images(documents, lazy=False))

    @classmethod
    def from_corpus_files(cls, files: Sequence[Path], vector_cache: Path | None = None) -> ImagePool:
        """A lazy pool over corpus Parquet files: reads every column but the image bytes now, and the
        bytes of picked images later, with a filtered read (corpus documents always carry the bytes
        of their image positions). ``vector_cache``: a folder for the step-text embeddings, shared by
        every shard and worker of a build."""
        from wikihow_tiir.model import document_from_row
        from wikihow_tiir.storage import read_rows_without

        files = sorted(Path(f) for f in files)
        docs = (document_from_row(r) for r in read_rows_without(files))
        return cls(_pool_images(docs, lazy=True), loader=functools.partial(_read_corpus_bytes, tuple(files)),
                   vector_cache=vector_cache)

    def image_bytes(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The bytes of these pool images (held ones directly, the others through the loader in one
        read); a key without bytes is left out."""
        out = {k: im.data for k in keys if (im := self._by_key.get(k)) is not None and im.data is not None}
        missing = [k for k in keys if k not in out and k in self._by_key]
        if missing and self._loader is not None:
            out.update(self._loader(sorted(set(missing))))
        return out

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
        """MiniLM embeddings of the step texts (computed once, on first use; with a vector cache, once
        per build: ``pool-vectors-<fingerprint>.npy``)."""
        with self._lock:
            if self._vectors is None:
                cached = (self._vector_cache / f"pool-vectors-{self.fingerprint[:32]}.npy"
                          if self._vector_cache is not None else None)
                if cached is not None and cached.is_file():
                    vecs = np.load(cached, allow_pickle=False)
                    if vecs.shape[0] == len(self.images):
                        self._vectors = vecs
                        return vecs
                from wikihow_tiir.encoders.minilm import encode_texts

                self._vectors = encode_texts([im.step_text for im in self.images])
                if cached is not None:
                    import io

                    from wikihow_tiir.io import atomic_write_bytes

                    buf = io.BytesIO()
                    np.save(buf, self._vectors, allow_pickle=False)
                    atomic_write_bytes(cached, buf.getvalue())
            return self._vectors


def _pool_images(documents: Iterable[Document], lazy: bool) -> list[PoolImage]:
    """Every image of the documents, ordered by key (same corpus, same pool). ``lazy``: the documents
    were read without bytes, which the loader fetches later; otherwise the bytes they hold."""
    images = []
    for doc in documents:
        for pos, text in step_texts(doc):
            meta = doc.content.image_meta[pos]
            assert meta is not None
            data = None if lazy else doc.content.images[pos]
            images.append(PoolImage(key=f"{doc.id}#{pos}", doc_id=doc.id, article_id=doc.article_id,
                                    lang=doc.lang, step_text=text, meta=meta, data=data,
                                    has_image=lazy or data is not None))
    images.sort(key=lambda im: im.key)
    return images


def _read_corpus_bytes(files: tuple[Path, ...], keys: Sequence[str]) -> dict[str, bytes]:
    """Image bytes for ``<doc id>#<position>`` keys from corpus Parquet files (only matching rows)."""
    from wikihow_tiir.storage import read_rows_where

    wanted: dict[str, list[tuple[str, int]]] = {}
    for key in keys:
        doc_id, _, pos = key.rpartition("#")
        wanted.setdefault(doc_id, []).append((key, int(pos)))
    out: dict[str, bytes] = {}
    for row in read_rows_where(files, "id", wanted, columns=["id", "images"]):
        images = row["images"]
        for key, pos in wanted.get(row["id"], []):
            im = images[pos] if pos < len(images) else None
            if isinstance(im, dict) and im.get("bytes"):
                out[key] = im["bytes"]
    return out
