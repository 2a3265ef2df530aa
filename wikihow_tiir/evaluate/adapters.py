"""The paper's ways to fit a non-interleaved model to interleaved queries and documents (§4, Table 2/3).

* :class:`TextOnly` - the text positions joined with newlines (the paper's ``gen_embeddings_text.py``);
* :class:`TextWithCaptions` - each image replaced by its caption, where the dataset has one;
* :class:`TextWithImagePrompts` - queries with their image prompts, documents text only;
* :class:`MergedImage` - one text + one image (all images pasted side by side: width = sum of
  widths, height = max height), for single-pair embedders (GME, E5-V ...). The text is the paper's
  ``prepare_clip_data`` string: every text position preceded by one space (``" t1 t2"``);
* :class:`VectorFusion` - ``gen_embeddings_clip.py``'s Vector-Fusion: the text vector and each image
  vector L2-normalized (the script normalizes ``get_text_features`` / ``get_image_features``, and
  Jina-CLIP's ``encode_*`` return unit vectors), the image part the mean of the per-image unit
  vectors (``--fusion-images mean``) or the vector of the merged image (``merged``); then fused by
  the script's ``--it_type`` (:data:`FUSIONS`): ``addNorm`` / ``concatNorm`` / ``productNorm`` fuse
  as they are, the ``N``-prefixed ``NAddNorm`` / ``NCNorm`` / ``NPNorm`` L2-normalize both parts
  first (which changes the image part: a mean of unit vectors is shorter than 1); the result is
  L2-normalized (by the scorer);
* :class:`Screenshot` - the item rendered as one page image (``screenshot.py``) for a page encoder;
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
ImageMode = Literal["mean", "merged"]
# gen_embeddings_clip.py's --it_type: name -> (how the parts are combined, normalize both parts first)
FUSIONS: dict[str, tuple[str, bool]] = {
    "addNorm": ("sum", False), "concatNorm": ("concat", False), "productNorm": ("product", False),
    "NAddNorm": ("sum", True), "NCNorm": ("concat", True), "NPNorm": ("product", True),
}


def newline_text(texts: Sequence[str | None]) -> str:
    """The text positions joined with newlines (``gen_embeddings_text.py``; the dataset's ``text``)."""
    return "\n".join(t for t in texts if t)


def paper_text(texts: Sequence[str | None]) -> str:
    """``prepare_clip_data``'s text (the merged-image and vector-fusion scripts): each text position
    appended after one space, so the string starts with a space."""
    return "".join(f" {t}" for t in texts if t is not None)


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
    """Drop the images; text positions joined by ``joiner`` (newlines by default)."""

    needs_images = False

    def __init__(self, text: TextEncoder, name: str | None = None, joiner=newline_text):
        self.text, self.joiner = text, joiner
        self.name = name or f"{text.name} (text only)"

    def encode(self, items: Sequence[Item], role: Role) -> np.ndarray:
        return self.text.encode_texts([self.joiner(it.content.texts) for it in items], role)


class TextWithCaptions(_Adapter):
    """Each image replaced by its caption: ``captions[sha256]``, else a query's own image prompt.

    A query's ``image_prompts`` describe its images (they were generated from them), so queries
    always have captions; documents need a ``captions`` mapping (image sha256 -> text).
    """

    needs_images = False

    def __init__(self, text: TextEncoder, captions: Mapping[str, str] | None = None, name: str | None = None,
                 joiner=newline_text):
        self.text, self.captions, self.joiner = text, dict(captions or {}), joiner
        self.name = name or f"{text.name} (text w/ captions)"

    def _text(self, item: Item, missing: list[str]) -> str:
        prompts = item.image_prompts if isinstance(item, Query) else []
        parts, k = [], 0
        for t, meta in zip(item.content.texts, item.content.image_meta, strict=True):
            if t is not None:
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
        return self.joiner(parts)

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
    """One (text, merged image) pair per item for single-pair embedders (``gen_embeddings_multigpu.py``)."""

    def __init__(self, pair: PairEncoder, name: str | None = None, joiner=paper_text):
        self.pair, self.joiner = pair, joiner
        self.name = name or f"{pair.name} (text w/ merged image)"

    def encode(self, items: Sequence[Item], role: Role) -> np.ndarray:
        _require_images(items, self.name)
        texts = [self.joiner(it.content.texts) for it in items]
        return self.pair.encode_pairs(texts, [merge_images(decode_images(it)) for it in items], role)


def _unit(v: np.ndarray, ids: Sequence[str], what: str) -> np.ndarray:
    return normalize(np.asarray(v, dtype=np.float32), ids, what).astype(np.float64)


class VectorFusion(_Adapter):
    """Text vector (+) image vector, as ``gen_embeddings_clip.py`` computes it; see the module doc."""

    def __init__(self, text: TextEncoder, image: ImageEncoder, fusion: str = "NAddNorm", images: ImageMode = "mean",
                 name: str | None = None, joiner=paper_text):
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)} (the --it_type "
                             f"names of the paper's gen_embeddings_clip.py; N = normalize both parts first)")
        if images not in ("mean", "merged"):
            raise ValueError(f"images must be 'mean' or 'merged', not {images!r}")
        self.text, self.image, self.fusion, self.images, self.joiner = text, image, fusion, images, joiner
        self.name = name or f"{text.name}+{image.name} ({fusion}, {images} image)"

    def image_vectors(self, items: Sequence[Item]) -> np.ndarray:
        """Per item: the unit vector of the merged image, or the mean of its images' unit vectors."""
        ids = [it.id for it in items]
        if self.images == "merged":
            return _unit(self.image.encode_images([merge_images(decode_images(it)) for it in items]), ids,
                         f"{self.image.name} image vectors")
        per_item = [decode_images(it) for it in items]
        counts = [len(p) for p in per_item]
        owners = [it.id for it, n in zip(items, counts, strict=True) for _ in range(n)]
        flat = _unit(self.image.encode_images([im for p in per_item for im in p]), owners,
                     f"{self.image.name} image vectors")
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        return np.add.reduceat(flat, starts, axis=0) / np.asarray(counts)[:, None]

    def encode(self, items: Sequence[Item], role: Role) -> np.ndarray:
        _require_images(items, self.name)
        ids = [it.id for it in items]
        t = _unit(self.text.encode_texts([self.joiner(it.content.texts) for it in items], role), ids,
                  f"{self.text.name} text vectors")
        v = self.image_vectors(items)
        how, norm_parts = FUSIONS[self.fusion]
        if norm_parts:
            v = _unit(v, ids, f"{self.image.name} image vectors (mean)")  # t is a unit vector already
        if how == "concat":
            return np.concatenate([t, v], axis=1).astype(np.float32)
        if t.shape[1] != v.shape[1]:
            raise EmbeddingError(f"{self.fusion} needs text and image vectors of one size, got "
                                 f"{t.shape[1]} and {v.shape[1]}; use concatNorm or NCNorm")
        return (t + v if how == "sum" else t * v).astype(np.float32)


def sequence_of(item: Item) -> list:
    """The item as a list of str and PIL images in reading order."""
    images = iter(decode_images(item))
    return [t if t is not None else next(images) for t in item.content.texts]


class Screenshot(_Adapter):
    """Each item rendered as one page image (``screenshot.py``), encoded by ``page(images, role)``."""

    def __init__(self, page, name: str, style=None):
        from wikihow_tiir.evaluate.screenshot import ScreenshotStyle

        self.page, self.name, self.style = page, name, style or ScreenshotStyle()

    def encode(self, items: Sequence[Item], role: Role) -> np.ndarray:
        from wikihow_tiir.evaluate.screenshot import render_page

        return self.page([render_page(sequence_of(it), self.style) for it in items], role)


class NativeInterleaved(_Adapter):
    """The interleaved sequence as is: a list of str and PIL images per item, in order."""

    def __init__(self, encoder: SequenceEncoder, name: str | None = None):
        self.encoder = encoder
        self.name = name or encoder.name

    def encode(self, items: Sequence[Item], role: Role) -> np.ndarray:
        return self.encoder.encode_sequences([sequence_of(it) for it in items], role)
