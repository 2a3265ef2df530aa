"""MME, the Matryoshka Multimodal Embedder (arXiv 2502.12799 §3): model, pooling, training, scoring.

Public entry points (imported lazily: the CLI imports this package at start-up, torch is heavy):

* ``load_retrieval_model(path, n=None, doc_n=None)`` - a RetrievalModel for ``evaluate``;
* ``sweep(documents, queries, qrels, checkpoint, output_dir)`` - scores at every N, table + plot;
* ``train(dataset_dir, output, epochs=3, strategy="mean", seed=0, max_steps=None, ...)``;
* ``load_scorer(source, n=None)`` - the reference scorer released with a dataset (``ORG/NAME@v1.0.0``, a build
  folder or a scorer folder): a model with ``encode_queries`` / ``encode_documents``;
* ``compare(...)`` / ``ablate(...)`` - Rand / MRL / Mean / DPR in one table; the shuffle analysis (Figure 4).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_retrieval_model": "wikihow_tiir.mme.retrieval",
    "load_scorer": "wikihow_tiir.mme.scorer",
    "compare": "wikihow_tiir.mme.analysis",
    "ablate": "wikihow_tiir.mme.analysis",
    "MMERetrievalModel": "wikihow_tiir.mme.retrieval",
    "sweep": "wikihow_tiir.mme.retrieval",
    "train": "wikihow_tiir.mme.train",
    "MMEEncoder": "wikihow_tiir.mme.model",
    "CheckpointError": "wikihow_tiir.mme.model",
    "load_encoder": "wikihow_tiir.mme.model",
    "new_encoder": "wikihow_tiir.mme.model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'wikihow_tiir.mme' has no attribute {name!r}")
