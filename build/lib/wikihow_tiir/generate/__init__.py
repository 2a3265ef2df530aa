"""Query generation (paper §1.4): caption -> write -> visualize -> render, per shard of documents.

Public entry points::

    pool = ImagePool.from_documents(all_corpus_documents)
    result = generate_queries(documents, pool, cfg.generate, seed=cfg.seed, work_dir=..., shard_id=...)
    manifest["generate"] = {"prompts": prompt_manifest(), "stats": merge_stats([r.stats, ...])}

Backends per stage (``GenerateConfig.<stage>.kind``): ``offline`` (deterministic, the default)
or ``openai`` (any OpenAI-compatible server). See ``pipeline.py`` for the stage contracts.
"""

from wikihow_tiir.generate.pipeline import GenerationResult, generate_queries, merge_stats
from wikihow_tiir.generate.pool import ImagePool
from wikihow_tiir.generate.prompts import prompt_manifest

__all__ = ["GenerationResult", "ImagePool", "generate_queries", "merge_stats", "prompt_manifest"]
