"""Test-wide isolation: offline Hub/datasets, private Prefect/HF homes, fixture paths."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="wikihow-tiir-tests-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ["HF_HOME"] = str(_TMP / "hf")
os.environ["PREFECT_HOME"] = str(_TMP / "prefect")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SAMPLE_ARCHIVE = REPO / "data" / "sample" / "archive"
# The real wikiHow pages. They are bundled (with attribution) in the sample archive; the
# shared fixture folder is used when present so tests also run against the originals.
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def sample_archive() -> Path:
    return SAMPLE_ARCHIVE


@pytest.fixture(scope="session")
def bundled_build(tmp_path_factory, sample_archive) -> Path:
    """`make build-dataset`'s dataset from the bundled archive, built once per test session (with its
    work/ folder), **without the reference scorer** (its stage trains a model: `bundled_build_scored` has
    it). Read-only by convention: a test that changes it copies it first."""
    from wikihow_tiir.build import run_build
    from wikihow_tiir.config import load_config

    out = tmp_path_factory.mktemp("bundled") / "sample"
    run_build(load_config(overrides=[f'source.archive="{sample_archive}"', "scorer.enabled=false"]), out)
    return out


# the scorer of the shared fixture: `make build-dataset`'s defaults but one epoch (2 steps, not 6) and BM25
# as the only baseline beside it, so the fixture stays within the suite's per-test time limit on a loaded
# 2-core machine (the defaults' figures are `make bench`'s, area mme); a test that re-runs its build passes
# the same settings
SCORED_FIXTURE_SETTINGS = ["scorer.epochs=1", 'scorer.baselines=["bm25"]']


@pytest.fixture(scope="session")
def bundled_build_scored(tmp_path_factory, bundled_build, sample_archive) -> Path:
    """The bundled build with the scorer stage on, as `make build-dataset` leaves it (one training epoch:
    :data:`SCORED_FIXTURE_SETTINGS`): a copy of `bundled_build` built again (its shards resume; the scorer
    is trained once per session). Read-only."""
    import shutil

    from wikihow_tiir.build import run_build
    from wikihow_tiir.config import load_config

    out = Path(shutil.copytree(bundled_build, tmp_path_factory.mktemp("scored") / "sample"))
    logs: list[str] = []
    run_build(load_config(overrides=[f'source.archive="{sample_archive}"', *SCORED_FIXTURE_SETTINGS]), out,
              log=logs.append)
    (out / "work" / "build-log.txt").write_text("\n".join(logs) + "\n", encoding="utf-8")
    return out
