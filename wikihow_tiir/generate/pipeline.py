"""The four query-generation stages over one shard of documents, and their assembly into Queries.

``caption -> write -> visualize -> render``, each a plain function over the shard returning one
record per work item (``{"id", "ok", "value" | "reason"/"detail", "usage"}``). ``generate_queries``
persists each stage's records per shard (``<work_dir>/<stage>/<shard>.jsonl`` + a ``.done`` marker
holding the stage's fingerprint, the record count and the file's sha256), so a re-run resumes after
the last finished stage, a changed setting or prompt re-runs that stage and the ones after it, and
a damaged record file is recomputed rather than trusted. A failed record keeps the model's refused
answer (``answer``, redacted and capped) beside its reason. Model calls go through the SQLite
request cache at ``<work_dir>/cache.sqlite``, so even a re-run stage pays nothing twice.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
from pydantic import BaseModel, Field

from wikihow_tiir.config import BackendConfig, GenerateConfig, ImageConfig
from wikihow_tiir.generate import offline
from wikihow_tiir.generate.cache import RequestCache
from wikihow_tiir.generate.pool import ImagePool, step_texts
from wikihow_tiir.generate.prompts import as_data, load_prompt
from wikihow_tiir.generate.remote import (
    GenerationError,
    Invalid,
    RemoteBackend,
    RunCounters,
    Usage,
    image_data_url,
)
from wikihow_tiir.generate.text import (
    TOKENIZER_NAME,
    bm25_salience,
    copied_share,
    count_tokens,
    split_sentences,
)
from wikihow_tiir.images import ImageError, normalize_image, phash_distance
from wikihow_tiir.io import atomic_write_bytes, atomic_write_text, dumps, sha256_bytes, stable_hash
from wikihow_tiir.model import Document, ImageMeta, Interleaved, Query, Reject
from wikihow_tiir.redact import redact

log = logging.getLogger(__name__)

STAGES = ("caption", "write", "visualize", "render")
LLM_GENERATOR = "llm-narrative-v1"
# a placeholder of our templates echoed back ("<text before picture 1>"), as small models do
_ECHO = re.compile(r"^\s*<[^<>]*>?\s*$")
# settings that change how a call is made but not what it answers (left out of fingerprints)
_RUNTIME_KEYS = {"concurrency", "timeout_s", "retries", "backoff_s", "api_key_env", "max_response_mb",
                 "rate_limit_max_wait_s"}
# how much of a refused answer a reject keeps (enough to read what went wrong with a prompt)
REJECT_ANSWER_CHARS = 2000


# --------------------------------------------------------------------------- answer schemas


class WriteAnswer(BaseModel):
    query: str = Field(min_length=1)


class Segment(BaseModel):
    text: str
    image_prompt: str = Field(min_length=1, max_length=1000)


class VisualizeAnswer(BaseModel):
    segments: list[Segment]
    closing: str = ""


# --------------------------------------------------------------------------- the result


@dataclass
class GenerationResult:
    queries: list[Query] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Unit:
    """One query to make: document ``doc`` and its ``k``-th query."""

    id: str
    doc: Document
    k: int


class _Runtime:
    def __init__(self, cfg: GenerateConfig, seed: int, work_dir: Path,
                 contexts: Mapping[str, dict[str, Any]] | None = None):
        self.cfg = cfg
        self.contexts = dict(contexts or {})  # doc id -> writer context (segment.section_context)
        self.seed = seed
        self.work_dir = work_dir
        self.counters = RunCounters()
        self.cache = RequestCache(work_dir / "cache.sqlite") if cfg.cache else None
        self._backends: dict[str, RemoteBackend] = {}

    def backend(self, stage: str) -> RemoteBackend:
        if stage not in self._backends:
            self._backends[stage] = RemoteBackend(stage, getattr(self.cfg, stage), self.cache, self.seed,
                                                  self.counters)
        return self._backends[stage]

    def rng(self, stage: str, item_id: str) -> random.Random:
        return random.Random(stable_hash(self.seed, stage, item_id))

    def call_seed(self, unit: _Unit) -> int:
        return self.seed + unit.k  # a different sample for each query of a document, same across runs

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()


def _ok(item_id: str, value: Any, usage: Usage | None = None) -> dict[str, Any]:
    return {"id": item_id, "ok": True, "value": value, "usage": (usage or Usage()).to_dict()}


def _fail(item_id: str, reason: str, detail: str, usage: Usage | None = None,
          answer: str | None = None) -> dict[str, Any]:
    """A failed item's record; ``answer`` is the model's refused answer (redacted, then capped)."""
    record = {"id": item_id, "ok": False, "reason": reason, "detail": redact(detail)[:500],
              "usage": (usage or Usage()).to_dict()}
    if answer is not None:
        record["answer"] = redact(answer)[:REJECT_ANSWER_CHARS]
    return record


def _guard(item_id: str, usage: Usage, work: Callable[[], Any]) -> dict[str, Any]:
    """Run one item's work; every expected failure becomes a record with a reason, never a crash."""
    try:
        return _ok(item_id, work(), usage)
    except (GenerationError, Invalid) as exc:
        return _fail(item_id, exc.reason, getattr(exc, "detail", None) or getattr(exc, "problem", ""), usage,
                     exc.answer)
    except openai.OpenAIError as exc:  # anything else the client raises
        return _fail(item_id, "bad-response", f"{type(exc).__name__}: {exc}", usage)


