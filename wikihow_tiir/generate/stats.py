"""Generation figures: per shard (deterministic, plus this process's network counters) and merged
over the shards for ``manifest.json``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from wikihow_tiir.config import BackendConfig, GenerateConfig
from wikihow_tiir.generate.assemble import STAGES, stage_info
from wikihow_tiir.generate.records import Record
from wikihow_tiir.generate.text import TOKENIZER_NAME
from wikihow_tiir.llm.usage import total_usage
from wikihow_tiir.model import Query, Reject

_TEXT_BINS = (0, 20, 40, 60, 80, 100, 120, 140, 160, 200, 300)


def _bin(n: int) -> str:
    lo = max(b for b in _TEXT_BINS if b <= n)
    hi = next((b for b in _TEXT_BINS if b > n), None)
    return f"{lo}-{hi - 1}" if hi is not None else f"{lo}+"


def shard_stats(n_docs: int, cfg: GenerateConfig, queries: Sequence[Query], rejects: Sequence[Reject],
                records: dict[str, Sequence[Record[Any]]], run: dict[str, int]) -> dict[str, Any]:
    """Deterministic figures (same for a fresh and a resumed run) plus ``run`` (this process only)."""
    stages = {}
    for stage in STAGES:
        usage = total_usage(r.usage for r in records[stage])
        bc: BackendConfig = getattr(cfg, stage)
        stages[stage] = {"backend": bc.kind, "model": stage_info(cfg, stage)["model"],
                         "items": len(records[stage]), "failed": sum(not r.ok for r in records[stage]),
                         **usage.to_dict()}
    lengths = [q.provenance["text_tokens"] for q in queries]
    reasons = Counter(f"{r.stage.removeprefix('generate.')}/{r.reason}" for r in rejects)
    return {
        "documents": n_docs,
        "attempted": n_docs * cfg.queries_per_document,
        "queries": len(queries),
        "rejected": len(rejects),
        "rejects_by_reason": dict(sorted(reasons.items())),
        "stages": stages,
        "images_per_query": {str(k): v for k, v in sorted(Counter(q.content.n_images for q in queries).items())},
        "text_tokens": {"tokenizer": TOKENIZER_NAME, "count": len(lengths), "sum": sum(lengths),
                        "min": min(lengths, default=0), "max": max(lengths, default=0),
                        "histogram": dict(Counter(_bin(n) for n in lengths))},
        "run": run,
    }


def merge_stats(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Add up the stats of several shards, and derive means and shares (for ``manifest.json``)."""
    out: dict[str, Any] = {"documents": 0, "attempted": 0, "queries": 0, "rejected": 0}
    reasons: Counter[str] = Counter()
    images: Counter[str] = Counter()
    hist: Counter[str] = Counter()
    stages: dict[str, Counter[str]] = {}
    stage_meta: dict[str, dict[str, Any]] = {}
    run: Counter[str] = Counter()
    lo, hi, total, count = None, 0, 0, 0
    for p in parts:
        for k in ("documents", "attempted", "queries", "rejected"):
            out[k] += p.get(k, 0)
        reasons.update(p.get("rejects_by_reason", {}))
        images.update(p.get("images_per_query", {}))
        t = p.get("text_tokens", {})
        hist.update(t.get("histogram", {}))
        if t.get("count"):
            lo = t["min"] if lo is None else min(lo, t["min"])
            hi, total, count = max(hi, t["max"]), total + t["sum"], count + t["count"]
        for stage, s in p.get("stages", {}).items():
            stages.setdefault(stage, Counter()).update({k: v for k, v in s.items() if isinstance(v, int)})
            stage_meta[stage] = {"backend": s.get("backend"), "model": s.get("model")}
        run.update({k: v for k, v in p.get("run", {}).items() if k != "cache_entries"})
    attempted = out["attempted"] or 1
    n_images = sum(int(k) * v for k, v in images.items())
    out.update({
        "rejects_by_reason": dict(sorted(reasons.items())),
        "reject_share_by_reason": {k: round(v / attempted, 4) for k, v in sorted(reasons.items())},
        "stages": {s: {**stage_meta[s], **dict(c)} for s, c in stages.items()},
        "images_per_query": dict(sorted(images.items())),
        "mean_images_per_query": round(n_images / out["queries"], 3) if out["queries"] else 0.0,
        "text_tokens": {"tokenizer": TOKENIZER_NAME, "count": count, "min": lo or 0, "max": hi,
                        "mean": round(total / count, 2) if count else 0.0,
                        "histogram": {b: hist[b] for b in sorted(hist, key=lambda b: int(b.split("-")[0].rstrip("+")))}},
        "run": dict(run),
    })
    return out
