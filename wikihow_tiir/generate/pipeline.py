"""One shard of query generation: ``caption -> write -> visualize -> render``, then assembly into Queries.

Each stage is a plain function over the shard (``caption.py`` ... ``render.py``) returning one typed
:class:`~wikihow_tiir.generate.records.Record` per work item. ``generate_queries`` persists each
stage's records per shard (``<work_dir>/<stage>/<shard>.jsonl``) with the project's one resume
marker (:mod:`wikihow_tiir.resume`: fingerprint, record count, size and sha256 of the record file and
of the pictures it names), so a re-run resumes after the last finished stage, a changed setting or
prompt re-runs that stage and the ones after it, and a damaged record file or picture is recomputed
rather than trusted. A failed record keeps the model's refused answer (``answer``, redacted and
capped) beside its reason. Model calls go through the SQLite request cache at
``<work_dir>/cache.sqlite``, so even a re-run stage pays nothing twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from wikihow_tiir import resume
from wikihow_tiir.config import BackendConfig, GenerateConfig
from wikihow_tiir.generate.assemble import STAGES, assemble
from wikihow_tiir.generate.caption import caption_stage
from wikihow_tiir.generate.pool import ImagePool
from wikihow_tiir.generate.records import (
    CAPTIONS,
    RENDERED,
    VISUAL,
    WRITTEN,
    Codec,
    DrawnImage,
    PooledImage,
    Record,
    RenderedImage,
    Unit,
    values,
)
from wikihow_tiir.generate.render import render_stage
from wikihow_tiir.generate.runtime import Runtime
from wikihow_tiir.generate.stats import shard_stats
from wikihow_tiir.generate.visualize import visualize_stage
from wikihow_tiir.generate.write import write_stage
from wikihow_tiir.io import dumps, stable_hash
from wikihow_tiir.llm.errors import GenerationError
from wikihow_tiir.llm.prompts import load_prompt
from wikihow_tiir.model import Document, Query, Reject
from wikihow_tiir.redact import redact

log = logging.getLogger(__name__)
V = TypeVar("V")

# settings that change how a call is made but not what it answers (left out of fingerprints)
_RUNTIME_KEYS = {"concurrency", "timeout_s", "retries", "backoff_s", "api_key_env", "max_response_mb",
                 "rate_limit_max_wait_s"}


@dataclass
class GenerationResult:
    queries: list[Query] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- fingerprints


def _semantic(bc: BackendConfig) -> dict[str, Any]:
    return {k: v for k, v in bc.model_dump(mode="json").items() if k not in _RUNTIME_KEYS}


def _docs_fingerprint(docs: Sequence[Document], contexts: Mapping[str, dict[str, Any]]) -> str:
    return stable_hash([(d.id, d.lang, d.goal, d.section_title, list(d.content.texts),
                         [m.sha256 if m else None for m in d.content.image_meta], contexts.get(d.id))
                        for d in docs])


def _prompts_of(cfg: GenerateConfig, stage: str) -> list[str]:
    bc: BackendConfig = getattr(cfg, stage)
    if bc.kind == "openai":
        return [stage, "repair"] if stage in ("write", "visualize") else [stage]
    return ["offline_extractive"] if stage in ("write", "visualize") else []


def stage_fingerprints(docs: Sequence[Document], pool: ImagePool, cfg: GenerateConfig, seed: int,
                       contexts: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """Each stage's fingerprint: the shard's documents, the shared settings, and this stage's and every
    earlier stage's backend settings and prompts (render: also the image pool)."""
    shared = cfg.model_dump(mode="json", exclude={"caption", "write", "visualize", "render",
                                                  "documents_per_shard", "enabled", "cache"})
    fp = stable_hash("generate", seed, shared, _docs_fingerprint(docs, contexts))
    fps: dict[str, str] = {}
    for stage in STAGES:
        prompt_shas = [load_prompt(n).sha256 for n in _prompts_of(cfg, stage)]
        fp = stable_hash(fp, stage, _semantic(getattr(cfg, stage)), prompt_shas,
                         pool.fingerprint if stage == "render" else "")
        fps[stage] = fp
    return fps


# --------------------------------------------------------------------------- persisted stages


def _drawn_files(records: list[Record[tuple[RenderedImage, ...]]]) -> list[str]:
    """The drawn pictures render records name (paths relative to the stage folder, where the marker
    is), so the marker vouches for them too."""
    return sorted({f"blobs/{im.blob}.jpg" for r in records if r.ok for im in r.value if isinstance(im, DrawnImage)})