def _map(fn: Callable[[Any], dict[str, Any]], items: Sequence[Any], workers: int) -> list[dict[str, Any]]:
    """``fn`` over ``items`` in order; bounded threads for remote calls."""
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="generate") as ex:
        return list(ex.map(fn, items))


def _workers(bc: BackendConfig) -> int:
    return bc.concurrency if bc.kind == "openai" else 1


# --------------------------------------------------------------------------- stage 1: caption


def caption_stage(docs: Sequence[Document], rt: _Runtime) -> dict[str, dict[str, Any]]:
    """Doc id -> captions, one per document image, in order."""
    cfg = rt.cfg
    out: dict[str, dict[str, Any]] = {}
    todo = []
    for doc in docs:
        n = doc.content.n_images
        if n < cfg.min_query_images:
            out[doc.id] = _fail(doc.id, "too-few-images", f"the document has {n} images, a query needs "
                                f"{cfg.min_query_images}")
        elif cfg.caption.kind == "offline":
            out[doc.id] = _ok(doc.id, offline.caption(doc), Usage(images=n))
        else:
            todo.append(doc)
    if todo:
        prompt = load_prompt("caption")
        backend = rt.backend("caption")
        tasks = [(doc, pos, text) for doc in todo for pos, text in step_texts(doc)]

        def one(task: tuple[Document, int, str]) -> dict[str, Any]:
            doc, pos, text = task
            usage = Usage()
            data = doc.content.images[pos]

            def work() -> str:
                if not data:
                    raise GenerationError("missing-image-bytes", f"position {pos} has no image bytes")
                messages = [{"role": "system", "content": prompt.render("system")},
                            {"role": "user", "content": [
                                {"type": "text", "text": prompt.render("user", step=as_data(text))},
                                {"type": "image_url", "image_url": {"url": image_data_url(data)}}]}]
                caption = backend.chat_text(messages, prompt, usage, seed=rt.seed)
                usage.images += 1
                return " ".join(caption.split())[:400]

            return _guard(f"{doc.id}#{pos}", usage, work)

        results = _map(one, tasks, _workers(cfg.caption))
        by_doc: dict[str, list[dict[str, Any]]] = {}
        for (doc, _, _), rec in zip(tasks, results, strict=True):
            by_doc.setdefault(doc.id, []).append(rec)
        for doc in todo:
            recs = by_doc.get(doc.id, [])
            usage = _sum_usage(r["usage"] for r in recs)
            bad = next((r for r in recs if not r["ok"]), None)
            out[doc.id] = (_fail(doc.id, bad["reason"], f"{bad['id']}: {bad['detail']}", usage, bad.get("answer"))
                           if bad else _ok(doc.id, [r["value"] for r in recs], usage))
    return {doc.id: out[doc.id] for doc in docs}


