"""What every generation stage shares while it runs: settings, seeds, the LLM clients and the cache,
and how one work item's failure becomes a record instead of a crash."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from wikihow_tiir.config import BackendConfig, GenerateConfig
from wikihow_tiir.generate.records import Record, Unit
from wikihow_tiir.io import stable_hash
from wikihow_tiir.llm.cache import RequestCache
from wikihow_tiir.llm.errors import GenerationError, Invalid
from wikihow_tiir.llm.usage import RunCounters, Usage

T = TypeVar("T")
V = TypeVar("V")


class Runtime:
    """One shard's run: ``contexts`` maps a doc id to its writer context (``segment.section_context``)."""

    def __init__(self, cfg: GenerateConfig, seed: int, work_dir: Path,
                 contexts: Mapping[str, dict[str, Any]] | None = None):
        self.cfg = cfg
        self.contexts = dict(contexts or {})
        self.seed = seed
        self.work_dir = work_dir
        self.counters = RunCounters()
        self.cache = RequestCache(work_dir / "cache.sqlite") if cfg.cache else None
        self._clients: dict[str, Any] = {}

    def client(self, stage: str):
        """The :class:`~wikihow_tiir.llm.client.LLMClient` of an ``openai`` stage (made once)."""
        if stage not in self._clients:
            from wikihow_tiir.llm.client import LLMClient

            self._clients[stage] = LLMClient(stage, getattr(self.cfg, stage), self.cache, self.seed, self.counters)
        return self._clients[stage]

    def rng(self, stage: str, item_id: str) -> random.Random:
        return random.Random(stable_hash(self.seed, stage, item_id))

    def call_seed(self, unit: Unit) -> int:
        return self.seed + unit.k  # a different sample for each query of a document, same across runs

    def cache_entries(self) -> int:
        return len(self.cache) if self.cache is not None else 0

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()


def guard(item_id: str, usage: Usage, work: Callable[[], V]) -> Record[V]:
    """Run one item's work; every expected failure becomes a record with a reason, never a crash."""
    try:
        return Record.success(item_id, work(), usage)
    except (GenerationError, Invalid) as exc:
        return Record.failure(item_id, exc.reason, exc.detail, usage, exc.answer)


def map_items(fn: Callable[[T], V], items: Sequence[T], workers: int) -> list[V]:
    """``fn`` over ``items`` in order; bounded threads for remote calls."""
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="generate") as ex:
        return list(ex.map(fn, items))


def workers(bc: BackendConfig) -> int:
    return bc.concurrency if bc.kind == "openai" else 1
