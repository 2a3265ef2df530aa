"""Page-level facts: decoding, layout detection, identity (id, URL, language, title), categories, JSON-LD.

Everything here is era-independent. The page-config values (``wgArticleId`` ...) are read with
regexes on the raw text because they live in inline scripts whose object is not standalone JSON
(2019+: ``mw.config.set({"wgArticleId":4346099,...})``; before: ``var wgArticleId = "86030";``).
"""

from __future__ import annotations

import codecs
import hashlib
import html as htmllib
import json
import re
from urllib.parse import quote, unquote, urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

from .errors import ParseError
from .text import inline_text, norm

DEFAULT_BASE = "https://www.wikihow.com"

LAYOUT_RESPONSIVE = "responsive-2019"
LAYOUT_DESKTOP = "desktop-2010"
LAYOUT_CLASSIC = "classic-2008"
LAYOUT_FRAGMENT = "app-fragment"
LAYOUT_UNKNOWN = "unknown"

_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I)
_GARBAGE = re.compile("[\x00-\x08\x0b\x0e-\x1f\ufffd]")
_TAG = re.compile(r"<[A-Za-z!/]")
_HTML_TAG = re.compile(r"<(?:html|head|body)[\s>]", re.I)


# Patterns start with the literal key so that `re` can skip through 300 KB pages quickly.
def _cfg_number(key: str) -> re.Pattern[str]:
    return re.compile(key + r"""["']?\s*[:=]\s*["']?(\d+)""")


def _cfg_string(key: str) -> re.Pattern[str]:
    return re.compile(key + r"""["']?\s*[:=]\s*("(?:[^"\\\n]|\\.){0,500}")""")


_ARTICLE_ID = _cfg_number("wgArticleId")
_REVISION = _cfg_number("wgCurRevisionId")
_CATEGORIES = re.compile(r"""wgCategories["']?\s*[:=]\s*(\[[^\]\n]{0,5000}\])""")
_CONTENT_LANG = _cfg_string("wgContentLanguage")
_WG_TITLE = _cfg_string("wgTitle")
_WG_PAGE = _cfg_string("wgPageName")
_WG_SERVER = _cfg_string("wgServer")
_AID = re.compile(r"/aid(\d+)-v\d+-")
_APP_ID = re.compile(r"wikihow://article\?id=(\d+)")
_EDIT_TITLE = re.compile(r"index\.php\?title=([^&\"'#\s]+)&(?:amp;)?action=edit")
_TAGS = re.compile(r"<[^>]*>")
_WIKIHOW = re.compile(r"wiki[Hh]ow|WIKIHOW")

# host -> language for wikiHow's own domains (xx.wikihow.com is handled generically)
_TLD_LANG = {"jp": "ja", "vn": "vi", "it": "it", "cz": "cs", "tr": "tr", "fr": "fr", "de": "de",
             "nl": "nl", "kr": "ko", "tw": "zh-tw", "mx": "es", "pt": "pt", "id": "id", "in": "hi"}


# --------------------------------------------------------------------------- bytes -> text


def decode(html: bytes | str) -> str:
    """Bytes to text: BOM, then the page's meta charset, then UTF-8 with replacement."""
    return decode_for_tree(html)[0]


