"""Fixtures for the publishing tests: tiny built datasets and the Hub-compatible server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> `servers.hub_server`
sys.path.insert(0, str(Path(__file__).resolve().parent))  # -> `publish_helpers`

from publish_helpers import make_dataset  # noqa: E402
from servers.hub_server import HubServer  # noqa: E402


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "build")


@pytest.fixture(scope="module")
def shared_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per module for read-only tests."""
    return make_dataset(tmp_path_factory.mktemp("shared") / "build")


@pytest.fixture
def hub():
    with HubServer(token="hf_goodtoken123456") as server:
        yield server