def persisted(folder: Path, shard_id: str, fingerprint: str, codec: Codec[V],
              compute: Callable[[], list[Record[V]]],
              files_of: Callable[[list[Record[V]]], list[str]] | None = None) -> list[Record[V]]:
    """The records of a finished stage shard, or compute + write them (atomically, marker last).

    The marker vouches for the record file and for the other files the records name (``files_of``:
    paths relative to ``folder``), so a truncated or garbled record file or a lost picture is
    recomputed (from the request cache: free) instead of crashing the resume or being trusted."""
    path = folder / f"{shard_id}.jsonl"
    stats = resume.done(folder, shard_id, fingerprint)
    if stats is not None:
        try:
            records = [codec.load(r) for r in _json_lines(path)]
            if len(records) == stats.get("records"):
                return records
            problem = "it does not hold the records its .done marker counted"
        except ValueError as exc:
            problem = f"it does not hold stage records ({exc})"
        log.warning("%s/%s: %s; rebuilding the shard", folder.name, path.name, problem)
    records = compute()
    data = "".join(dumps(codec.dump(r)) + "\n" for r in records).encode("utf-8")
    files = {path.name: resume.write_file(path, data)}
    files.update({rel: resume.file_entry(folder / rel) for rel in (files_of(records) if files_of else [])})
    resume.finish(folder, shard_id, fingerprint, {"records": len(records)}, files)
    return records


def _json_lines(path: Path) -> list[Any]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(type(exc).__name__) from None


# --------------------------------------------------------------------------- the shard


def generate_queries(documents: Sequence[Document], pool: ImagePool, cfg: GenerateConfig, *, seed: int,
                     work_dir: Path, shard_id: str,
                     contexts: Mapping[str, dict[str, Any]] | None = None) -> GenerationResult:
    """Queries for one shard of documents (see the module doc); rejects carry their stage and reason.

    ``contexts``: doc id -> what the writer may know beyond the document (``segment.section_context``:
    step details, tips, categories); the offline writer builds its text from it."""
    docs = list(documents)
    work_dir = Path(work_dir)
    rt = Runtime(cfg, seed, work_dir, contexts)
    try:
        fps = stage_fingerprints(docs, pool, cfg, seed, rt.contexts)

        def run(stage: str, codec: Codec[V], compute: Callable[[], list[Record[V]]],
                files_of: Callable[[list[Record[V]]], list[str]] | None = None) -> list[Record[V]]:
            return persisted(work_dir / stage, shard_id, fps[stage], codec, compute, files_of)

        cap_records = run("caption", CAPTIONS, lambda: caption_stage(docs, rt))
        captions = values(cap_records)
        units = [Unit(f"q-{d.id}-{k}", d, k) for d in docs if d.id in captions
                 for k in range(cfg.queries_per_document)]

        write_records = run("write", WRITTEN, lambda: write_stage(units, captions, rt))
        written = values(write_records)
        units_w = [u for u in units if u.id in written]

        vis_records = run("visualize", VISUAL, lambda: visualize_stage(units_w, captions, written, rt))
        visual = values(vis_records)
        units_v = [u for u in units_w if u.id in visual]

        render_records = run("render", RENDERED, lambda: render_stage(units_v, visual, pool, rt), _drawn_files)
        rendered = values(render_records)
        records: dict[str, list[Record[Any]]] = dict(zip(
            STAGES, (cap_records, write_records, vis_records, render_records), strict=True))

        result = GenerationResult()
        failed: dict[str, Reject] = {}
        for stage, stage_records in records.items():
            for r in stage_records:
                if not r.ok:
                    failed[r.id] = Reject(stage=f"generate.{stage}", item_id=r.id, reason=r.reason or "",
                                          detail=r.detail, extra={"answer": r.answer} if r.answer is not None else {})
        for d in docs:
            if d.id in failed:
                result.rejects.append(failed[d.id])
        # the pooled pictures of the whole shard in one read (a lazy pool reads them from the corpus files)
        pool_bytes = pool.image_bytes(sorted({im.key for u in units if u.id in rendered and u.id not in failed
                                              for im in rendered[u.id] if isinstance(im, PooledImage)}))
        for u in units:
            if u.id in failed:
                result.rejects.append(failed[u.id])
            elif u.id in rendered:
                try:
                    result.queries.append(assemble(u, visual[u.id], rendered[u.id], pool, cfg, seed, work_dir,
                                                   pool_bytes))
                except (GenerationError, OSError, ValueError) as exc:
                    reason = exc.reason if isinstance(exc, GenerationError) else "assembly-failed"
                    detail = exc.detail if isinstance(exc, GenerationError) else str(exc)
                    result.rejects.append(Reject(stage="generate.assemble", item_id=u.id, reason=reason,
                                                 detail=redact(detail)[:500]))
        run_counts = {**rt.counters.to_dict(), "cache_entries": rt.cache_entries()}
        result.stats = shard_stats(len(docs), cfg, result.queries, result.rejects, records, run_counts)
        return result
    finally:
        rt.close()
