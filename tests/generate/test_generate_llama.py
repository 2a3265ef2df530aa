"""Write + visualize through a real local LLM: llama.cpp's server with SmolLM2-135M (extra ``llm``).

The model is tiny, so this checks the pipeline's behaviour, not the quality of its queries:
every document ends as a kept query that passes every check, or as a reject with a reason.
"""

from __future__ import annotations

import json
import shutil

import pytest
from servers.llama_server import MODEL_ALIAS, LlamaServer

from wikihow_tiir.config import BackendConfig, GenerateConfig
from wikihow_tiir.generate import generate_queries
from wikihow_tiir.generate.text import copied_share, count_tokens

pytestmark = pytest.mark.llm

KNOWN_REASONS = {"invalid-json", "schema-mismatch", "empty-answer", "refusal", "text-too-short", "text-too-long",
                 "copies-document", "wrong-image-count", "template-echo", "duplicate-image-prompts", "timeout"}


def test_write_and_visualize_through_llama_cpp(documents, pool, tmp_path):
    docs = [d for d in documents if d.article_id in ("101", "105")]  # one English, one Japanese
    with LlamaServer() as server:
        llm = BackendConfig(kind="openai", base_url=server.base_url, model=MODEL_ALIAS, temperature=0.0,
                            max_tokens=120, timeout_s=120, retries=1, concurrency=1, json_schema="llama-cpp")
        # a 135M model writes short texts: accept them, so the visualize stage gets work to do
        cfg = GenerateConfig(write=llm, visualize=llm, min_text_words=3)
        result = generate_queries(docs, pool, cfg, seed=0, work_dir=tmp_path, shard_id="llama")

        units = {f"q-{d.id}-0" for d in docs}
        assert {q.id for q in result.queries} | {r.item_id for r in result.rejects} == units
        assert not {q.id for q in result.queries} & {r.item_id for r in result.rejects}
        for r in result.rejects:
            assert r.stage in ("generate.write", "generate.visualize") and r.reason in KNOWN_REASONS, r
            assert r.detail
            if r.reason != "timeout":  # refused for what the model wrote: the answer is there to read
                assert "answer" in r.extra and len(r.extra["answer"]) <= 2000, r
        for q in result.queries:
            q.content.check()
            assert 2 <= q.content.n_images <= 4 and q.content.texts[0]
            assert len(q.image_prompts) == q.content.n_images and all(p.strip() for p in q.image_prompts)
            assert 3 <= count_tokens(q.content.text) <= cfg.max_text_words
            assert q.provenance["stages"]["write"] == {
                "backend": "openai", "model": MODEL_ALIAS,
                "prompt": {"name": "write", "version": 1, "sha256": q.provenance["stages"]["write"]["prompt"]["sha256"]}}
            doc = next(d for d in docs if d.id == q.positive_id)
            assert copied_share("\n".join(t for t in doc.content.texts[2:] if t), q.content.text) <= 0.6
        stages = result.stats["stages"]
        assert stages["write"]["calls"] >= len(docs) and stages["write"]["completion_tokens"] > 0
        assert stages["visualize"]["items"] == len(docs) - sum(r.stage == "generate.write" for r in result.rejects)

        # at the default minimum length the tiny model's queries are refused (it tends to answer with
        # the goal alone); whatever it wrote stays with the reject, to be read when fixing the prompt
        strict = GenerateConfig(write=llm, visualize=llm)
        out = generate_queries(docs[:1], pool, strict, seed=0, work_dir=tmp_path / "strict", shard_id="llama")
        assert len(out.queries) + len(out.rejects) == 1
        for r in out.rejects:
            assert r.reason in KNOWN_REASONS and r.detail, r
            if r.reason != "timeout":
                assert r.extra["answer"].strip() and len(r.extra["answer"]) <= 2000, r

        # a repeated build asks the model nothing: every answer comes from the request cache
        for stage in ("write", "visualize", "render"):
            shutil.rmtree(tmp_path / stage)
        again = generate_queries(docs, pool, cfg, seed=0, work_dir=tmp_path, shard_id="llama")
        assert again.stats["run"]["http_requests"] == 0
        assert json.dumps([q.content.texts for q in again.queries]) == json.dumps([q.content.texts for q in result.queries])

        # backends are per stage: the offline writer's situation, visualized by the model, so the
        # visualize stage always meets llama.cpp whatever the tiny model wrote above
        mixed = GenerateConfig(visualize=llm, min_text_words=3)
        out = generate_queries(docs[:1], pool, mixed, seed=0, work_dir=tmp_path / "mixed", shard_id="llama")
        assert out.stats["stages"]["visualize"]["calls"] >= 1
        assert out.stats["stages"]["visualize"]["completion_tokens"] > 0
        assert len(out.queries) + len(out.rejects) == 1
        for r in out.rejects:
            assert r.stage == "generate.visualize" and r.reason in KNOWN_REASONS and r.detail, r
        for q in out.queries:
            assert 2 <= q.content.n_images <= 4 and q.provenance["generator"] == "offline-extractive-v1+llm-visualize"
