"""Helpers for the publishing tests: a tiny built dataset like the build flow writes."""

from __future__ import annotations

import io
import json
from pathlib import Path


def png(seed: int, size: int = 24) -> bytes:
    from PIL import Image

    im = Image.new("RGB", (size, size), ((seed * 53) % 256, (seed * 101) % 256, (seed * 17) % 256))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def make_dataset(root: Path, n_docs: int = 4, variant: str = "a", stand_ins: bool = True) -> Path:
    """Write a small valid dataset folder like the build flow does (shards, manifest, card)."""
    from wikihow_tiir.io import atomic_write_json, atomic_write_text
    from wikihow_tiir.model import (
        SCHEMA_VERSION,
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

    docs, queries = [], []
    for i in range(n_docs):
        c = Interleaved()
        c.add_text(f"How to Do Thing {i} ({variant})")
        c.add_text(f"Method {i}")
        for k in range(2):
            c.add_text(f"Step {k + 1}: do part {k} of thing {i}.")
            c.add_image(ImageMeta(source_url=f"https://example.org/{i}-{k}.jpg",
                                  license="CC BY-NC-SA 3.0" if k == 0 else "Public Domain",
                                  sha256=f"{i}{k}", width=24, height=24, stand_in=stand_ins), png(i * 10 + k))
        docs.append(Document(id=f"wh-{i}-s1", article_id=str(i), url=f"https://example.org/{i}", lang="en",
                             goal=f"How to Do Thing {i}", section_title=f"Method {i}", section_kind="method",
                             section_index=1, content=c, categories=["Test"]))
    for i, split in ((0, "train"), (1, "test"), (2, "test")):
        c = Interleaved()
        c.add_text(f"I need help with thing {i} ({variant}).")
        c.add_image(ImageMeta(source_url="generated", license="generated", width=24, height=24), png(100 + i))
        c.add_text("It does not work.")
        c.add_image(ImageMeta(source_url="generated", license="generated", width=24, height=24), png(200 + i))
        queries.append(Query(id=f"q-{i}", positive_id=f"wh-{i}-s1", article_id=str(i), lang="en", content=c,
                             provenance={"backend": "offline"}, scores={"relevance": 0.5}, split=split))
    write_sharded(root / "corpus", [document_to_row(d) for d in docs], "corpus", "corpus", rows_per_shard=3)
    for split in ("train", "test"):
        qs = [q for q in queries if q.split == split]
        write_sharded(root / "queries", [query_to_row(q) for q in qs], "queries", split)
        write_sharded(root / "qrels", [qrel_to_row(Qrel(q.id, q.positive_id)) for q in qs], "qrels", split)
    for extra in ("rejects", "report", "work", "eval"):
        (root / extra).mkdir(parents=True, exist_ok=True)
        (root / extra / "notes.txt").write_text("not part of the dataset\n")
    manifest = {
        "schema_version": SCHEMA_VERSION, "name": "wikiHow-TIIR",
        "created_by": {"package": "wikihow-tiir", "version": "0.1.0", "git_commit": "abc1234"},
        "config": {"profile": "sample", "seed": 13},
        "sources": {"kind": "archive", "archive": "data/sample/archive", "snapshot_dates": ["2024-05-01"],
                    "pages": n_docs},
        "stand_in_images": {"count": 2 * n_docs if stand_ins else 0, "total": 2 * n_docs},
        "statistics": {"corpus": {"examples": n_docs, "avg_images": 2.0, "min_images": 2, "max_images": 2,
                                  "avg_text_tokens": 20.5},
                       "queries": {"train": {"examples": 1, "avg_images": 2.0, "min_images": 2, "max_images": 2,
                                             "avg_text_tokens": 10.0, "positives": 1},
                                   "test": {"examples": 2, "avg_images": 2.0, "min_images": 2, "max_images": 2,
                                            "avg_text_tokens": 10.0, "positives": 1}}},
        "generation": {"caption": {"backend": "offline", "model": None}, "prompt_sha256": {"write": "ab" * 32}},
        "filter": {"thresholds": {"relevance_min": 0.25}, "rejections": {"too-easy": 1}},
        "licenses": {"text": "CC BY-NC-SA 3.0", "images": {"CC BY-NC-SA 3.0": n_docs, "Public Domain": n_docs}},
        "rejects": {"segment": {"too-few-images": 2}},
        "files": file_entries(root),
        "changelog": [{"version": "1.0.0", "changes": [f"variant {variant}"]}],
    }
    atomic_write_json(root / "manifest.json", manifest)
    atomic_write_text(root / "README.md", render_card(manifest))
    return root


def manifest_of(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def rewrite(root: Path, rel: str, config: str, edit) -> None:
    """Change the rows of one shard in place, then refresh manifest + card so that only the intended
    change remains (hashes, sizes and row counts agree again)."""
    from wikihow_tiir.io import atomic_write_json, atomic_write_text
    from wikihow_tiir.publish.card import render_card
    from wikihow_tiir.storage import file_entries, read_rows, write_parquet

    rows = list(read_rows([root / rel]))
    edit(rows)
    write_parquet(root / rel, rows, config)
    manifest = manifest_of(root)
    manifest["files"] = file_entries(root)
    atomic_write_json(root / "manifest.json", manifest)
    atomic_write_text(root / "README.md", render_card(manifest))
