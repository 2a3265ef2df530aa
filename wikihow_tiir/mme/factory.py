"""MME as ``evaluate --model mme:CHECKPOINT``: registered in ``wikihow_tiir.retrieval.registry``.

This module is all ``evaluate`` reaches of MME, through the registry; it imports nothing heavy (the
model and torch load when a checkpoint is scored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wikihow_tiir.retrieval.registry import ModelFamily, ModelOptions, register


def build(checkpoint: str, options: ModelOptions):
    """The scorer of ``mme:CHECKPOINT`` at ``--mme-n`` (see ``load_retrieval_model``)."""
    from wikihow_tiir.mme.retrieval import load_retrieval_model

    return load_retrieval_model(checkpoint, n=options.mme_n)


def sweep(documents, queries, qrels: dict[str, dict[str, int]], checkpoint: str, output_dir: Path) -> dict[str, Any]:
    """Every N of the checkpoint (``evaluate --mme-sweep``; see ``mme.retrieval.sweep``)."""
    from wikihow_tiir.mme.retrieval import sweep as run_sweep

    return run_sweep(documents, queries, qrels, checkpoint, output_dir)


register(ModelFamily(prefix="mme", argument="PATH", build=build, sweep=sweep))