def decode_for_tree(html: bytes | str) -> tuple[str, bytes | str]:
    """(text, what to hand to lexbor): clean UTF-8 bytes go to lexbor as they are (no re-encoding)."""
    if isinstance(html, str):
        text = html[1:] if html.startswith("\ufeff") else html
        return text, text
    if not isinstance(html, bytes | bytearray | memoryview):
        raise ParseError("not-html", f"expected HTML as bytes or str, got {type(html).__name__}")
    data = bytes(html)
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                       (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            text = data[len(bom):].decode(codec, "replace")
            return text, text
    encoding = "utf-8"
    m = _META_CHARSET.search(data[:8192])
    if m:
        try:
            encoding = codecs.lookup(m.group(1).decode("ascii")).name
        except LookupError:
            encoding = "utf-8"
        if encoding.startswith("utf-16"):  # a meta tag readable as ASCII cannot be UTF-16
            encoding = "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        text = data.decode(encoding, "replace")
        return text, text
    return text, (data if encoding == "utf-8" else text)


def check_text(text: str) -> None:
    """Refuse input that cannot be an HTML page, with the reason."""
    if not text.strip():
        raise ParseError("empty", "the page is empty")
    sample = text[:8192]
    bad = len(_GARBAGE.findall(sample))
    if bad > max(8, len(sample) // 50):
        raise ParseError("not-html", f"the input looks binary ({bad} control/undecodable characters "
                                     f"in the first {len(sample)})")
    if not _TAG.search(text, 0, 65536):
        raise ParseError("not-html", "no HTML tags found")


def parse_tree(source: bytes | str) -> LexborHTMLParser:
    return LexborHTMLParser(source)


# --------------------------------------------------------------------------- detection


def is_fragment(text: str) -> bool:
    """An article body without <html>/<head>/<body> (the 2009/2011 app caches)."""
    return _HTML_TAG.search(text[:20000]) is None


def detect(tree: LexborHTMLParser, text: str) -> str:
    if tree.css_first("div.section.steps") is not None:
        return LAYOUT_RESPONSIVE
    if is_fragment(text):
        return LAYOUT_FRAGMENT
    if "mw.config.set" in text and tree.css_first("#content_wrapper, h1#section_0") is not None:
        return LAYOUT_RESPONSIVE  # no steps (e.g. a quality-review stub) but the 2019+ skin
    if tree.css_first("ol.steps_list_2") is not None:
        return LAYOUT_DESKTOP
    if _ARTICLE_ID.search(text) or tree.css_first("h1.firstHeading") is not None:
        return LAYOUT_CLASSIC
    return LAYOUT_UNKNOWN


def looks_like_wikihow(tree: LexborHTMLParser, text: str, url: str | None) -> bool:
    """Any of several independent signals (markup, hosts, config); none of them English words."""
    # markup written by wikiHow's own skins (case-sensitive on purpose: fast on 300 KB pages)
    if any(s in text for s in ("steps_list_2", "whstatic.com", "relatedwikihows", "class=\"whb\"",
                               "class='whb'", "wikidiy.com")):
        return True
    if url and "wikihow" in (urlsplit(url).hostname or ""):
        return True
    for sel, attr in (('link[rel="canonical"]', "href"), ('meta[property="og:url"]', "content"),
                      ('meta[property="og:site_name"]', "content")):
        node = tree.css_first(sel)
        if node is not None and "wikihow" in (node.attributes.get(attr) or "").lower():
            return True
    return "wgArticleId" in text and _WIKIHOW.search(text) is not None


# --------------------------------------------------------------------------- identity


def _json_string(pattern: re.Pattern[str], text: str) -> str | None:
    m = pattern.search(text)
    if not m:
        return None
    try:
        value = json.loads(m.group(1))
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def config_int(pattern: re.Pattern[str], text: str) -> str | None:
    m = pattern.search(text)
    return m.group(1) if m and m.group(1) != "0" else None


def article_id_from_page(text: str) -> str | None:
    for pattern in (_ARTICLE_ID, _AID, _APP_ID):
        value = config_int(pattern, text)
        if value:
            return value
    return None


def revision(text: str) -> str | None:
    return config_int(_REVISION, text)


def url_hash_id(url: str) -> str:
    """A stable id for pages without a wikiHow article id."""
    return "url-" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def _attr(tree: LexborHTMLParser, selector: str, attr: str) -> str | None:
    node = tree.css_first(selector)
    if node is None:
        return None
    value = (node.attributes.get(attr) or "").strip()
    return value or None


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.hostname:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def page_name(text: str) -> str | None:
    """The MediaWiki page name (``Grill-Zucchini``) from the config or, in app fragments, edit links."""
    name = _json_string(_WG_PAGE, text)
    if name:
        return name
    m = _EDIT_TITLE.search(text)
    return unquote(htmllib.unescape(m.group(1))) if m else None


def canonical_url(tree: LexborHTMLParser, text: str, url: str | None) -> tuple[str, str]:
    """(canonical URL, base for resolving links). The base is the page's own wikiHow host."""
    canonical = _attr(tree, 'link[rel="canonical"]', "href") or _attr(tree, 'meta[property="og:url"]', "content")
    base = None
    for candidate in (canonical, url):
        origin = _origin(candidate)
        if origin and "wikihow" in origin:
            base = origin
            break
    if base is None:
        server = _json_string(_WG_SERVER, text)
        origin = _origin(server)
        base = origin if origin and "wikihow" in origin else DEFAULT_BASE
    if canonical:
        return urljoin(base + "/", canonical), base
    if url:
        return url, base
    name = page_name(text)
    if name:
        return f"{base}/{quote(name.replace(' ', '-'), safe='-()_.,:~!*')}", base
    return "", base


def language(tree: LexborHTMLParser, text: str, url: str) -> str:
    html_node = tree.css_first("html")
    if html_node is not None:
        lang = html_node.attributes.get("lang") or html_node.attributes.get("xml:lang")
        if lang and lang.strip():
            return lang.strip().lower()
    lang = _json_string(_CONTENT_LANG, text)
    if lang:
        return lang.lower()
    host = (urlsplit(url).hostname or "") if url else ""
    if "wikihow" in host:
        first = host.split(".")[0]
        if host.endswith(".wikihow.com") and first not in ("www", "m", "wikihow") and len(first) <= 5:
            return first
        tld = host.rsplit(".", 1)[-1]
        if tld in _TLD_LANG:
            return _TLD_LANG[tld]
    return "en"


def title_and_goal(tree: LexborHTMLParser, text: str, lang: str) -> tuple[str, str]:
    """The title as the page shows it ("How to ...", ja "...方法") and the goal string."""
    h1 = tree.css_first("h1#section_0, h1.firstHeading, #content_wrapper h1, #bodycontents h1")
    title = inline_text(h1) if h1 is not None else ""
    if not title:
        og = _attr(tree, 'meta[property="og:title"]', "content")
        if og:
            title = norm(_TAGS.sub("", htmllib.unescape(og)))
    wg_title = _json_string(_WG_TITLE, text)
    if not title:
        name = wg_title or (page_name(text) or "").replace("-", " ")
        if name:
            title = f"How to {name}" if lang.startswith("en") else norm(name)
    goal = title
    if lang.startswith("en") and wg_title and not title.lower().startswith("how to"):
        goal = f"How to {wg_title}"
    return title, goal


def categories(tree: LexborHTMLParser, text: str, ld: list[dict]) -> list[str]:
    m = _CATEGORIES.search(text)
    found: list[str] = []
    if m:
        try:
            value = json.loads(m.group(1))
            found = [norm(c) for c in value if isinstance(c, str)]
        except ValueError:
            found = []
    if not found:
        for a in tree.css("#breadcrumb a, ul.breadcrumbs a"):
            href = unquote(a.attributes.get("href") or "")
            low = href.lower()
            if "categorylisting" in low or "special:" in low or low.endswith(("main-page", "/")) or not low:
                continue  # "Home" / "Categories" entry points, not categories
            name = inline_text(a)
            if name:
                found.append(name)
    if not found:
        for obj in ld:
            if obj.get("@type") == "BreadcrumbList":
                for item in obj.get("itemListElement") or []:
                    if isinstance(item, dict):
                        name = item.get("name") or (item.get("item") or {}).get("name")
                        if isinstance(name, str) and name.strip():
                            found.append(norm(name))
    return list(dict.fromkeys(c for c in found if c))


# --------------------------------------------------------------------------- JSON-LD


def json_ld(tree: LexborHTMLParser, notes: list[str]) -> list[dict]:
    """Every JSON-LD object on the page, flattened (lists and @graph)."""
    objects: list[dict] = []
    for script in tree.css('script[type="application/ld+json"]'):
        raw = script.text(deep=True)
        try:
            data = json.loads(raw, strict=False)
        except ValueError:
            notes.append("unreadable JSON-LD block skipped")
            continue
        stack = data if isinstance(data, list) else [data]
        while stack:
            item = stack.pop(0)
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                if isinstance(item.get("@graph"), list):
                    stack.extend(item["@graph"])
                objects.append(item)
    return objects


def _is_type(obj: dict, name: str) -> bool:
    t = obj.get("@type")
    return t == name or (isinstance(t, list) and name in t)


def howto_step_counts(ld: list[dict]) -> list[int] | None:
    """Steps per section of the first JSON-LD ``HowTo`` (a flat step list counts as one section)."""
    for obj in ld:
        if not _is_type(obj, "HowTo"):
            continue
        steps = obj.get("step")
        if isinstance(steps, dict):
            steps = [steps]
        if not isinstance(steps, list):
            return None
        counts: list[int] = []
        flat = 0
        for step in steps:
            if isinstance(step, dict) and (_is_type(step, "HowToSection") or "itemListElement" in step):
                items = step.get("itemListElement")
                if flat:
                    counts.append(flat)
                    flat = 0
                counts.append(len(items) if isinstance(items, list) else int(items is not None))
            else:
                flat += 1
        if flat:
            counts.append(flat)
        return counts
    return None
