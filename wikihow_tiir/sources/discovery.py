"""Finding article URLs: wikiHow's sitemap index, a MediaWiki category crawl, or a URL list file.

All three go through the polite client (so robots.txt, rate limits and the host allowlist apply
to discovery too) and return :class:`Discovered` entries. Non-article paths (``Special:``,
``index.php``, ``api.php``, other namespaces) are never returned: random-article endpoints such as
``Special:Randomizer`` are disallowed by wikiHow's robots.txt and give no stable URL anyway.
"""

from __future__ import annotations

import gzip
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlencode, urlsplit

from wikihow_tiir.config import CrawlConfig
from wikihow_tiir.errors import WikihowTiirError
from wikihow_tiir.sources.http import FetchResult, PoliteClient

_SM = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
_NON_ARTICLE = ("Special:", "Category:", "User:", "Talk:", "File:", "Image:", "Template:", "MediaWiki:",
                "Help:", "wikiHow:", "User_talk:", "Discussion:")
_MAX_XML_BYTES = 64 * 1024 * 1024  # uncompressed sitemap cap (the protocol's limit is 50 MB)


class DiscoveryError(WikihowTiirError, RuntimeError):
    """Discovery could not produce a complete URL list (fails closed: no partial snapshot)."""

    reason = "discovery-failed"


@dataclass(slots=True)
class Discovered:
    url: str
    lastmod: str = ""  # from the sitemap, ISO date or datetime
    via: str = ""  # "sitemap:<url>", "category:<name>", "file:<name>"

    def to_dict(self) -> dict:
        return asdict(self)


OnFetch = Callable[[FetchResult, str], None]  # (result, kind): lets the crawler archive what discovery read


