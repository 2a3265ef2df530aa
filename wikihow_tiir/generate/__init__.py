"""Query generation (paper §1.4): caption -> write -> visualize -> render, per shard of documents.

Public entry points::

    pool = ImagePool.from_documents(all_corpus_documents)
    result = generate_queries(documents, pool, cfg.generate, seed=cfg.seed, work_dir=..., shard_id=...)
    manifest["generate"] = {"prompts": prompt_manifest(), "stats": merge_stats([r.stats, ...])}

Backends per stage (``GenerateConfig.<stage>.kind``): ``offline`` (deterministic, the default)
or ``openai`` (any OpenAI-compatible server, through :mod:`wikihow_tiir.llm`). Where things are:

``pipeline``   one shard: the four stages in order, each stage's records persisted and resumed
``caption`` / ``write`` / ``visualize`` / ``render``   one stage each (a plain function over the shard)
``records``    the typed stage records and their JSON form
``checks``     what every generated query must pass (a new check goes here)
``assemble``   records -> :class:`~wikihow_tiir.model.Query` with provenance
``stats``      per-shard figures and their merge for ``manifest.json``
``offline``    the deterministic backend; ``pool`` the corpus image pool; ``text`` text helpers

The names below are imported on first use, so importing this package (the CLI does) loads no model
client, numpy or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"GenerationResult": "wikihow_tiir.generate.pipeline", "generate_queries": "wikihow_tiir.generate.pipeline",
            "merge_stats": "wikihow_tiir.generate.stats", "ImagePool": "wikihow_tiir.generate.pool",
            "prompt_manifest": "wikihow_tiir.llm.prompts"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