def _sum_usage(usages) -> Usage:
    total = Usage()
    for u in usages:
        total.prompt_tokens += u["prompt_tokens"]
        total.completion_tokens += u["completion_tokens"]
        total.calls += u["calls"]
        total.images += u["images"]
    return total


# --------------------------------------------------------------------------- stage 2: write


def _steps_block(doc: Document, captions: Sequence[str]) -> str:
    lines = []
    for n, ((_, text), cap) in enumerate(zip(step_texts(doc), captions, strict=True), 1):
        line = f"{n}. {text.strip()}"
        if cap.strip() and cap.strip() != text.strip():
            line += f" [picture: {cap.strip()}]"
        lines.append(line)
    return as_data("\n".join(lines))


def document_text(doc: Document) -> str:
    """The document's step text (what a query must not restate)."""
    return "\n".join(t for _, t in step_texts(doc))


def write_stage(units: Sequence[_Unit], captions: dict[str, list[str]], rt: _Runtime) -> list[dict[str, Any]]:
    """Unit id -> the narrative query text (before visualization)."""
    cfg = rt.cfg
    if cfg.write.kind == "offline":
        return [_ok(u.id, offline.write(u.doc, rt.contexts.get(u.doc.id), rt.rng("write", u.id), cfg))
                for u in units]
    prompt, repair = load_prompt("write"), load_prompt("repair")
    backend = rt.backend("write")

    def one(u: _Unit) -> dict[str, Any]:
        usage = Usage()
        source = document_text(u.doc)

        def check(answer: WriteAnswer) -> None:
            if _ECHO.match(answer.query):
                raise Invalid("template-echo", "the answer repeats the template's placeholder; write the query")
            n = count_tokens(answer.query)
            if n < cfg.min_text_tokens:
                raise Invalid("text-too-short", f"the query has {n} words; write at least {cfg.min_text_tokens}")
            share = copied_share(source, answer.query)
            if share > cfg.max_copied_share:
                raise Invalid("copies-document", f"{share:.0%} of the document's text is copied verbatim; "
                              "describe the situation in your own words instead")

        def work() -> str:
            messages = [{"role": "system", "content": prompt.render("system")},
                        {"role": "user", "content": prompt.render(
                            "user", goal=as_data(u.doc.goal), section=as_data(u.doc.section_title),
                            steps=_steps_block(u.doc, captions[u.doc.id]))}]
            answer = backend.chat_json(messages, WriteAnswer, prompt, repair, usage, check=check,
                                       seed=rt.call_seed(u))
            return " ".join(answer.query.split())

        return _guard(u.id, usage, work)

    return _map(one, units, _workers(cfg.write))


# --------------------------------------------------------------------------- stage 3: visualize


def check_visual(doc: Document, value: dict[str, Any], cfg: GenerateConfig) -> None:
    """The checks every final query passes, whichever backend wrote it (raises :class:`Invalid`)."""
    segments = value["segments"]
    if not cfg.min_query_images <= len(segments) <= cfg.max_query_images:
        raise Invalid("wrong-image-count", f"{len(segments)} segments; give between {cfg.min_query_images} "
                      f"and {cfg.max_query_images}")
    if not segments[0]["text"].strip():
        raise Invalid("schema-mismatch", "the first segment's text is empty; the query must start with text")
    if any(not s["image_prompt"].strip() for s in segments):
        raise Invalid("schema-mismatch", "an image_prompt is empty")
    if any(_ECHO.match(s["text"]) or _ECHO.match(s["image_prompt"]) for s in segments if s["text"]):
        raise Invalid("template-echo", "a segment repeats the template's placeholder instead of real text")
    if len({" ".join(s["image_prompt"].lower().split()) for s in segments}) < len(segments):
        raise Invalid("duplicate-image-prompts", "two segments have the same image_prompt; show different things")
    text = query_text(value)
    n = count_tokens(text)
    if n < cfg.min_text_tokens:
        raise Invalid("text-too-short", f"the text has {n} words; keep at least {cfg.min_text_tokens}")
    if n > cfg.max_text_tokens:
        raise Invalid("text-too-long", f"the text has {n} words; keep at most {cfg.max_text_tokens}")
    share = copied_share(document_text(doc), text)
    if share > cfg.max_copied_share:
        raise Invalid("copies-document", f"{share:.0%} of the document's text is copied verbatim")


