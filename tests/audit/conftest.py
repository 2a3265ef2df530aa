"""Fixtures for the audit tests: the bundled build (built once per session) and copies of it to change."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # -> `audit_helpers`


@pytest.fixture(scope="session")
def sample_build(bundled_build) -> Path:
    """`make build-dataset`'s dataset (corpus, queries, a 6-pair test split), built once; never changed."""
    return bundled_build


@pytest.fixture
def dataset(sample_build, tmp_path) -> Path:
    """A private copy of the build (with its work/ folder, so a re-run of the build resumes)."""
    return Path(shutil.copytree(sample_build, tmp_path / "ds"))
