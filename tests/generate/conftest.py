"""Fixtures of the generation tests: a few small documents in English and Japanese, and their pool."""

from __future__ import annotations

import pytest
from generate_docs import ARTICLES, make_document

from wikihow_tiir.generate import ImagePool
from wikihow_tiir.model import Document


@pytest.fixture(scope="session")
def documents() -> list[Document]:
    return [make_document(*a) for a in ARTICLES]


@pytest.fixture(scope="session")
def pool(documents) -> ImagePool:
    return ImagePool.from_documents(documents)