def query_text(value: dict[str, Any]) -> str:
    return "\n".join(t for t in [*(s["text"] for s in value["segments"]), value.get("closing", "")] if t.strip())


def _visualize_schema(cfg: GenerateConfig) -> dict[str, Any]:
    schema = VisualizeAnswer.model_json_schema()
    schema["properties"]["segments"].update(minItems=cfg.min_query_images, maxItems=cfg.max_query_images)
    return schema


def visualize_stage(units: Sequence[_Unit], captions: dict[str, list[str]], written: dict[str, str],
                    rt: _Runtime) -> list[dict[str, Any]]:
    """Unit id -> ``{"segments": [{"text", "image_prompt"}], "closing"}``."""
    cfg = rt.cfg
    if cfg.visualize.kind == "offline":
        def local(u: _Unit) -> dict[str, Any]:
            def work() -> dict[str, Any]:
                value = offline.visualize(u.doc, written[u.id], captions[u.doc.id], rt.rng("visualize", u.id), cfg,
                                          rt.contexts.get(u.doc.id))
                check_visual(u.doc, value, cfg)
                return value
            return _guard(u.id, Usage(), work)
        return [local(u) for u in units]

    prompt, repair = load_prompt("visualize"), load_prompt("repair")
    backend = rt.backend("visualize")
    schema = _visualize_schema(cfg)

    def one(u: _Unit) -> dict[str, Any]:
        usage = Usage()
        text = written[u.id]
        sentences = split_sentences(text)
        salience = bm25_salience(sentences, " ".join([u.doc.goal, *captions[u.doc.id]]))
        top = sorted(sorted(range(len(sentences)), key=lambda i: (-salience[i], i))[:cfg.salient_sentences])

        def work() -> dict[str, Any]:
            limits = {"min_images": cfg.min_query_images, "max_images": cfg.max_query_images}
            messages = [{"role": "system", "content": prompt.render("system", **limits)},
                        {"role": "user", "content": prompt.render(
                            "user", query=as_data(text),
                            sentences=as_data("\n".join(f"- {sentences[i]}" for i in top)))}]
            answer = backend.chat_json(
                messages, VisualizeAnswer, prompt, repair, usage, schema=schema, seed=rt.call_seed(u),
                check=lambda a: check_visual(u.doc, _clean_visual(a), cfg))
            return _clean_visual(answer)

        return _guard(u.id, usage, work)

    return _map(one, units, _workers(cfg.visualize))


def _clean_visual(answer: VisualizeAnswer) -> dict[str, Any]:
    return {"segments": [{"text": " ".join(s.text.split()), "image_prompt": " ".join(s.image_prompt.split())}
                         for s in answer.segments],
            "closing": " ".join(answer.closing.split())}


# --------------------------------------------------------------------------- stage 4: render


