"""The stage records of one unit put together as a :class:`~wikihow_tiir.model.Query` with its provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wikihow_tiir.config import BackendConfig, GenerateConfig
from wikihow_tiir.generate import offline
from wikihow_tiir.generate.checks import document_text
from wikihow_tiir.generate.pool import ImagePool
from wikihow_tiir.generate.records import PooledImage, RenderedImage, Unit, Visual
from wikihow_tiir.generate.render import blobs_dir
from wikihow_tiir.generate.text import TOKENIZER_NAME, copied_share, count_tokens
from wikihow_tiir.llm.errors import GenerationError
from wikihow_tiir.llm.prompts import load_prompt
from wikihow_tiir.model import ImageMeta, Interleaved, Query

STAGES = ("caption", "write", "visualize", "render")
LLM_GENERATOR = "llm-narrative-v1"


def stage_info(cfg: GenerateConfig, stage: str) -> dict[str, Any]:
    """What a query's provenance says about one stage: backend, model, prompt."""
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


def generator_name(cfg: GenerateConfig) -> str:
    """Who wrote the query text, honestly: the extractive generator, an LLM, or both."""
    kinds = (cfg.write.kind, cfg.visualize.kind)
    if kinds == ("offline", "offline"):
        return offline.GENERATOR
    if kinds == ("openai", "openai"):
        return LLM_GENERATOR
    return f"{offline.GENERATOR}+llm-visualize" if kinds[0] == "offline" else f"{LLM_GENERATOR}+offline-visualize"


def assemble(u: Unit, visual: Visual, images: tuple[RenderedImage, ...], pool: ImagePool, cfg: GenerateConfig,
             seed: int, work_dir: Path, pool_bytes: dict[str, bytes]) -> Query:
    """The query of unit ``u``; ``pool_bytes`` holds the pooled pictures' bytes (read once per shard).
    A picture that is gone is a :class:`GenerationError`; a drawn one that cannot be read an OSError."""
    content = Interleaved()
    sources = []
    for segment, image in zip(visual.segments, images, strict=True):
        if segment.text.strip():
            content.add_text(segment.text)
        if isinstance(image, PooledImage):
            pooled = pool.get(image.key)
            if pooled is None:
                raise GenerationError("pool-changed", f"pooled image {image.key} is gone")
            data = pool_bytes.get(image.key)
            if data is None:
                raise GenerationError("missing-image-bytes", f"pooled image {image.key} has no bytes")
            m = pooled.meta
            content.add_image(ImageMeta(source_url=m.source_url, license=m.license, sha256=m.sha256,
                                        width=m.width, height=m.height, phash=m.phash, stand_in=m.stand_in),
                              data)
            sources.append(pooled.doc_id)
        else:
            data = (blobs_dir(work_dir) / f"{image.blob}.jpg").read_bytes()
            content.add_image(ImageMeta(source_url=f"generated:{cfg.render.model}", sha256=image.blob,
                                        width=image.width, height=image.height, phash=image.phash), data)
            sources.append("generated")
    if visual.closing.strip():
        content.add_text(visual.closing)
    content.check()
    text = content.text
    provenance = {
        "generator": generator_name(cfg),
        "seed": seed,
        "query_index": u.k,
        "stages": {s: stage_info(cfg, s) for s in STAGES},
        "image_sources": sources,
        "text_tokens": count_tokens(text),
        "tokenizer": TOKENIZER_NAME,
        "copied_share": round(copied_share(document_text(u.doc), text), 4),
    }
    return Query(id=u.id, positive_id=u.doc.id, article_id=u.doc.article_id, lang=u.doc.lang, content=content,
                 image_prompts=visual.image_prompts, provenance=provenance)
