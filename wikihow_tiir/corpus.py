"""The corpus stage for one shard: pages -> Articles -> Documents with normalized image bytes.

Plain functions, no Prefect: the flow calls :func:`build_corpus_shard` once per shard of pages
(or of VGSI articles). Everything that does not make it into the corpus comes back as a
:class:`Reject` with a reason: pages the archive cannot give back, pages that do not parse,
sections that are not documents, images that are missing or refused.

One article is one article: when two pages of a shard parse to the same article id (a renamed
page, a redirect alias) only the first copy by :func:`copy_rank` is made into documents. The
build applies the same rule across shards (``build.finalize_corpus``), so the corpus does not
depend on how the pages were cut into shards.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

from wikihow_tiir.config import BuildConfig
from wikihow_tiir.model import Article, Document, Reject
from wikihow_tiir.segment import section_context, segment_article
from wikihow_tiir.sources.archive import ArchiveError


class ImageStore(Protocol):
    """Bytes of a picture by URL, None when the source has none; a source that has a record but
    cannot give the bytes back (a missing or corrupt archive blob) raises :class:`ArchiveError`."""

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
    articles: list[Article] = field(default_factory=list)  # every parsed article, duplicates included
    rejects: list[Reject] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    # the page (archive URL; the article URL for VGSI) that each article and each reject came from,
    # in the order of ``articles`` and ``rejects``: the build drops what a duplicate page produced
    article_pages: list[str] = field(default_factory=list)
    reject_pages: list[str] = field(default_factory=list)

    def reject(self, page: str, rejects: Iterable[Reject]) -> None:
        for r in rejects:
            self.rejects.append(r)
            self.reject_pages.append(page)


def copy_rank(page_url: str, article_url: str, revision: str | None) -> tuple[int, bool, str]:
    """Sort key of the pages of one article; the smallest is the copy that is kept.

    Newest revision first (a page without a revision id counts as the oldest), then the page whose
    URL is the article's canonical URL (a page without a canonical link is its own canonical URL),
    then the smallest URL.
    """
    rev = int(revision) if revision and revision.isdigit() else -1
    return -rev, unquote(page_url) != unquote(article_url or page_url), page_url


def parse_page(page: PageInput) -> Article | Reject:
    """One page -> its Article (with the page's provenance), or the parse Reject."""
    from wikihow_tiir.parse import ParseError, parse_html

    try:
        article = parse_html(page.body, url=page.url)
    except ParseError as exc:
        return Reject("parse", page.url, exc.reason, str(exc))
    except Exception as exc:  # a parser bug must not stop the build; it is recorded loudly
        return Reject("parse", page.url, "parser-error", f"{type(exc).__name__}: {exc}")
    article.source = page.source
    article.fetched_at = page.fetched_at or article.fetched_at
    article.sha256 = page.sha256 or article.sha256
    return article


def parse_pages(pages: Iterable[PageInput]) -> tuple[list[Article], list[Reject]]:
    articles: list[Article] = []
    rejects: list[Reject] = []
    for page in pages:
        got = parse_page(page)
        if isinstance(got, Reject):
            rejects.append(got)
        else:
            articles.append(got)
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
            try:
                data = store.get_bytes(url)
            except ArchiveError as exc:  # a damaged archive loses this picture, not the build
                cache[url] = (exc.reason, str(exc))
            else:
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


def _documents_of(article: Article, store: ImageStore, cfg: BuildConfig,
                  cache: dict[str, Any]) -> tuple[list[Document], list[Reject]]:
    docs, rejects = segment_article(article, cfg.segment)
    kept: list[Document] = []
    for doc in docs:
        rejects.extend(attach_images(doc, store, cfg, cache))
        n = doc.content.n_images
        if n < cfg.segment.min_images:
            rejects.append(Reject("segment", doc.id, "too-few-images-after-fetch",
                                  f"{n} usable picture(s) left after fetching, "
                                  f"at least {cfg.segment.min_images} needed", {"images": n}))
            continue
        doc.content.check()
        kept.append(doc)
    return kept, rejects


def _add_documents(shard: CorpusShard, article: Article, docs: list[Document], cfg: BuildConfig) -> None:
    """The documents of one article, and what the query writer may know beyond them."""
    sections = {s.index: s for s in article.sections}
    shard.documents.extend(docs)
    for doc in docs:
        shard.contexts[doc.id] = section_context(article, sections[doc.section_index], cfg.segment)


def documents_from_articles(articles: Iterable[Article], store: ImageStore, cfg: BuildConfig) -> CorpusShard:
    """Documents of every article as given (no duplicate check: see :func:`build_corpus_shard`)."""
    shard = CorpusShard()
    cache: dict[str, Any] = {}
    for article in articles:
        shard.articles.append(article)
        shard.article_pages.append(article.url)
        docs, rejects = _documents_of(article, store, cfg, cache)
        shard.reject(article.url, rejects)
        _add_documents(shard, article, docs, cfg)
    return shard


def build_corpus_shard(pages: Iterable[PageInput] | None, store: ImageStore, cfg: BuildConfig,
                       articles: Iterable[Article] | None = None,
                       unread: Iterable[Reject] = ()) -> CorpusShard:
    """Pages (HTML) or ready Articles (VGSI) -> Documents with image bytes, plus rejects and stats.

    ``unread`` are the rejects of pages the source could not give back (item id: the page URL).
    Of several pages with the same article id only the first by :func:`copy_rank` becomes
    documents; the others are listed in ``articles`` (the build writes their ``duplicate-article``
    rejects once it has seen every shard).
    """
    shard = CorpusShard()
    unread = list(unread)
    for r in unread:
        shard.reject(r.item_id, [r])
    parsed: list[tuple[str, Article]] = []
    n_pages = len(unread)
    if pages is not None:
        for page in pages:
            n_pages += 1
            got = parse_page(page)
            if isinstance(got, Reject):
                shard.reject(page.url, [got])
            else:
                parsed.append((page.url, got))
    else:
        parsed = [(a.url, a) for a in articles or []]
    best: dict[str, tuple[tuple[int, bool, str], int]] = {}  # article id -> (rank, position) of its best page
    for i, (page_url, article) in enumerate(parsed):
        key = (copy_rank(page_url, article.url, article.revision), i)
        if article.id not in best or key < best[article.id]:
            best[article.id] = key
    cache: dict[str, Any] = {}
    for i, (page_url, article) in enumerate(parsed):
        shard.articles.append(article)
        shard.article_pages.append(page_url)
        if best[article.id][1] != i:
            continue  # another page of this shard is the better copy of the same article
        docs, rejects = _documents_of(article, store, cfg, cache)
        shard.reject(page_url, rejects)
        _add_documents(shard, article, docs, cfg)
    shard.stats = {
        "pages": n_pages,
        "articles": len(best),
        "documents": len(shard.documents),
        "images": sum(d.content.n_images for d in shard.documents),
        "rejects": dict(Counter(f"{r.stage}:{r.reason}" for r in shard.rejects)),
        "layouts": dict(Counter(a.layout for a in shard.articles)),
    }
    return shard
