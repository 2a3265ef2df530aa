"""Shared, session-scoped fixtures of the MME tests (models load once; synthetic data is tiny)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mme_dataset(tmp_path_factory) -> Path:
    """12 documents (2 images each, 96 px) and 12 training queries, in the dataset layout."""
    from wikihow_tiir.mme.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("mme-data"), n_docs=12, images_per_doc=2, image_size=96,
                         permute=False)


@pytest.fixture(scope="session")
def mme_items():
    from wikihow_tiir.mme.synthetic import make_items

    return make_items(6, images_per_doc=3, image_size=64)


@pytest.fixture(scope="session")
def mini384():
    """mme-mini at its real input size: 384 px -> EfficientNet-Lite0's 12 x 12 grid."""
    from wikihow_tiir.mme.model import new_encoder

    return new_encoder("mme-mini").eval()


def write_split_dataset(out: Path, n_docs: int = 10, n_test: int = 3, image_size: int = 64) -> Path:
    """The synthetic set with a train and a test split (the last ``n_test`` queries), manifest and card."""
    from wikihow_tiir.io import atomic_write_json, atomic_write_text
    from wikihow_tiir.mme.synthetic import make_items
    from wikihow_tiir.model import document_to_row, qrel_to_row, query_to_row
    from wikihow_tiir.publish.card import render_card
    from wikihow_tiir.storage import file_entries, write_sharded

    docs, queries, qrels = make_items(n_docs, images_per_doc=2, image_size=image_size, permute=False)
    write_sharded(out / "corpus", [document_to_row(d) for d in docs], "corpus", "corpus")
    for split, part in (("train", slice(0, n_docs - n_test)), ("test", slice(n_docs - n_test, n_docs))):
        write_sharded(out / "queries", [query_to_row(q) for q in queries[part]], "queries", split)
        write_sharded(out / "qrels", [qrel_to_row(r) for r in qrels[part]], "qrels", split)
    manifest = {"schema_version": "1.0", "name": "wikiHow-TIIR", "files": file_entries(out),
                "licenses": {"text": "CC BY-NC-SA 3.0", "images": {}}}
    atomic_write_json(out / "manifest.json", manifest)
    atomic_write_text(out / "README.md", render_card(manifest))
    return out


@pytest.fixture(scope="session")
def mme_split_dataset(tmp_path_factory) -> Path:
    """10 documents, 7 train and 3 test queries (synthetic, 64 px), in the dataset layout."""
    return write_split_dataset(tmp_path_factory.mktemp("mme-split") / "ds")
