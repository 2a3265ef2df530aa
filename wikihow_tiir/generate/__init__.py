"""Query generation (paper §1.4): caption -> write -> visualize -> render, per shard of documents.

Public entry points::

    pool = ImagePool.from_documents(all_corpus_documents)
    result = generate_queries(documents, pool, cfg.generate, seed=cfg.seed, work_dir=..., shard_id=...)
    manifest["generate"] = {"prompts": prompt_manifest(), "stats": merge_stats([r.stats, ...])}

Backends per stage (``GenerateConfig.<stage>.kind``): ``offline`` (deterministic, the default)
or ``openai`` (any OpenAI-compatible server). See ``pipeline.py`` for the stage contracts.
"""

from __future__ import annotations

import importlib
from typing import Any

# imported on first use: the CLI imports this package at every start, and the pipeline loads openai
_EXPORTS = {
    "GenerationResult": "wikihow_tiir.generate.pipeline",
    "generate_queries": "wikihow_tiir.generate.pipeline",
    "merge_stats": "wikihow_tiir.generate.pipeline",
    "ImagePool": "wikihow_tiir.generate.pool",
    "prompt_manifest": "wikihow_tiir.generate.prompts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'wikihow_tiir.generate' has no attribute {name!r}")