def render_stage(units: Sequence[_Unit], visual: dict[str, dict[str, Any]], pool: ImagePool,
                 rt: _Runtime) -> list[dict[str, Any]]:
    """Unit id -> ``{"images": [{"pool": key} | {"blob": sha256, ...}]}``, one per image prompt."""
    cfg = rt.cfg
    prompts = [[s["image_prompt"] for s in visual[u.id]["segments"]] for u in units]
    if cfg.render.kind == "offline":
        picked = offline.render(prompts, [u.doc for u in units], pool, cfg)
        return [_fail(u.id, r.reason, r.detail) if isinstance(r, GenerationError) else
                _ok(u.id, {"images": [{"pool": key} for key in r]}, Usage(images=len(r)))
                for u, r in zip(units, picked, strict=True)]

    template = load_prompt("render")
    backend = rt.backend("render")
    blobs = rt.work_dir / "render" / "blobs"
    image_cfg = ImageConfig()

    positives = {u.id: [m.phash for m in u.doc.content.image_meta if m is not None and m.phash] for u in units}

    def draw(task: tuple[_Unit, int, str]) -> dict[str, Any]:
        """One image (images are the unit of concurrency, so a query's pictures render in parallel)."""
        u, i, text = task
        usage = Usage()

        def work() -> dict[str, Any]:
            problem: Invalid | None = None
            for attempt in range(2):  # one re-ask when the server's image is unusable
                try:
                    raw = backend.render(template.render("user", image_prompt=text), template, usage,
                                         attempt_tag=attempt)
                    try:
                        img = normalize_image(raw, image_cfg)
                    except ImageError as exc:
                        raise Invalid("invalid-image", f"{exc.reason}: {exc.detail}") from None
                    if any(phash_distance(img.phash, p) <= cfg.near_copy_phash_distance for p in positives[u.id]):
                        raise Invalid("near-copy-of-positive", "the image is a near-copy of a document image")
                    atomic_write_bytes(blobs / f"{img.sha256}.jpg", img.data)
                    usage.images += 1
                    return {"blob": img.sha256, "width": img.width, "height": img.height, "phash": img.phash}
                except Invalid as exc:
                    problem = exc
            assert problem is not None
            raise GenerationError(problem.reason, problem.problem)

        return _guard(f"{u.id}#{i}", usage, work)

    tasks = [(u, i, text) for u, unit_prompts in zip(units, prompts, strict=True) for i, text in enumerate(unit_prompts)]
    drawn = _map(draw, tasks, _workers(cfg.render))
    by_unit: dict[str, list[dict[str, Any]]] = {}
    for (u, _, _), rec in zip(tasks, drawn, strict=True):
        by_unit.setdefault(u.id, []).append(rec)
    out = []
    for u in units:
        recs = by_unit.get(u.id, [])
        usage = _sum_usage(r["usage"] for r in recs)
        bad = next((r for r in recs if not r["ok"]), None)
        out.append(_fail(u.id, bad["reason"], f"{bad['id']}: {bad['detail']}", usage, bad.get("answer")) if bad
                   else _ok(u.id, {"images": [r["value"] for r in recs]}, usage))
    return out


# --------------------------------------------------------------------------- assembly


def _stage_info(cfg: GenerateConfig, stage: str) -> dict[str, Any]:
    bc: BackendConfig = getattr(cfg, stage)
    if bc.kind == "openai":
        prompt = load_prompt(stage)
        return {"backend": "openai", "model": bc.model, "prompt": prompt.ref}
    model = {"caption": offline.CAPTIONER, "write": offline.GENERATOR, "visualize": offline.GENERATOR,
             "render": offline.RENDERER}[stage]
    info: dict[str, Any] = {"backend": "offline", "model": model}
    if stage in ("write", "visualize"):
        info["prompt"] = load_prompt("offline_extractive").ref
    return info


