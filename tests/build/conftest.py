"""Fixtures of the build tests; helpers live in `build_helpers` (importable from the tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # -> `build_helpers`

from build_helpers import CHOKING, GOLD, TOILET, small_archive  # noqa: E402


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory, sample_archive) -> Path:
    """Three small pages (one of them without a revision id) and their pictures; read-only by
    convention: a test that damages an archive copies this one first (:func:`copy_of`)."""
    return small_archive(sample_archive, tmp_path_factory.mktemp("tiny") / "archive", [TOILET, CHOKING, GOLD])
