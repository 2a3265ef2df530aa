"""The checks a generated query passes, whichever backend wrote it; each failure is an
:class:`~wikihow_tiir.llm.errors.Invalid` whose ``reason`` becomes the reject and whose ``detail`` is
told to the model in the repair turn. A new check of the written text or the layout goes here."""

from __future__ import annotations

import re

from wikihow_tiir.config import GenerateConfig
from wikihow_tiir.generate.pool import step_texts
from wikihow_tiir.generate.records import Visual
from wikihow_tiir.generate.text import copied_share, count_tokens
from wikihow_tiir.llm.errors import Invalid
from wikihow_tiir.model import Document

# a placeholder of our templates echoed back ("<text before picture 1>"), as small models do
ECHO = re.compile(r"^\s*<[^<>]*>?\s*$")


def document_text(doc: Document) -> str:
    """The document's step text (what a query must not restate)."""
    return "\n".join(t for _, t in step_texts(doc))


def check_written(doc: Document, query: str, cfg: GenerateConfig) -> None:
    """The write stage's answer: real text, long enough, not copied from the document."""
    if ECHO.match(query):
        raise Invalid("template-echo", "the answer repeats the template's placeholder; write the query")
    n = count_tokens(query)
    if n < cfg.min_text_words:
        raise Invalid("text-too-short", f"the query has {n} words; write at least {cfg.min_text_words}")
    share = copied_share(document_text(doc), query)
    if share > cfg.max_copied_share:
        raise Invalid("copies-document", f"{share:.0%} of the document's text is copied verbatim; "
                      "describe the situation in your own words instead")


def check_visual(doc: Document, visual: Visual, cfg: GenerateConfig) -> None:
    """Every final query's layout: picture count, text first, distinct real image prompts, length, copying."""
    segments = visual.segments
    if not cfg.min_query_images <= len(segments) <= cfg.max_query_images:
        raise Invalid("wrong-image-count", f"{len(segments)} segments; give between {cfg.min_query_images} "
                      f"and {cfg.max_query_images}")
    if not segments[0].text.strip():
        raise Invalid("schema-mismatch", "the first segment's text is empty; the query must start with text")
    if any(not s.image_prompt.strip() for s in segments):
        raise Invalid("schema-mismatch", "an image_prompt is empty")
    if any(ECHO.match(s.text) or ECHO.match(s.image_prompt) for s in segments if s.text):
        raise Invalid("template-echo", "a segment repeats the template's placeholder instead of real text")
    if len({" ".join(s.image_prompt.lower().split()) for s in segments}) < len(segments):
        raise Invalid("duplicate-image-prompts", "two segments have the same image_prompt; show different things")
    text = visual.text
    n = count_tokens(text)
    if n < cfg.min_text_words:
        raise Invalid("text-too-short", f"the text has {n} words; keep at least {cfg.min_text_words}")
    if n > cfg.max_text_words:
        raise Invalid("text-too-long", f"the text has {n} words; keep at most {cfg.max_text_words}")
    share = copied_share(document_text(doc), text)
    if share > cfg.max_copied_share:
        raise Invalid("copies-document", f"{share:.0%} of the document's text is copied verbatim")
