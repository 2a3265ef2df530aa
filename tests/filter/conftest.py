"""Fixtures of the filter tests (the builders live in filter_helpers.py, importable by name)."""

from __future__ import annotations

import pytest
from filter_helpers import make_corpus, make_queries

from wikihow_tiir.model import Document, Query


@pytest.fixture
def corpus() -> list[Document]:
    return make_corpus()


@pytest.fixture
def queries() -> list[Query]:
    return make_queries()
