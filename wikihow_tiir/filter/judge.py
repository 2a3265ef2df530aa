"""Optional LLM judge of answerability, through the project's one OpenAI-compatible client.

Off by default (``filter.llm_judge = None``). It uses :class:`wikihow_tiir.llm.client.LLMClient`, as
query generation does (retries, shared 429 pause, JSON validation with one repair turn, SQLite request
cache), so a judge behaves like any generation stage and a re-run does not pay twice. A malformed or
hostile answer becomes the verdict's ``error`` (redacted: a server echoing the API key cannot put it
in a reject).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from wikihow_tiir.config import BackendConfig
from wikihow_tiir.llm.cache import RequestCache
from wikihow_tiir.llm.errors import GenerationError
from wikihow_tiir.llm.prompts import as_data, load_prompt
from wikihow_tiir.llm.usage import RunCounters, Usage
from wikihow_tiir.model import Document, Query
from wikihow_tiir.redact import redact

PROMPT_NAME = "judge_answerability"
PROMPT_VERSION = 1
JUDGE_SEED = 0  # the judge's sampling seed (temperature is 0 by default anyway)


class JudgeAnswer(BaseModel):
    on_topic: bool
    addresses_problem: bool
    consistent_pictures: bool = True
    self_contained: bool = True
    reason: str = ""

    @property
    def answerable(self) -> bool:
        return self.on_topic and self.addresses_problem and self.consistent_pictures and self.self_contained


@dataclass(slots=True)
class Verdict:
    answerable: bool = False
    reason: str = ""
    error: str | None = None  # set when no usable answer came back (server down, invalid JSON twice ...)


def query_for_judge(q: Query) -> str:
    """The query's text with each picture replaced by ``[picture: <its prompt>]``."""
    parts, k = [], 0
    for text, meta in zip(q.content.texts, q.content.image_meta, strict=False):
        if text:
            parts.append(text)
        elif meta is not None:
            prompt = q.image_prompts[k] if k < len(q.image_prompts) else ""
            parts.append(f"[picture: {prompt}]" if prompt else "[picture]")
            k += 1
    return "\n".join(parts)


def check_judge_config(cfg: BackendConfig) -> None:
    """Refuse an unusable judge configuration before any work is done (ValueError with the fix)."""
    if cfg.kind != "openai":
        raise ValueError("filter.llm_judge needs kind: openai (an OpenAI-compatible server with base_url and "
                         "model); there is no offline judge. Leave filter.llm_judge unset to skip the judge.")
    if not cfg.base_url or not cfg.model:
        raise ValueError("filter.llm_judge: the openai backend needs base_url and model")


def judge_answerability(queries: list[Query], documents: list[Document], cfg: BackendConfig, *,
                        cache_dir: Path | None = None) -> list[Verdict]:
    """One verdict per (query, its positive document), in order."""
    check_judge_config(cfg)
    if not queries:
        return []
    from wikihow_tiir.llm.client import LLMClient  # loads openai: only when a judge is configured

    prompt = load_prompt(PROMPT_NAME, PROMPT_VERSION)
    repair = load_prompt("repair")
    cache = RequestCache(Path(cache_dir) / "judge-requests.sqlite") if cache_dir is not None else None
    try:
        client = LLMClient("judge", cfg, cache, JUDGE_SEED, RunCounters(), setting="filter.llm_judge")

        def one(pair: tuple[Query, Document]) -> Verdict:
            q, d = pair
            messages = [{"role": "system", "content": prompt.render("system")},
                        {"role": "user", "content": prompt.render("user", query=as_data(query_for_judge(q)),
                                                                  document=as_data(d.content.text))}]
            try:
                ans = client.chat_json(messages, JudgeAnswer, prompt, repair, Usage())
            except GenerationError as exc:  # the only error a call ends with: this verdict fails, not the filter
                return Verdict(error=redact(f"{exc.reason}: {exc.detail}")[:300])
            return Verdict(answerable=ans.answerable, reason=redact(ans.reason)[:300])

        with ThreadPoolExecutor(max_workers=max(1, cfg.concurrency)) as pool:
            return list(pool.map(one, zip(queries, documents, strict=True)))
    finally:
        if cache is not None:
            cache.close()
