"""MME as ``evaluate --model mme:CHECKPOINT``: registered in ``wikihow_tiir.retrieval.registry``.

This module is all ``evaluate`` reaches of MME, through the registry; it imports nothing heavy (the
model and torch load when a checkpoint is scored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wikihow_tiir.retrieval.registry import ModelFamily, ModelOptions, register


def _checkpoint(checkpoint: str, options: ModelOptions | None) -> str:
    """``mme`` (ARG ""): the reference scorer released with the dataset being scored (``mme.scorer``)."""
    if checkpoint:
        return checkpoint
    if options is None or options.dataset is None:
        raise ValueError("--model mme is the scorer released with the dataset: give --dataset")
    from wikihow_tiir.mme.scorer import resolve_scorer

    return str(resolve_scorer(options.dataset))


def build(checkpoint: str, options: ModelOptions):
    """The scorer of ``mme:CHECKPOINT`` at ``--mme-n`` (see ``load_retrieval_model``); ``mme``: the dataset's."""
    from wikihow_tiir.mme.retrieval import load_retrieval_model

    model = load_retrieval_model(_checkpoint(checkpoint, options), n=options.mme_n)
    if not checkpoint:
        model.name = "mme"
    return model


def sweep(documents, queries, qrels: dict[str, dict[str, int]], checkpoint: str, output_dir: Path,
          options: ModelOptions | None = None) -> dict[str, Any]:
    """Every N of the checkpoint (``evaluate --mme-sweep``; see ``mme.retrieval.sweep``)."""
    from wikihow_tiir.mme.retrieval import sweep as run_sweep

    return run_sweep(documents, queries, qrels, _checkpoint(checkpoint, options), output_dir)


register(ModelFamily(prefix="mme", argument="PATH", build=build, sweep=sweep,
                     bare="the reference scorer released with the dataset (its scorer/)"))
