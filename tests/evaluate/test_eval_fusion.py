"""Vector-Fusion against a re-implementation of the paper's ``gen_embeddings_clip.py`` formulas."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from eval_synth import png, torch_one_thread  # noqa: F401 (autouse)
from PIL import Image

from wikihow_tiir.evaluate.adapters import FUSIONS, VectorFusion, merge_images, paper_text
from wikihow_tiir.model import Document, ImageMeta, Interleaved

DIM = 6


def _vector(key: bytes, scale: float) -> np.ndarray:
    """A fixed pseudo-random vector for a key, with a norm far from 1 (so normalization matters)."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
    return (rng.standard_normal(DIM) * scale).astype(np.float32)


class FixedText:
    name = "fixed-text"

    def __init__(self):
        self.seen: list[tuple[str, str]] = []

    def encode_texts(self, texts, role):
        self.seen += [(t, role) for t in texts]
        return np.stack([_vector(t.encode() + role.encode(), 3.0) for t in texts])


class FixedImage:
    name = "fixed-image"

    def encode_images(self, images):
        # the norm depends on the picture, so a mean of raw vectors differs from a mean of unit vectors
        return np.stack([_vector(im.tobytes(), 0.5 + 4 * (np.asarray(im).mean() / 255)) for im in images])


def _doc(i: int, n_images: int) -> Document:
    c = Interleaved()
    c.add_text(f"How to do thing {i}")
    for k in range(n_images):
        c.add_text(f"Step {k + 1} of thing {i}.")
        c.add_image(ImageMeta(source_url=f"x://{i}/{k}", sha256=f"{i}-{k}"),
                    png(((40 * i + 70 * k) % 256, (90 * k) % 256, 30), size=(20 + 6 * k, 16 + 4 * i), shade=k))
    return Document(id=f"d{i}", article_id=str(i), url="", lang="en", goal="", section_title="",
                    section_kind="method", section_index=1, content=c)


def paper_reference(docs, it_type: str, image_type: str, role: str) -> np.ndarray:
    """gen_embeddings_clip.py for the CLIP branch (``--model openai``), written again from the paper's code:
    ``encode`` L2-normalizes the text and every image feature; ``mean`` averages each item's image rows
    (``qimage_index`` ranges), ``concat`` encodes one horizontally merged image; the N-variants
    normalize both parts; fuse; normalize."""
    text_enc, image_enc = FixedText(), FixedImage()
    texts = [paper_text(d.content.texts) for d in docs]
    pictures = [[Image.open(io.BytesIO(b)).convert("RGB") for b in d.content.images if b] for d in docs]
    text_emb = torch.from_numpy(text_enc.encode_texts(texts, role))
    if image_type == "mean":
        flat = [im for p in pictures for im in p]
        index, start = [], 0
        for p in pictures:
            index.append([start, start + len(p)])
            start += len(p)
    else:
        flat = [merge_images(p) for p in pictures]
    image_emb = torch.from_numpy(image_enc.encode_images(flat))
    text_emb = text_emb / text_emb.norm(dim=-1, keepdim=True)
    image_emb = image_emb / image_emb.norm(dim=-1, keepdim=True)
    if image_emb.shape[0] == text_emb.shape[0]:
        image_part = image_emb
    else:
        image_part = torch.stack([image_emb[a:b].mean(dim=0) for a, b in index])
    if it_type in ("NAddNorm", "NCNorm", "NPNorm"):
        text_emb = F.normalize(text_emb, dim=-1)
        image_part = F.normalize(image_part, dim=-1)
    if it_type in ("addNorm", "NAddNorm"):
        fused = text_emb + image_part
    elif it_type in ("concatNorm", "NCNorm"):
        fused = torch.cat([text_emb, image_part], dim=-1)
    else:
        fused = text_emb * image_part
    return F.normalize(fused, dim=-1).numpy()


@pytest.mark.parametrize("image_type", ["mean", "concat"])
@pytest.mark.parametrize("it_type", list(FUSIONS))
def test_fusion_variants_match_the_paper_script(it_type, image_type):
    docs = [_doc(0, 1), _doc(1, 3), _doc(2, 2)]  # different image counts in one batch
    got = VectorFusion(FixedText(), FixedImage(), fusion=it_type,
                       images="mean" if image_type == "mean" else "merged").encode_queries(docs)
    got = got / np.linalg.norm(got, axis=1, keepdims=True)  # the scorer's normalization
    np.testing.assert_allclose(got, paper_reference(docs, it_type, image_type, "query"), rtol=1e-5, atol=1e-6)


def test_images_are_normalized_one_by_one_before_the_mean():
    """The bug this replaced: the mean of raw image vectors (then normalized) is not the paper's part."""
    docs = [_doc(1, 3)]
    pictures = [Image.open(io.BytesIO(b)).convert("RGB") for b in docs[0].content.images if b]
    raw = FixedImage().encode_images(pictures)
    part = VectorFusion(FixedText(), FixedImage(), fusion="NAddNorm").image_vectors(docs)[0]
    unit_mean = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).mean(0)
    np.testing.assert_allclose(part, unit_mean, rtol=1e-5, atol=1e-7)
    raw_mean = raw.mean(0)
    assert not np.allclose(part / np.linalg.norm(part), raw_mean / np.linalg.norm(raw_mean), atol=1e-3)


def test_plain_and_n_variants_differ_and_text_is_the_paper_string():
    docs = [_doc(0, 2), _doc(1, 3)]
    enc = FixedText()
    plain = VectorFusion(enc, FixedImage(), fusion="addNorm").encode_documents(docs)
    n = VectorFusion(FixedText(), FixedImage(), fusion="NAddNorm").encode_documents(docs)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    assert not np.allclose(unit(plain), unit(n), atol=1e-4)
    assert enc.seen[0] == (" How to do thing 0 Step 1 of thing 0. Step 2 of thing 0.", "document")