def _assemble(u: _Unit, value: dict[str, Any], images: list[dict[str, Any]], pool: ImagePool,
              rt: _Runtime, pool_bytes: dict[str, bytes]) -> Query:
    cfg = rt.cfg
    content = Interleaved()
    sources = []
    for segment, image in zip(value["segments"], images, strict=True):
        if segment["text"].strip():
            content.add_text(segment["text"])
        if "pool" in image:
            pooled = pool.get(image["pool"])
            if pooled is None:
                raise GenerationError("pool-changed", f"pooled image {image['pool']} is gone")
            data = pool_bytes.get(image["pool"])
            if data is None:
                raise GenerationError("missing-image-bytes", f"pooled image {image['pool']} has no bytes")
            m = pooled.meta
            content.add_image(ImageMeta(source_url=m.source_url, license=m.license, sha256=m.sha256,
                                        width=m.width, height=m.height, phash=m.phash, stand_in=m.stand_in),
                              data)
            sources.append(pooled.doc_id)
        else:
            data = (rt.work_dir / "render" / "blobs" / f"{image['blob']}.jpg").read_bytes()
            content.add_image(ImageMeta(source_url=f"generated:{cfg.render.model}", sha256=image["blob"],
                                        width=image["width"], height=image["height"], phash=image["phash"]),
                              data)
            sources.append("generated")
    if value.get("closing", "").strip():
        content.add_text(value["closing"])
    content.check()
    text = content.text
    writer = _generator_name(cfg)
    provenance = {
        "generator": writer,
        "seed": rt.seed,
        "query_index": u.k,
        "stages": {s: _stage_info(cfg, s) for s in STAGES},
        "image_sources": sources,
        "text_tokens": count_tokens(text),
        "tokenizer": TOKENIZER_NAME,
        "copied_share": round(copied_share(document_text(u.doc), text), 4),
    }
    return Query(id=u.id, positive_id=u.doc.id, article_id=u.doc.article_id, lang=u.doc.lang, content=content,
                 image_prompts=[s["image_prompt"] for s in value["segments"]], provenance=provenance)


def _generator_name(cfg: GenerateConfig) -> str:
    """Who wrote the query text, honestly: the extractive generator, an LLM, or both."""
    kinds = (cfg.write.kind, cfg.visualize.kind)
    if kinds == ("offline", "offline"):
        return offline.GENERATOR
    if kinds == ("openai", "openai"):
        return LLM_GENERATOR
    return f"{offline.GENERATOR}+llm-visualize" if kinds[0] == "offline" else f"{LLM_GENERATOR}+offline-visualize"


# --------------------------------------------------------------------------- the shard


def _semantic(bc: BackendConfig) -> dict[str, Any]:
    return {k: v for k, v in bc.model_dump(mode="json").items() if k not in _RUNTIME_KEYS}


def _docs_fingerprint(docs: Sequence[Document], contexts: Mapping[str, dict[str, Any]]) -> str:
    return stable_hash([(d.id, d.lang, d.goal, d.section_title, list(d.content.texts),
                         [m.sha256 if m else None for m in d.content.image_meta], contexts.get(d.id))
                        for d in docs])


def _is_record(r: Any) -> bool:
    """The shape ``_ok``/``_fail`` write (a record file that parses but holds anything else is not trusted)."""
    if not isinstance(r, dict) or not isinstance(r.get("id"), str) or not isinstance(r.get("ok"), bool):
        return False
    usage = r.get("usage")
    if not isinstance(usage, dict) or not all(isinstance(usage.get(k), int) for k in Usage().to_dict()):
        return False
    return "value" in r if r["ok"] else isinstance(r.get("reason"), str) and isinstance(r.get("detail"), str)


def _read_vouched(path: Path, marker: Path, fingerprint: str) -> list[dict[str, Any]] | None:
    """The records of ``path`` if its ``.done`` marker vouches for them (same fingerprint, same record
    count and sha256 of the bytes), else None. A file that fails the check is logged, never trusted."""
    try:
        vouched = json.loads(marker.read_text(encoding="utf-8"))
        data = path.read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(vouched, dict) or vouched.get("fingerprint") != fingerprint:
        return None  # other settings (or an older marker format): recomputed, nothing is wrong
    problem = None
    if vouched.get("sha256") != sha256_bytes(data):
        problem = "its sha256 differs from the one its .done marker recorded (truncated or changed?)"
    else:
        try:
            records = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
        except ValueError:
            records = None
        if records is None or len(records) != vouched.get("records") or not all(map(_is_record, records)):
            problem = "it does not hold the records its .done marker counted"
    if problem is not None:
        log.warning("%s: %s; recomputing the stage", path, problem)
        return None
    return records


