"""A tiny synthetic wikiHow-TIIR-shaped dataset with Pillow-drawn images (tests, bench, GPU check).

Document i shows shapes in colour i; query i asks with a generic sentence and pictures in colour
``perm[i]`` (a fixed permutation). Text alone cannot tell the queries apart and the untrained
model has no reason to link colour ``perm[i]`` to document i, so retrieval of the training pairs
starts near chance and can only rise by learning - which is what the tests check.
"""

from __future__ import annotations

import colorsys
import io
import random
from pathlib import Path

from wikihow_tiir.model import (
    Document,
    ImageMeta,
    Interleaved,
    Qrel,
    Query,
    document_to_row,
    qrel_to_row,
    query_to_row,
)

_WORDS = ("garden", "kitchen", "bicycle", "window", "guitar", "candle", "carpet", "fence", "drawer", "ladder",
          "kettle", "mirror", "pillow", "bottle", "basket", "bucket", "shovel", "blanket", "button", "jacket",
          "wallet", "helmet", "saddle", "anchor")


def _palette(count: int) -> list[tuple[int, int, int]]:
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(i / count, 0.85, 0.95)) for i in range(count)]


def draw_image(colour: tuple[int, int, int], shape: int, size: int = 96, variant: int = 0) -> bytes:
    """A JPEG with one filled shape (0 circle, 1 square, 2 triangle) on a light background."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (size, size), (235, 235, 200 + variant * 7 % 55))  # every variant differs
    d = ImageDraw.Draw(im)
    m = size // 6 + variant % 5
    box = (m, m, size - m, size - m)
    if shape % 3 == 0:
        d.ellipse(box, fill=colour)
    elif shape % 3 == 1:
        d.rectangle(box, fill=colour)
    else:
        d.polygon([(size // 2, m), (size - m, size - m), (m, size - m)], fill=colour)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _add_image(content: Interleaved, data: bytes, url: str, size: int) -> None:
    from wikihow_tiir.io import sha256_bytes

    content.add_image(ImageMeta(source_url=url, sha256=sha256_bytes(data), width=size, height=size,
                                stand_in=True), data)


def make_items(n_docs: int = 24, images_per_doc: int = 3, image_size: int = 96, seed: int = 0,
               permute: bool = True):
    """(documents, queries, qrels) as model objects; ``permute=False`` gives query i colour i."""
    if n_docs > len(_WORDS) * 4:
        raise ValueError(f"at most {len(_WORDS) * 4} synthetic documents")
    colours = _palette(n_docs)
    perm = list(range(n_docs))
    if permute:
        random.Random(seed).shuffle(perm)
    docs, queries, qrels = [], [], []
    for i in range(n_docs):
        word = _WORDS[i % len(_WORDS)] + ("" if i < len(_WORDS) else f" {i // len(_WORDS)}")
        content = Interleaved()
        content.add_text(f"How to Care for Your {word.title()}")
        content.add_text("Method 1")
        for s in range(images_per_doc):
            content.add_text(f"Step {s + 1}.")
            _add_image(content, draw_image(colours[i], s, image_size, variant=s), f"synthetic://doc/{i}/{s}",
                       image_size)
        doc = Document(id=f"wh-syn{i}-s1", article_id=f"syn{i}", url=f"synthetic://doc/{i}", lang="en",
                       goal=f"How to Care for Your {word.title()}", section_title="Method 1", section_kind="method",
                       section_index=1, content=content)
        docs.append(doc)
        q = Interleaved()
        q.add_text("Which tutorial matches these pictures?")
        for s in range(2):
            _add_image(q, draw_image(colours[perm[i]], s + 1, image_size, variant=s + 3),
                       f"synthetic://query/{i}/{s}", image_size)
        queries.append(Query(id=f"q-syn{i}", positive_id=doc.id, article_id=doc.article_id, lang="en", content=q,
                             split="train"))
        qrels.append(Qrel(f"q-syn{i}", doc.id, 1))
    return docs, queries, qrels


def write_dataset(out_dir: str | Path, n_docs: int = 24, images_per_doc: int = 3, image_size: int = 96,
                  seed: int = 0, split: str = "train", permute: bool = True) -> Path:
    """Write the synthetic set in the dataset layout (corpus/, queries/<split>-*, qrels/<split>-*)."""
    from wikihow_tiir.layout import CORPUS_SPLIT, config_dir
    from wikihow_tiir.storage import write_sharded

    out_dir = Path(out_dir)
    docs, queries, qrels = make_items(n_docs, images_per_doc, image_size, seed, permute)
    write_sharded(config_dir(out_dir, "corpus"), [document_to_row(d) for d in docs], "corpus", CORPUS_SPLIT)
    write_sharded(config_dir(out_dir, "queries"), [query_to_row(q) for q in queries], "queries", split)
    write_sharded(config_dir(out_dir, "qrels"), [qrel_to_row(r) for r in qrels], "qrels", split)
    return out_dir
