"""Publishing throughput: validation (with and without the load_dataset read-back), card, paper layout.

A synthetic dataset of interleaved documents with real JPEG images (like the build's normalized
images) is written to a temp folder; figures are rows or images per second.
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path
from typing import Any


def _jpeg(seed: int, side: int) -> bytes:
    from PIL import Image

    im = Image.new("RGB", (side, side), ((seed * 53) % 256, (seed * 101) % 256, (seed * 17) % 256))
    for x in range(0, side, 8):  # some structure, so the JPEG/PNG encoders do real work
        im.putpixel((x, (x * seed) % side), (255, 255, 255))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _make(root: Path, n_docs: int, images_per_doc: int, side: int) -> None:
    from wikihow_tiir.io import atomic_write_json, atomic_write_text
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
    from wikihow_tiir.publish.card import render_card
    from wikihow_tiir.storage import file_entries, write_sharded

    pool = [_jpeg(i, side) for i in range(16)]
    docs, queries = [], []
    for i in range(n_docs):
        c = Interleaved()
        c.add_text(f"How to Do Thing {i}")
        for k in range(images_per_doc):
            c.add_text(f"Step {k + 1}: do part {k}.")
            c.add_image(ImageMeta(source_url=f"https://example.org/{i}/{k}.jpg", license="CC BY-NC-SA 3.0",
                                  width=side, height=side), pool[(i + k) % len(pool)])
        docs.append(Document(id=f"wh-{i}-s1", article_id=str(i), url="", lang="en", goal=f"Thing {i}",
                             section_title="", section_kind="steps", section_index=1, content=c))
        if i % 2 == 0:
            q = Interleaved()
            q.add_text(f"Help with thing {i}.")
            q.add_image(ImageMeta(source_url="generated", width=side, height=side), pool[i % len(pool)])
            q.add_image(ImageMeta(source_url="generated", width=side, height=side), pool[(i + 1) % len(pool)])
            queries.append(Query(id=f"q-{i}", positive_id=f"wh-{i}-s1", article_id=str(i), lang="en", content=q,
                                 split="test"))
    write_sharded(root / "corpus", [document_to_row(d) for d in docs], "corpus", "corpus", 500)
    write_sharded(root / "queries", [query_to_row(q) for q in queries], "queries", "test", 500)
    write_sharded(root / "qrels", [qrel_to_row(Qrel(q.id, q.positive_id)) for q in queries], "qrels", "test", 500)
    manifest = {"name": "bench", "files": file_entries(root)}
    atomic_write_json(root / "manifest.json", manifest)
    atomic_write_text(root / "README.md", render_card(manifest))


def run(quick: bool = False) -> dict[str, Any]:
    from wikihow_tiir.publish.card import render_card
    from wikihow_tiir.publish.paper_layout import read_paper_layout, write_paper_layout
    from wikihow_tiir.publish.validate import validate_dataset

    n_docs, per_doc, side = (60, 4, 128) if quick else (600, 5, 320)
    out: dict[str, Any] = {"documents": n_docs, "images_per_document": per_doc, "image_side": side}
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        root = Path(tmp) / "ds"
        _make(root, n_docs, per_doc, side)
        n_images = n_docs * per_doc + n_docs  # documents + queries (2 images per query, every other doc)
        out["dataset_mb"] = round(sum(p.stat().st_size for p in root.rglob("*.parquet")) / 2**20, 2)

        t = time.perf_counter()
        assert validate_dataset(root, check_load=False) == []
        s = time.perf_counter() - t
        out["validate_no_load_s"] = round(s, 3)
        out["validate_no_load_images_per_s"] = round(n_images / s, 1)

        t = time.perf_counter()
        assert validate_dataset(root, check_load=True) == []
        s = time.perf_counter() - t
        out["validate_full_s"] = round(s, 3)
        out["load_read_back_share"] = round(1 - out["validate_no_load_s"] / s, 2) if s else None

        import json

        manifest = json.loads((root / "manifest.json").read_text())
        t = time.perf_counter()
        for _ in range(20):
            render_card(manifest)
        out["render_card_ms"] = round((time.perf_counter() - t) / 20 * 1000, 2)

        t = time.perf_counter()
        summary = write_paper_layout(root, Path(tmp) / "paper")
        s = time.perf_counter() - t
        exported = summary["doc_images"] + summary["query_images"]
        out["export_paper_s"] = round(s, 3)
        out["export_paper_images_per_s"] = round(exported / s, 1)  # JPEG -> PNG dominates

        t = time.perf_counter()
        docs, queries, _ = read_paper_layout(Path(tmp) / "paper")
        s = time.perf_counter() - t
        out["import_paper_s"] = round(s, 3)
        out["import_paper_documents_per_s"] = round(len(docs) / s, 1)
    return out