def _persisted(path: Path, fingerprint: str, compute: Callable[[], list[dict[str, Any]]],
               usable: Callable[[list[dict[str, Any]]], bool] | None = None) -> list[dict[str, Any]]:
    """Records of a finished stage shard, or compute + write them (atomically, marker last).

    The ``.done`` marker holds the fingerprint, the record count and the file's sha256, so a
    truncated or garbled record file is recomputed (from the request cache: free) instead of
    crashing the resume or being trusted; ``usable`` checks what the records point to."""
    marker = path.with_suffix(".done")
    records = _read_vouched(path, marker, fingerprint)
    if records is not None and (usable is None or usable(records)):
        return records
    records = compute()
    data = "".join(dumps(r) + "\n" for r in records).encode("utf-8")
    atomic_write_bytes(path, data)
    atomic_write_text(marker, dumps({"fingerprint": fingerprint, "records": len(records),
                                     "sha256": sha256_bytes(data)}) + "\n")
    return records


def generate_queries(documents: Sequence[Document], pool: ImagePool, cfg: GenerateConfig, *, seed: int,
                     work_dir: Path, shard_id: str,
                     contexts: Mapping[str, dict[str, Any]] | None = None) -> GenerationResult:
    """Queries for one shard of documents (see the module doc); rejects carry their stage and reason.

    ``contexts``: doc id -> what the writer may know beyond the document (``segment.section_context``:
    step details, tips, categories); the offline writer builds its text from it."""
    docs = list(documents)
    work_dir = Path(work_dir)
    rt = _Runtime(cfg, seed, work_dir, contexts)
    try:
        shared = cfg.model_dump(mode="json", exclude={"caption", "write", "visualize", "render",
                                                      "documents_per_shard", "enabled", "cache"})
        fp = stable_hash("generate", seed, shared, _docs_fingerprint(docs, rt.contexts))
        fps: dict[str, str] = {}
        for stage in STAGES:
            prompt_shas = [load_prompt(n).sha256 for n in _prompts_of(cfg, stage)]
            fp = stable_hash(fp, stage, _semantic(getattr(cfg, stage)), prompt_shas,
                             pool.fingerprint if stage == "render" else "")
            fps[stage] = fp

        def path(stage: str) -> Path:
            return work_dir / stage / f"{shard_id}.jsonl"

        cap_records = _persisted(path("caption"), fps["caption"], lambda: list(caption_stage(docs, rt).values()))
        captions = {r["id"]: r["value"] for r in cap_records if r["ok"]}
        units = [_Unit(f"q-{d.id}-{k}", d, k) for d in docs if d.id in captions
                 for k in range(cfg.queries_per_document)]

        write_records = _persisted(path("write"), fps["write"], lambda: write_stage(units, captions, rt))
        written = {r["id"]: r["value"] for r in write_records if r["ok"]}
        units_w = [u for u in units if u.id in written]

        vis_records = _persisted(path("visualize"), fps["visualize"],
                                 lambda: visualize_stage(units_w, captions, written, rt))
        visual = {r["id"]: r["value"] for r in vis_records if r["ok"]}
        units_v = [u for u in units_w if u.id in visual]

        blobs = work_dir / "render" / "blobs"

        def blobs_present(records: list[dict[str, Any]]) -> bool:  # rendered pictures live beside the records
            present = all((blobs / f"{im['blob']}.jpg").is_file() for r in records if r["ok"]
                          for im in r["value"]["images"] if "blob" in im)
            if not present:
                log.warning("%s: a rendered image it names is missing; recomputing the stage", path("render"))
            return present

        render_records = _persisted(path("render"), fps["render"], lambda: render_stage(units_v, visual, pool, rt),
                                    blobs_present)
        rendered = {r["id"]: r["value"] for r in render_records if r["ok"]}

        result = GenerationResult()
        failed: dict[str, Reject] = {}
        for stage, records in zip(STAGES, (cap_records, write_records, vis_records, render_records), strict=True):
            for r in records:
                if not r["ok"]:
                    failed[r["id"]] = Reject(stage=f"generate.{stage}", item_id=r["id"], reason=r["reason"],
                                             detail=r["detail"],
                                             extra={"answer": r["answer"]} if r.get("answer") is not None else {})
        for d in docs:
            if d.id in failed:
                result.rejects.append(failed[d.id])
        # the pooled pictures of the whole shard in one read (a lazy pool reads them from the corpus files)
        pool_bytes = pool.image_bytes(sorted({im["pool"] for u in units if u.id in rendered and u.id not in failed
                                              for im in rendered[u.id]["images"] if "pool" in im}))
        for u in units:
            if u.id in failed:
                result.rejects.append(failed[u.id])
            elif u.id in rendered:
                try:
                    result.queries.append(_assemble(u, visual[u.id], rendered[u.id]["images"], pool, rt,
                                                    pool_bytes))
                except (GenerationError, OSError, ValueError) as exc:
                    reason = exc.reason if isinstance(exc, GenerationError) else "assembly-failed"
                    result.rejects.append(Reject(stage="generate.assemble", item_id=u.id, reason=reason,
                                                 detail=redact(str(exc))[:500]))
        result.stats = _stats(docs, units, result, cfg,
                              dict(zip(STAGES, (cap_records, write_records, vis_records, render_records),
                                       strict=True)), rt)
        return result
    finally:
        rt.close()


