"""Tiny synthetic datasets in our layout (a build's Parquet configs), written with the shared shard writer."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

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
from wikihow_tiir.storage import write_sharded

TOPICS = [
    ("Grill Zucchini", "slice the zucchini and brush with oil", (200, 40, 40)),
    ("Paint a Wall", "tape the edges and roll the paint evenly", (40, 60, 200)),
    ("Plant Tomatoes", "dig a hole and water the seedlings", (40, 170, 60)),
    ("Tie a Tie", "cross the wide end over the narrow end", (120, 40, 140)),
    ("Bake Bread", "knead the dough and let it rise", (210, 170, 90)),
    ("Wash a Car", "rinse the car and scrub with soapy water", (30, 170, 190)),
]


def png(color: tuple[int, int, int], size: tuple[int, int] = (48, 36), shade: int = 0) -> bytes:
    im = Image.new("RGB", size, tuple(max(0, min(255, c + shade)) for c in color))
    # a stripe so images of one topic are not all identical
    for x in range(size[0] // 4):
        im.putpixel((x, size[1] // 2), (255, 255, 255))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _content(texts: list[str], color, n_images: int, seed: int, missing_bytes: bool = False) -> Interleaved:
    c = Interleaved()
    for i, t in enumerate(texts):
        c.add_text(t)
        if i < n_images:
            data = png(color, shade=(seed * 7 + i * 13) % 40 - 20)
            meta = ImageMeta(source_url=f"synthetic://{seed}/{i}", sha256=f"sha-{seed}-{i}", width=48, height=36)
            c.add_image(meta, None if missing_bytes else data)
    return c


def make_items(n_docs_per_topic: int = 2, missing_image_doc: str | None = None):
    documents, queries, qrels = [], [], []
    for t, (title, action, color) in enumerate(TOPICS):
        for j in range(n_docs_per_topic):
            did = f"wh-{t}-s{j + 1}"
            texts = [f"How to {title}", f"Method {j + 1}", f"{action.capitalize()}.", "Check the result."]
            documents.append(Document(
                id=did, article_id=str(t), url=f"https://example.org/{t}", lang="en", goal=f"How to {title}",
                section_title=f"Method {j + 1}", section_kind="method", section_index=j + 1,
                content=_content(texts, color, 2, t * 10 + j, missing_bytes=did == missing_image_doc)))
        qid = f"q-{t}"
        qtexts = [f"I want to {title.lower()} today.", f"Should I {action}?"]
        queries.append(Query(id=qid, positive_id=f"wh-{t}-s1", article_id=str(t), lang="en",
                             content=_content(qtexts, color, 2, 100 + t),
                             image_prompts=[f"a photo for {title.lower()}", f"a close-up: {action}"],
                             split="test"))
        qrels.append(Qrel(query_id=qid, corpus_id=f"wh-{t}-s1", score=1))
    return documents, queries, qrels


def write_dataset(root: Path, documents, queries, qrels, split: str = "test") -> Path:
    write_sharded(root / "corpus", [document_to_row(d) for d in documents], "corpus", "corpus", 5)
    write_sharded(root / "queries", [query_to_row(q) for q in queries], "queries", split, 4)
    write_sharded(root / "qrels", [qrel_to_row(q) for q in qrels], "qrels", split, 4)
    return root


def make_dataset(root: Path, **kwargs) -> Path:
    return write_dataset(root, *make_items(**kwargs))


@pytest.fixture(autouse=True, scope="module")
def torch_one_thread():
    """One torch thread while these tests run: the models see tiny batches, where a second thread on
    a shared 2-core machine costs more in waiting (4-5x here under load) than it gains."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
