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

from wikihow_tiir.io import sha256_bytes, stable_hash
from wikihow_tiir.layout import blob_in
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


@dataclass(frozen=True, slots=True)
class PoolColumns:
    """Per pooled image, as integer codes (comparing 770k Python strings per query took most of a shard)."""

    article: np.ndarray  # code of the image's article
    lang: np.ndarray  # code of its base language ("en", "ja" ...: :func:`base_language`)
    usable: np.ndarray  # has bytes to show and a perceptual hash (bool)
    article_codes: dict[str, int]
    lang_codes: dict[str, int]

    def article_code(self, article_id: str) -> int:
        return self.article_codes.get(article_id, -1)

    def lang_code(self, lang: str) -> int:
        return self.lang_codes.get(base_language(lang), -1)


def base_language(lang: str | None) -> str:
    """``"en-US"`` -> ``"en"`` (``"en"`` when empty)."""
    return (lang or "en").split("-")[0].lower()


# keys ("<doc id>#<position>") -> image bytes, for the keys it can find
BytesLoader = Callable[[Sequence[str]], dict[str, bytes]]


class ImagePool:
    """The pool, either holding every image's bytes (:meth:`from_documents`) or lazy: metadata only,
    with bytes read for the pictures actually picked (:meth:`from_corpus_files`, what the build uses:
    at the paper's scale the corpus images are tens of GB)."""

    def __init__(self, images: Sequence[PoolImage], loader: BytesLoader | None = None,
                 vector_cache: Path | None = None, blobs: Path | None = None):
        self.images = list(images)
        self._by_key = {im.key: im for im in self.images}
        self._vectors: np.ndarray | None = None
        self._lock = threading.Lock()
        self._loader = loader
        self._vector_cache = Path(vector_cache) if vector_cache is not None else None
        self._blobs = Path(blobs) if blobs is not None else None
        # computed once per pool, not per query shard (each is a pass over every pooled image: per shard,
        # they made the query stage quadratic in the corpus size)
        self._fingerprint: str | None = None
        self._text_index: dict[str, int] | None = None
        self._columns: PoolColumns | None = None

    @classmethod
    def from_documents(cls, documents: Iterable[Document]) -> ImagePool:
        return cls(_pool_images(documents, lazy=False))

    @classmethod
    def from_corpus_files(cls, files: Sequence[Path], vector_cache: Path | None = None,
                          blobs: Path | None = None) -> ImagePool:
        """A lazy pool over corpus Parquet files: reads every column but the image bytes now, and the
        bytes of picked images later, with a filtered read (corpus documents always carry the bytes
        of their image positions). ``vector_cache``: a folder for the step-text embeddings, shared by
        every shard and worker of a build. ``blobs``: a folder of the pictures by content
        (``<sha[:2]>/<sha256>.jpg``, written by the corpus stage), read first: a file there costs its
        own bytes, a pick from the corpus files a whole row group of pictures."""
        from wikihow_tiir.model import document_from_row
        from wikihow_tiir.storage import read_rows_without

        files = sorted(Path(f) for f in files)
        docs = (document_from_row(r) for r in read_rows_without(files))
        return cls(_pool_images(docs, lazy=True), loader=functools.partial(_read_corpus_bytes, tuple(files)),
                   vector_cache=vector_cache, blobs=blobs)

    def image_bytes(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The bytes of these pool images (held ones directly, the others through the loader in one
        read); a key without bytes is left out."""
        out = {k: im.data for k in keys if (im := self._by_key.get(k)) is not None and im.data is not None}
        if self._blobs is not None:
            for k in keys:
                if k not in out and (im := self._by_key.get(k)) is not None and (data := self._blob(im)):
                    out[k] = data
        missing = [k for k in keys if k not in out and k in self._by_key]
        if missing and self._loader is not None:
            out.update(self._loader(sorted(set(missing))))
        return out

    def _blob(self, im: PoolImage) -> bytes | None:
        """The picture from the blob folder, when it is there and is what its name says."""
        sha = im.meta.sha256
        if not sha or self._blobs is None:
            return None
        try:
            data = blob_in(self._blobs, sha).read_bytes()
        except OSError:
            return None
        return data if sha256_bytes(data) == sha else None

    def __len__(self) -> int:
        return len(self.images)

    def get(self, key: str) -> PoolImage | None:
        return self._by_key.get(key)

    def text_index(self) -> dict[str, int]:
        """Step text -> the index of its first pool image (to re-use embeddings already computed)."""
        with self._lock:
            if self._text_index is None:
                out: dict[str, int] = {}
                for i, im in enumerate(self.images):
                    out.setdefault(im.step_text, i)
                self._text_index = out
            return self._text_index

    @property
    def fingerprint(self) -> str:
        with self._lock:
            if self._fingerprint is None:
                self._fingerprint = stable_hash([(im.key, im.meta.sha256, im.meta.phash, im.step_text)
                                                 for im in self.images])
            return self._fingerprint

    def columns(self) -> PoolColumns:
        """The per-image arrays the offline renderer filters by (article, language, usable)."""
        with self._lock:
            if self._columns is None:
                articles: dict[str, int] = {}
                langs: dict[str, int] = {}
                self._columns = PoolColumns(
                    article=np.array([articles.setdefault(im.article_id, len(articles)) for im in self.images],
                                     dtype=np.int64),
                    lang=np.array([langs.setdefault(base_language(im.lang), len(langs)) for im in self.images],
                                  dtype=np.int64),
                    usable=np.array([im.has_image and bool(im.meta.phash) for im in self.images], dtype=bool),
                    article_codes=articles, lang_codes=langs)
            return self._columns

    def vectors(self) -> np.ndarray:
        """MiniLM embeddings of the step texts (computed once, on first use; with a vector cache, once
        per build: ``pool-vectors-<fingerprint>.npy``)."""
        fingerprint = self.fingerprint
        with self._lock:
            if self._vectors is None:
                cached = (self._vector_cache / f"pool-vectors-{fingerprint[:32]}.npy"
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
