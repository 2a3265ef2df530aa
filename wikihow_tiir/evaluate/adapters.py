"""The paper's ways to fit a non-interleaved model to interleaved queries and documents (§4, Table 2/3).

* :class:`TextOnly` - the text positions joined with newlines (the paper's ``gen_embeddings_text.py``);
* :class:`TextWithCaptions` - each image replaced by its caption, where the dataset has one;
* :class:`TextWithImagePrompts` - queries with their image prompts, documents text only;
* :class:`MergedImage` - one text (segments joined with spaces) + one image (all images pasted side
  by side: width = sum of widths, height = max height), for single-pair embedders (VISTA, GME ...);
* :class:`VectorFusion` - a text vector and an image vector (the mean of the per-image vectors, or
  the vector of the merged image) combined by sum / concatenation / element-wise product,
  L2-normalizing both parts before fusing or only the result (``gen_embeddings_clip.py``'s
  ``addNorm``/``concatNorm``/``productNorm`` and their ``N``-prefixed variants);
* :class:`NativeInterleaved` - the sequence as it is, for models that read interleaved input.

Each adapter is a :class:`~wikihow_tiir.evaluate.base.RetrievalModel`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from wikihow_tiir.evaluate.base import ImageEncoder, PairEncoder, Role, SequenceEncoder, TextEncoder
from wikihow_tiir.evaluate.search import EmbeddingError, normalize
from wikihow_tiir.model import Document, Query
from wikihow_tiir.retrieval.dataset import DatasetError, show_ids

Item = Document | Query
Fusion = Literal["sum", "concat", "product"]
FusionNorm = Literal["before", "after"]
ImageMode = Literal["mean", "merged"]


def decode_images(item: Item) -> list:
    """The item's images as RGB PIL images, in order (a position without bytes is an error)."""
    from PIL import Image

    out = []
    for meta, data in zip(item.content.image_meta, item.content.images, strict=True):
        if meta is None:
            continue
        if data is None:
            raise DatasetError(f"{item.id}: an image position has no bytes ({meta.source_url})")
        with Image.open(io.BytesIO(data)) as im:
            out.append(im.convert("RGB"))
    return out


def merge_images(images: Sequence) -> object:
    """All images pasted left to right on one RGB canvas (width = sum, height = max), as the paper does."""
    from PIL import Image

    if not images:
        raise ValueError("no images to merge")
    canvas = Image.new("RGB", (sum(im.width for im in images), max(im.height for im in images)))
    x = 0
    for im in images:
        canvas.paste(im, (x, 0))
        x += im.width
    return canvas


def _require_images(items: Sequence[Item], what: str) -> None:
    empty = [it.id for it in items if it.content.n_images == 0]
    if empty:
        raise DatasetError(f"{what} needs at least one image per item; these have none: {show_ids(empty)}")


class _Adapter:
    name: str
    needs_images = True

    def encode(self, items: Sequence[Item], role: Role) -> np.ndarray:
        raise NotImplementedError

    def encode_queries(self, queries: Sequence[Query]) -> np.ndarray:
        return self.encode(queries, "query")

    def encode_documents(self, documents: Sequence[Document]) -> np.ndarray:
        return self.encode(documents, "document")


class TextOnly(_Adapter):
    """Drop the images; text positions joined with newlines."""

    needs_images = False

    def __init__(self, text: TextEncoder, name: str | None = None):
        self.text = text
        self.name = name or f"{text.name} (text only)"

    def encode(self, items: Sequence[Item], role: Role) -> np.ndarray:
        return self.text.encode_texts([it.content.text for it in items], role)


class TextWithCaptions(_Adapter):
    """Each image replaced by its caption: ``captions[sha256]``, else a query's own image prompt.

    A query's ``image_prompts`` describe its images (they were generated from them), so queries
    always have captions; documents need a ``captions`` mapping (image sha256 -> text).
    """

    needs_images = False

    def __init__(self, text: TextEncoder, captions: Mapping[str, str] | None = None, name: str | None = None):
        self.text, self.captions = text, dict(captions or {})
        self.name = name or f"{text.name} (text w/ captions)"

    def _text(self, item: Item, missing: list[str]) -> str:
        prompts = item.image_prompts if isinstance(item, Query) else []
        parts, k = [], 0
        for t, meta in zip(item.content.texts, item.content.image_meta, strict=True):
            if t is not None:
                if t:
                    parts.append(t)
                continue
            caption = self.captions.get(meta.sha256) if meta.sha256 else None
            if caption is None and k < len(prompts):
                caption = prompts[k]
            k += 1
            if caption is None:
                missing.append(item.id)
                continue
            parts.append(caption)
        return "\n".join(parts)

    def encode(self, items: Sequence[Item], role: Role) -> np.ndarray:
        missing: list[str] = []
        texts = [self._text(it, missing) for it in items]
        if missing:
            raise DatasetError(f"no caption for some images of {show_ids(sorted(set(missing)))}: the dataset carries "
                               f"no captions for them; pass a captions file (image sha256 -> caption)")
        return self.text.encode_texts(texts, role)


