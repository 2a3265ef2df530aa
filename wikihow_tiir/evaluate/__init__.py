"""Scoring retrieval models on wikiHow-TIIR: search, adapters, baselines, outputs.

The split reader, the metrics and the registry of model families live in ``wikihow_tiir.retrieval``
(shared with ``mme``, which this package never imports). Entry points (imported lazily so that
``import wikihow_tiir.evaluate`` stays cheap):

* ``evaluate_models(dataset, models, split="test", output=..., layout="ours", ...) -> dict``
  (``runner.py``): score ``--model`` specs and write runs, MTEB-shaped metrics, per-query metrics
  and ``comparison.md``;
* ``compute_metrics(qrels, run, recall_at, mrr_at, ndcg_at) -> dict`` (``retrieval/metrics.py``);
* ``load_split(dataset, split, layout)`` (``retrieval/dataset.py``); ``build_model(spec)`` (``baselines.py``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "evaluate_models": "wikihow_tiir.evaluate.runner",
    "score_model": "wikihow_tiir.evaluate.runner",
    "compute_metrics": "wikihow_tiir.retrieval.metrics",
    "evaluate_run": "wikihow_tiir.retrieval.metrics",
    "load_split": "wikihow_tiir.retrieval.dataset",
    "build_model": "wikihow_tiir.evaluate.baselines",
    "exact_search": "wikihow_tiir.evaluate.search",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'wikihow_tiir.evaluate' has no attribute {name!r}")
