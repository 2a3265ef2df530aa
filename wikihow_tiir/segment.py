"""Article -> interleaved Documents, one per method/part, as in the paper (Figure 1).

A document reads: the goal, the section title, then for each step its summary followed by its
picture (a video step contributes its poster still; a text-only step contributes text only).
Sections with fewer than ``min_images`` or more than ``max_images`` pictures are dropped with a
reason; image bytes are attached later by the image stage (positions carry ``ImageMeta`` with the
source URL and licence until then).
"""

from __future__ import annotations

import re
from typing import Any

from wikihow_tiir.config import SegmentConfig
from wikihow_tiir.model import Article, Document, ImageMeta, Interleaved, Reject, Section, Step

_WS = re.compile(r"\s+")


def _clean(text: str) -> str:
    return _WS.sub(" ", text or "").strip()


def step_text(step: Step, include_detail: bool = False, detail_max_chars: int = 600) -> str:
    """The text a step contributes: its summary (and optionally its detail, shortened)."""
    summary = _clean(step.summary)
    if not include_detail:
        # a step without a bold summary still says something: fall back to its first sentence-ish
        return summary or _first_clause(step.detail)
    detail = _clean(step.detail)
    if len(detail) > detail_max_chars:
        detail = detail[:detail_max_chars].rsplit(" ", 1)[0] + " …"
    return " ".join(t for t in (summary, detail) if t)


def _first_clause(detail: str, limit: int = 200) -> str:
    text = _clean(detail)
    m = re.search(r"(.+?[.!?。！？])(\s|$)", text)
    text = m.group(1) if m else text
    return text[:limit]


def step_picture(step: Step) -> tuple[str, str] | None:
    """(url, licence) of the picture that represents a step, or None for a text-only step."""
    for media in step.media:
        url = media.still_url
        if url:
            return url, media.license
    return None


def section_document(article: Article, section: Section, cfg: SegmentConfig) -> Document:
    content = Interleaved()
    content.add_text(_clean(article.goal) or _clean(article.title))
    title = _clean(section.title)
    if title:
        content.add_text(title)
    for step in section.steps:
        text = step_text(step, cfg.include_detail, cfg.detail_max_chars)
        if text:
            content.add_text(text)
        picture = step_picture(step)
        if picture is not None:
            content.add_image(ImageMeta(source_url=picture[0], license=picture[1]))
    return Document(
        id=Document.make_id(article.id, section.index),
        article_id=article.id,
        url=article.url,
        lang=article.lang,
        goal=_clean(article.goal) or _clean(article.title),
        section_title=title,
        section_kind=section.kind,
        section_index=section.index,
        content=content,
        categories=list(article.categories),
    )


def section_context(article: Article, section: Section, cfg: SegmentConfig | None = None) -> dict[str, Any]:
    """What a query writer may know about a document beyond the document itself: each step's detail
    text, the article's tips, warnings and things needed, and its category path (most specific
    first). Kept beside the corpus (never in it), so a query can describe the situation with material
    a retriever cannot match word for word."""
    cfg = cfg or SegmentConfig()
    cats = [_clean(c) for c in article.categories if _clean(c)]
    if article.source == "vgsi":  # VGSI lists the category hierarchy from the top down
        cats.reverse()
    return {
        "categories": cats,
        "steps": [{"text": step_text(st, cfg.include_detail, cfg.detail_max_chars), "detail": (st.detail or "").strip(),
                   "pictured": step_picture(st) is not None} for st in section.steps],
        "tips": [t.strip() for t in article.tips if t and t.strip()],
        "warnings": [w.strip() for w in article.warnings if w and w.strip()],
        "things_needed": [t.strip() for t in article.things_needed if t and t.strip()],
    }


def segment_article(article: Article, cfg: SegmentConfig | None = None) -> tuple[list[Document], list[Reject]]:
    """Documents of an article plus a Reject for every section that does not make one."""
    cfg = cfg or SegmentConfig()
    docs: list[Document] = []
    rejects: list[Reject] = []
    if not article.sections:
        rejects.append(Reject("segment", f"wh-{article.id}", "no-sections", "the article has no step sections"))
        return docs, rejects
    for section in article.sections:
        doc = section_document(article, section, cfg)
        n = doc.content.n_images
        if not section.steps:
            rejects.append(Reject("segment", doc.id, "no-steps", f"section {section.index} has no steps"))
        elif n < cfg.min_images:
            rejects.append(Reject("segment", doc.id, "too-few-images",
                                  f"{n} step picture(s), at least {cfg.min_images} needed",
                                  {"images": n, "steps": len(section.steps)}))
        elif n > cfg.max_images:
            rejects.append(Reject("segment", doc.id, "too-many-images",
                                  f"{n} step pictures, at most {cfg.max_images} allowed", {"images": n}))
        else:
            docs.append(doc)
    return docs, rejects
