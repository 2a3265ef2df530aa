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