def _prompts_of(cfg: GenerateConfig, stage: str) -> list[str]:
    bc: BackendConfig = getattr(cfg, stage)
    if bc.kind == "openai":
        return [stage, "repair"] if stage in ("write", "visualize") else [stage]
    return ["offline_extractive"] if stage in ("write", "visualize") else []


# --------------------------------------------------------------------------- stats


_TEXT_BINS = (0, 20, 40, 60, 80, 100, 120, 140, 160, 200, 300)


def _bin(n: int) -> str:
    lo = max(b for b in _TEXT_BINS if b <= n)
    hi = next((b for b in _TEXT_BINS if b > n), None)
    return f"{lo}-{hi - 1}" if hi is not None else f"{lo}+"


def _stats(docs: Sequence[Document], units: Sequence[_Unit], result: GenerationResult, cfg: GenerateConfig,
           records: dict[str, list[dict[str, Any]]], rt: _Runtime) -> dict[str, Any]:
    """Deterministic figures (same for a fresh and a resumed run) plus ``run`` (this process only)."""
    stages = {}
    for stage in STAGES:
        usage = _sum_usage(r["usage"] for r in records[stage])
        bc: BackendConfig = getattr(cfg, stage)
        stages[stage] = {"backend": bc.kind, "model": _stage_info(cfg, stage)["model"],
                         "items": len(records[stage]), "failed": sum(not r["ok"] for r in records[stage]),
                         **usage.to_dict()}
    lengths = [q.provenance["text_tokens"] for q in result.queries]
    reasons = Counter(f"{r.stage.removeprefix('generate.')}/{r.reason}" for r in result.rejects)
    return {
        "documents": len(docs),
        "attempted": len(docs) * cfg.queries_per_document,
        "queries": len(result.queries),
        "rejected": len(result.rejects),
        "rejects_by_reason": dict(sorted(reasons.items())),
        "stages": stages,
        "images_per_query": {str(k): v for k, v in sorted(Counter(q.content.n_images for q in result.queries).items())},
        "text_tokens": {"tokenizer": TOKENIZER_NAME, "count": len(lengths), "sum": sum(lengths),
                        "min": min(lengths, default=0), "max": max(lengths, default=0),
                        "histogram": dict(Counter(_bin(n) for n in lengths))},
        "run": {**rt.counters.to_dict(), "cache_entries": len(rt.cache) if rt.cache is not None else 0},
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
