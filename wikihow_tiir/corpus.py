"""The corpus stage for one shard: pages -> Articles -> Documents with normalized image bytes.

Plain functions, no Prefect: the flow calls :func:`build_corpus_shard` once per shard of pages
(or of VGSI articles). Everything that does not make it into the corpus comes back as a
:class:`Reject` with a reason: pages that do not parse, sections that are not documents, images
that are missing or refused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from wikihow_tiir.config import BuildConfig
from wikihow_tiir.model import Article, Document, Reject
from wikihow_tiir.segment import section_context, segment_article


class ImageStore(Protocol):
    def get_bytes(self, url: str) -> bytes | None: ...


@dataclass
class PageInput:
    url: str
    body: bytes
    fetched_at: str = ""
    sha256: str = ""
    source: str = "archive"


@dataclass
class CorpusShard:
    documents: list[Document] = field(default_factory=list)
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)  # doc id -> segment.section_context
    articles: list[Article] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def parse_pages(pages: Iterable[PageInput]) -> tuple[list[Article], list[Reject]]:
    from wikihow_tiir.parse import ParseError, parse_html

    articles: list[Article] = []
    rejects: list[Reject] = []
    for page in pages:
        try:
            article = parse_html(page.body, url=page.url)
        except ParseError as exc:
            rejects.append(Reject("parse", page.url, exc.reason, str(exc)))
            continue
        except Exception as exc:  # a parser bug must not stop the build; it is recorded loudly
            rejects.append(Reject("parse", page.url, "parser-error", f"{type(exc).__name__}: {exc}"))
            continue
        article.source = page.source
        article.fetched_at = page.fetched_at or article.fetched_at
        article.sha256 = page.sha256 or article.sha256
        articles.append(article)
    return articles, rejects


def attach_images(doc: Document, store: ImageStore, cfg: BuildConfig, cache: dict[str, Any]) -> list[Reject]:
    """Fetch + normalize every picture of a document in place; failed pictures are removed."""
    from wikihow_tiir.images import ImageError, normalize_image

    rejects: list[Reject] = []
    c = doc.content
    keep: list[int] = []
    seen_sha: set[str] = set()
    for i, meta in enumerate(c.image_meta):
        if meta is None:
            keep.append(i)
            continue
        url = meta.source_url
        if url not in cache:
            data = store.get_bytes(url)
            if data is None:
                cache[url] = ("image-missing", "no bytes for this URL in the source")
            else:
                try:
                    cache[url] = normalize_image(data, cfg.images)
                except ImageError as exc:
                    cache[url] = (exc.reason, str(exc))
        got = cache[url]
        if isinstance(got, tuple):
            rejects.append(Reject("images", f"{doc.id}#{i}", got[0], got[1], {"url": url}))
            continue
        if got.sha256 in seen_sha:
            rejects.append(Reject("images", f"{doc.id}#{i}", "duplicate-image",
                                  "the same picture already appears earlier in this document", {"url": url}))
            continue
        seen_sha.add(got.sha256)
        c.images[i] = got.data
        meta.sha256, meta.width, meta.height, meta.phash = got.sha256, got.width, got.height, got.phash
        is_stand_in = getattr(store, "is_stand_in", None)
        meta.stand_in = bool(is_stand_in(url)) if is_stand_in else False
        keep.append(i)
    if len(keep) != len(c.texts):
        c.texts = [c.texts[i] for i in keep]
        c.images = [c.images[i] for i in keep]
        c.image_meta = [c.image_meta[i] for i in keep]
    return rejects


def documents_from_articles(articles: Iterable[Article], store: ImageStore, cfg: BuildConfig) -> CorpusShard:
    shard = CorpusShard()
    cache: dict[str, Any] = {}
    for article in articles:
        shard.articles.append(article)
        docs, rejects = segment_article(article, cfg.segment)
        shard.rejects.extend(rejects)
        sections = {s.index: s for s in article.sections}
        for doc in docs:
            shard.rejects.extend(attach_images(doc, store, cfg, cache))
            n = doc.content.n_images
            if n < cfg.segment.min_images:
                shard.rejects.append(Reject("segment", doc.id, "too-few-images-after-fetch",
                                            f"{n} usable picture(s) left after fetching, "
                                            f"at least {cfg.segment.min_images} needed", {"images": n}))
                continue
            doc.content.check()
            shard.documents.append(doc)
            shard.contexts[doc.id] = section_context(article, sections[doc.section_index], cfg.segment)
    return shard


def build_corpus_shard(pages: Iterable[PageInput] | None, store: ImageStore, cfg: BuildConfig,
                       articles: Iterable[Article] | None = None) -> CorpusShard:
    """Pages (HTML) or ready Articles (VGSI) -> Documents with image bytes, plus rejects and stats."""
    parse_rejects: list[Reject] = []
    n_pages = 0
    if pages is not None:
        pages = list(pages)
        n_pages = len(pages)
        articles, parse_rejects = parse_pages(pages)
    shard = documents_from_articles(articles or [], store, cfg)
    shard.rejects = parse_rejects + shard.rejects
    shard.stats = {
        "pages": n_pages,
        "articles": len(shard.articles),
        "documents": len(shard.documents),
        "images": sum(d.content.n_images for d in shard.documents),
        "rejects": dict(Counter(f"{r.stage}:{r.reason}" for r in shard.rejects)),
        "layouts": dict(Counter(a.layout for a in shard.articles)),
    }
    return shard