class TextWithImagePrompts(TextWithCaptions):
    """Queries: each picture replaced by its image prompt (what it shows); documents: text only (a
    document's step text already says what each of its pictures shows). The text embedder's view of
    a query *with* its pictures, as the filter's picture-necessity check sees it."""

    def __init__(self, text: TextEncoder, name: str | None = None):
        super().__init__(text, captions=None, name=name or f"{text.name} (text w/ image prompts)")

    def encode_documents(self, documents: Sequence[Document]) -> np.ndarray:
        return self.text.encode_texts([d.content.text for d in documents], "document")


class MergedImage(_Adapter):
    """One (text, merged image) pair per item for single-pair embedders."""

    def __init__(self, pair: PairEncoder, name: str | None = None):
        self.pair = pair
        self.name = name or f"{pair.name} (text w/ merged image)"

    def encode(self, items: Sequence[Item], role: Role) -> np.ndarray:
        _require_images(items, self.name)
        texts = [" ".join(t for t in it.content.texts if t) for it in items]
        return self.pair.encode_pairs(texts, [merge_images(decode_images(it)) for it in items], role)


class VectorFusion(_Adapter):
    """Text vector (+) image vector; see the module doc for the options."""

    def __init__(self, text: TextEncoder, image: ImageEncoder, fusion: Fusion = "sum", norm: FusionNorm = "before",
                 images: ImageMode = "mean", name: str | None = None):
        if fusion not in ("sum", "concat", "product"):
            raise ValueError(f"fusion must be sum, concat or product, not {fusion!r}")
        if norm not in ("before", "after"):
            raise ValueError(f"norm must be 'before' or 'after', not {norm!r}")
        if images not in ("mean", "merged"):
            raise ValueError(f"images must be 'mean' or 'merged', not {images!r}")
        self.text, self.image, self.fusion, self.norm, self.images = text, image, fusion, norm, images
        self.name = name or f"{text.name}+{image.name} (fusion {fusion}, norm {norm}, {images} image)"

    def image_vectors(self, items: Sequence[Item]) -> np.ndarray:
        if self.images == "merged":
            return np.asarray(self.image.encode_images([merge_images(decode_images(it)) for it in items]))
        per_item = [decode_images(it) for it in items]
        counts = [len(p) for p in per_item]
        flat = np.asarray(self.image.encode_images([im for p in per_item for im in p]), dtype=np.float64)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        return (np.add.reduceat(flat, starts, axis=0) / np.asarray(counts)[:, None]).astype(np.float32)

    def encode(self, items: Sequence[Item], role: Role) -> np.ndarray:
        _require_images(items, self.name)
        ids = [it.id for it in items]
        t = np.asarray(self.text.encode_texts([it.content.text for it in items], role), dtype=np.float32)
        v = self.image_vectors(items)
        if self.norm == "before":
            t = normalize(t, ids, f"{self.text.name} text vectors")
            v = normalize(v, ids, f"{self.image.name} image vectors")
        if self.fusion == "concat":
            return np.concatenate([t, v], axis=1)
        if t.shape[1] != v.shape[1]:
            raise EmbeddingError(f"{self.fusion} fusion needs text and image vectors of one size, got "
                                 f"{t.shape[1]} and {v.shape[1]}; use concat")
        return t + v if self.fusion == "sum" else t * v


class NativeInterleaved(_Adapter):
    """The interleaved sequence as is: a list of str and PIL images per item, in order."""

    def __init__(self, encoder: SequenceEncoder, name: str | None = None):
        self.encoder = encoder
        self.name = name or encoder.name

    def encode(self, items: Sequence[Item], role: Role) -> np.ndarray:
        sequences = []
        for it in items:
            images = iter(decode_images(it))
            sequences.append([t if t is not None else next(images) for t in it.content.texts])
        return self.encoder.encode_sequences(sequences, role)