def article_url_problem(url: str, cfg: CrawlConfig) -> str | None:
    """Why ``url`` is not an article URL we may crawl, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "bad-url"
    path = unquote(parts.path).lstrip("/")
    if not path or path in ("index.php", "api.php") or path.startswith(_NON_ARTICLE):
        return "not-an-article"
    if parts.query:  # action=, variant=, printable= ...: dynamically generated pages
        return "not-an-article"
    return None


def _fetch_or_fail(client: PoliteClient, url: str, kind: str, on_fetch: OnFetch | None) -> bytes:
    res = client.fetch(url)
    if on_fetch is not None:
        on_fetch(res, kind)
    if not res.ok or res.body is None:
        raise DiscoveryError(f"{kind} {url}: {res.error} ({res.detail})")
    return res.body


def _xml(body: bytes, url: str) -> ET.Element:
    if url.endswith(".gz") or body[:2] == b"\x1f\x8b":
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as f:
            body = f.read(_MAX_XML_BYTES + 1)
        if len(body) > _MAX_XML_BYTES:
            raise DiscoveryError(f"{url}: sitemap larger than {_MAX_XML_BYTES} bytes uncompressed")
    if b"<!DOCTYPE" in body[:2048] or b"<!ENTITY" in body[:4096]:
        raise DiscoveryError(f"{url}: sitemap declares a DTD/entities; refused")
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise DiscoveryError(f"{url}: not a sitemap ({exc})") from exc


def _newer(lastmod: str, since: str | None) -> bool:
    # ISO dates and datetimes compare correctly as strings once cut to the shorter length
    if not since:
        return True
    if not lastmod:
        return True  # unknown age: fetch rather than silently miss it
    n = min(len(lastmod), len(since))
    return lastmod[:n] > since[:n] or (lastmod[:n] == since[:n] and len(lastmod) > len(since))


def from_sitemap(client: PoliteClient, cfg: CrawlConfig, on_fetch: OnFetch | None = None) -> list[Discovered]:
    """sitemap index -> sitemaps -> article URLs (+ lastmod), filtered by ``changed_since``."""
    index_url = cfg.sitemap_url or cfg.base_url.rstrip("/") + "/sitemap_index.xml"
    root = _xml(_fetch_or_fail(client, index_url, "sitemap", on_fetch), index_url)
    if root.tag == f"{_SM}urlset":  # a plain sitemap given as the index: accept it
        sitemaps = [index_url]
        preloaded = {index_url: root}
    else:
        sitemaps = [(loc.text or "").strip() for loc in root.iter(f"{_SM}loc")]
        preloaded = {}
    out: list[Discovered] = []
    seen: set[str] = set()
    for sm_url in sitemaps:
        sm = preloaded.get(sm_url)
        if sm is None:
            sm = _xml(_fetch_or_fail(client, sm_url, "sitemap", on_fetch), sm_url)
        for entry in sm.iter(f"{_SM}url"):
            loc = (entry.findtext(f"{_SM}loc") or "").strip()
            lastmod = (entry.findtext(f"{_SM}lastmod") or "").strip()
            if not loc or loc in seen or article_url_problem(loc, cfg) or not _newer(lastmod, cfg.changed_since):
                continue
            seen.add(loc)
            out.append(Discovered(loc, lastmod, f"sitemap:{sm_url}"))
            if cfg.max_articles and len(out) >= cfg.max_articles:
                return out
    return out


def title_to_url(base_url: str, title: str) -> str:
    """wikiHow article URLs are the title with hyphens for spaces ("Grill Zucchini" -> /Grill-Zucchini)."""
    return base_url.rstrip("/") + "/" + quote(title.replace(" ", "-"), safe="-()'!,:")


def from_categories(client: PoliteClient, cfg: CrawlConfig, on_fetch: OnFetch | None = None) -> list[Discovered]:
    """Breadth-first over ``list=categorymembers``, subcategories to ``category_depth`` levels."""
    if not cfg.categories:
        raise DiscoveryError("discovery 'category' needs at least one category in source.crawl.categories")
    api = cfg.api_url or cfg.base_url.rstrip("/") + "/api.php"
    queue: list[tuple[str, int]] = [(c.removeprefix("Category:").strip(), 0) for c in cfg.categories]
    visited: set[str] = set()
    out: list[Discovered] = []
    seen: set[str] = set()
    while queue:
        name, depth = queue.pop(0)
        if name in visited:
            continue
        if len(visited) >= cfg.max_categories:
            break
        visited.add(name)
        cont: str | None = None
        while True:
            params = {"action": "query", "list": "categorymembers", "cmtitle": f"Category:{name}",
                      "cmtype": "page|subcat", "cmprop": "ids|title|type", "cmlimit": "500",
                      "format": "json", "formatversion": "2"}
            if cont:
                params["cmcontinue"] = cont
            url = f"{api}?{urlencode(params)}"
            body = _fetch_or_fail(client, url, "api", on_fetch)
            try:
                data = json.loads(body)
            except json.JSONDecodeError as exc:
                raise DiscoveryError(f"{url}: not JSON ({exc})") from exc
            if "error" in data:
                raise DiscoveryError(f"{url}: API error {data['error']}")
            for m in data.get("query", {}).get("categorymembers", []):
                title = m.get("title", "")
                if m.get("ns") == 14 or m.get("type") == "subcat":
                    if depth < cfg.category_depth:
                        queue.append((title.removeprefix("Category:"), depth + 1))
                elif m.get("ns", 0) == 0:
                    u = title_to_url(cfg.base_url, title)
                    if u not in seen and not article_url_problem(u, cfg):
                        seen.add(u)
                        out.append(Discovered(u, "", f"category:{name}"))
                        if cfg.max_articles and len(out) >= cfg.max_articles:
                            return out
            cont = (data.get("continue") or {}).get("cmcontinue")
            if not cont:
                break
    return out


def from_url_file(path: Path, cfg: CrawlConfig) -> tuple[list[Discovered], list[tuple[str, str]]]:
    """An explicit list: one URL per line, ``#`` comments. Returns (kept, [(line, reason) refused])."""
    if not path.is_file():
        raise DiscoveryError(f"URL list {path} does not exist")
    kept: list[Discovered] = []
    refused: list[tuple[str, str]] = []
    seen: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        url = line.split("#", 1)[0].strip()
        if not url or url in seen:
            continue
        problem = article_url_problem(url, cfg)
        if problem:
            refused.append((url, problem))
            continue
        seen.add(url)
        kept.append(Discovered(url, "", f"file:{path.name}"))
        if cfg.max_articles and len(kept) >= cfg.max_articles:
            break
    return kept, refused
