"""Fixtures for the acquisition tests: a loopback wikiHow mirror and crawl settings pointing at it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # tests/ has no __init__: make tests.servers importable
    sys.path.insert(0, str(REPO))

from tests.servers.wikihow_mirror import WikihowMirror  # noqa: E402
from wikihow_tiir.config import CrawlConfig  # noqa: E402


@pytest.fixture
def mirror():
    with WikihowMirror() as m:
        yield m


@pytest.fixture
def crawl_cfg(mirror):
    """CrawlConfig for the mirror: wikiHow's own URLs routed to 127.0.0.1, fast test settings."""

    def make(**overrides) -> CrawlConfig:
        settings = dict(contact="tests@example.org", origin_map=mirror.origin_map(), allow_private_addresses=True,
                        requests_per_second=20.0, timeout_s=2.0, max_retries=2, backoff_base_s=0.05,
                        max_backoff_s=5.0, pause_on_429_s=1.0, max_articles=None)
        settings.update(overrides)
        return CrawlConfig(**settings)

    return make
