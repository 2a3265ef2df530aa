"""Page-level facts: decoding, layout detection, identity (id, URL, language, title), categories, JSON-LD.

Everything here is era-independent. Decoding repairs what it can and says so in the notes: bytes
that are not the UTF-8 (or other charset) they claim, or that declare nothing and are not UTF-8,
are decoded as charset-normalizer detects them; stray Latin-1 bytes in a UTF-8 page are read as
windows-1252; tags nested absurdly deep are flattened before lexbor sees them (its tree builder
is quadratic in the nesting depth: 100k nested ``<div>`` took ~10 s). The page-config values (``wgArticleId`` ...) are read with
regexes on the raw text because they live in inline scripts whose object is not standalone JSON
(2019+: ``mw.config.set({"wgArticleId":4346099,...})``; before: ``var wgArticleId = "86030";``).
"""

from __future__ import annotations

import codecs
import hashlib
import html as htmllib
import json
import re
from collections import Counter
from urllib.parse import quote, unquote, urljoin, urlsplit

import numpy as np
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
    """Bytes to text: BOM, then the page's meta charset, then UTF-8, then what the bytes look like."""
    return decode_for_tree(html)[0]


# windows-1252 for every byte, the five it leaves undefined as Latin-1 (C1 controls, removed later)
_CP1252 = [bytes([b]).decode("cp1252", "ignore") or chr(b) for b in range(256)]
_CP1252_ERRORS = "wikihow-tiir-cp1252"


def _cp1252_fallback(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeDecodeError):
        raise err
    return "".join(_CP1252[b] for b in err.object[err.start:err.end]), err.end


codecs.register_error(_CP1252_ERRORS, _cp1252_fallback)
_ASCII = bytes(range(128))
# labels the HTML standard decodes as windows-1252 (Python's latin-1 would turn “ ” – into controls)
_AS_CP1252 = frozenset({"ascii", "iso8859-1", "latin-1"})


def _declared_charset(data: bytes) -> str | None:
    m = _META_CHARSET.search(data[:8192])
    if not m:
        return None
    try:
        name = codecs.lookup(m.group(1).decode("ascii")).name
    except LookupError:
        return None
    if name.startswith("utf-16"):  # a meta tag readable as ASCII cannot be UTF-16
        return "utf-8"
    return "cp1252" if name in _AS_CP1252 else name


def decode_for_tree(html: bytes | str, notes: list[str] | None = None) -> tuple[str, bytes | str]:
    """(text, what to hand to lexbor): clean UTF-8 bytes go to lexbor as they are (no re-encoding).

    Repairs (a wrong or missing charset, undecodable bytes) are described in ``notes``.
    """
    if notes is None:
        notes = []
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
            bad = text.count("\ufffd")
            if bad:
                notes.append(f"{bad} byte sequence(s) that are not valid {codec} replaced")
            return text, text
    declared = _declared_charset(data)
    encoding = declared or "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        text = _repair(data, declared, notes)
        return text, text
    if encoding != "utf-8" and not data.isascii():
        # non-ASCII bytes that form valid UTF-8 are UTF-8 whatever the page claims: legacy
        # text almost never does (a template that says iso-8859-1 around UTF-8 content does)
        try:
            utf8 = data.decode("utf-8")
        except UnicodeDecodeError:
            return text, text
        notes.append(f"decoded as utf-8: the page declares {declared} but its bytes are UTF-8")
        return utf8, data
    return text, (data if encoding == "utf-8" else text)


def _repair(data: bytes, declared: str | None, notes: list[str]) -> str:
    """Bytes that are not valid in the declared charset (or, declaring none, not valid UTF-8)."""
    if declared not in (None, "utf-8"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            notes.append(f"decoded as utf-8: the page declares {declared} but its bytes are UTF-8")
            return text
    loose = data.decode("utf-8", "replace")
    bad = loose.count("\ufffd") - data.count("\ufffd".encode())
    valid = len(loose) - (len(data) - len(data.translate(None, _ASCII))) - bad  # non-ASCII characters
    if declared in (None, "utf-8") and valid > bad:
        # mostly UTF-8: the odd bytes are most likely Latin-1 text pasted in (café), not UTF-8
        notes.append(f"{bad} invalid UTF-8 byte sequence(s) read as windows-1252")
        return data.decode("utf-8", _CP1252_ERRORS)
    guess = _detect(data)
    if guess is not None:
        why = f"the page declares {declared} but is not valid {declared}" if declared else \
            "no charset declared and the bytes are not UTF-8"
        notes.append(f"decoded as {guess} (detected): {why}")
        return data.decode(guess, "replace")
    encoding = declared or "utf-8"
    text = data.decode(encoding, "replace")
    notes.append(f"{text.count(chr(0xFFFD))} byte sequence(s) that are not valid {encoding} replaced")
    return text


def _detect(data: bytes) -> str | None:
    """The encoding charset-normalizer finds most plausible; ties go to windows-1252.

    Pages are mostly ASCII markup, so for Western text several single-byte code pages tie
    (cp1250 reads "crème" as "crčme"); windows-1252 is what the HTML standard assumes for
    undeclared legacy pages.
    """
    from charset_normalizer import from_bytes

    results = from_bytes(data)
    best = results.best()
    if best is None:
        return None
    for match in results:
        if match.encoding == "cp1252" and (match.chaos, match.coherence) == (best.chaos, best.coherence):
            return "cp1252"
    return best.encoding


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


# --------------------------------------------------------------------------- control characters

# C0 controls but tab and newline, DEL, C1 controls: never text (BEL, ESC, NUL ... from broken
# pages or &#7; references). Whitespace controls (CR, VT, FF, FS-US, NEL) are already collapsed by
# the text normaliser wherever they separate words.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_C0_BYTES = bytes([*range(0, 9), *range(11, 32), 127])
_C1_UTF8 = re.compile(rb"\xc2[\x80-\x9f]")


def _clean(value: str, counter: list[int]) -> str:
    if not _CONTROLS.search(value):
        return value
    cleaned, n = _CONTROLS.subn("", value)
    counter[0] += n
    return cleaned


def _article_strings(article) -> list[str]:
    out = [article.url, article.title, article.goal, article.intro, *article.categories, *article.tips,
           *article.warnings, *article.things_needed]
    for section in article.sections:
        out.append(section.title)
        for step in section.steps:
            out.append(step.summary)
            out.append(step.detail)
            for m in step.media:
                out += (m.url, m.alt, m.license, m.large_url or "", m.poster_url or "")
    return out


def strip_controls(article) -> int:
    """Remove control characters from every text and URL field of ``article``; how many."""
    # the usual case (none) decided on the UTF-8 bytes: bytes.translate is ~3x faster than the
    # regex on the text; C1 controls are \xc2\x80-\x9f there
    data = "".join(set(_article_strings(article))).encode("utf-8", "surrogatepass")  # licences repeat
    if len(data.translate(None, _C0_BYTES)) == len(data) and (b"\xc2" not in data or not _C1_UTF8.search(data)):
        return 0
    counter = [0]
    for name in ("url", "title", "goal", "intro"):
        setattr(article, name, _clean(getattr(article, name), counter))
    for name in ("categories", "tips", "warnings", "things_needed"):
        setattr(article, name, [_clean(v, counter) for v in getattr(article, name)])
    for section in article.sections:
        section.title = _clean(section.title, counter)
        for step in section.steps:
            step.summary = _clean(step.summary, counter)
            step.detail = _clean(step.detail, counter)
            for m in step.media:
                m.url, m.alt, m.license = _clean(m.url, counter), _clean(m.alt, counter), _clean(m.license, counter)
                m.large_url = _clean(m.large_url, counter) if m.large_url else m.large_url
                m.poster_url = _clean(m.poster_url, counter) if m.poster_url else m.poster_url
    return counter[0]


# --------------------------------------------------------------------------- nesting depth

MAX_NESTING = 512  # real wikiHow pages nest ~25 elements deep
# per byte after "<": +1 a start tag (letter), -1 an end tag ("/"), 0 anything else
_TAG_STEP = np.zeros(256, np.int32)
_TAG_STEP[list(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")] = 1
_TAG_STEP[ord("/")] = -1
# A tag ends at ">" or, unclosed, before the next "<": never scanning on to the next ">" keeps this
# linear on junk like "<a<a<a..." (a tag without its ">" made the regex retry to the end each time)
_TOKEN = re.compile(r"<!--.*?(?:-->|\Z)|<(script|style|textarea|title|xmp)\b[^<>]*>.*?(?:</\1\s*>|\Z)"
                    r"|<(/?)([A-Za-z][^\s/<>]*)([^<>]*)(?:>|(?=<)|\Z)", re.S | re.I)
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
                   "track", "wbr", "param", "keygen", "basefont", "bgsound", "frame", "command", "image"})
_CLOSES_P = frozenset({"address", "article", "aside", "blockquote", "center", "details", "dialog", "dir", "div",
                       "dl", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
                       "h6", "header", "hgroup", "hr", "main", "menu", "nav", "ol", "p", "pre", "section",
                       "summary", "table", "ul", "li", "dd", "dt", "listing", "search"})
_SCOPE = frozenset({"html", "body", "table", "td", "th", "caption", "button", "object", "marquee", "template",
                    "applet"})
# start tag -> (open elements it closes, elements that stop the search): HTML's optional end tags
_IMPLIED = {
    "li": (frozenset({"li"}), _SCOPE | {"ul", "ol", "menu"}),
    "dd": (frozenset({"dd", "dt"}), _SCOPE | {"dl"}),
    "dt": (frozenset({"dd", "dt"}), _SCOPE | {"dl"}),
    "td": (frozenset({"td", "th"}), _SCOPE - {"td", "th"} | {"tr"}),
    "th": (frozenset({"td", "th"}), _SCOPE - {"td", "th"} | {"tr"}),
    "tr": (frozenset({"tr", "td", "th"}), frozenset({"table", "tbody", "thead", "tfoot", "html"})),
    "tbody": (frozenset({"tbody", "thead", "tfoot", "tr", "td", "th"}), frozenset({"table", "html"})),
    "thead": (frozenset({"tbody", "thead", "tfoot", "tr", "td", "th"}), frozenset({"table", "html"})),
    "tfoot": (frozenset({"tbody", "thead", "tfoot", "tr", "td", "th"}), frozenset({"table", "html"})),
    "option": (frozenset({"option"}), frozenset({"select", "datalist", "optgroup", "html"})),
    "optgroup": (frozenset({"option", "optgroup"}), frozenset({"select", "html"})),
}
_P = (frozenset({"p"}), _SCOPE)
_CONTAINERS = frozenset({"ul", "ol", "menu", "dl", "table", "tbody", "thead", "tfoot", "tr", "select", "colgroup",
                         "optgroup", "datalist"})
_LOOK = 64  # how far down the open elements an implied end tag is looked for
# fewer "<" than this and no nesting can make lexbor slow (depth <= tags; ~0.1 s at worst) nor
# anything else (the renderer and walkers use explicit stacks): such pages skip the estimate
_FEW_TAGS = 8192


def nesting_estimate(source: bytes | str) -> int:
    """A cheap upper estimate of the element nesting depth: start tags minus end tags, at most.

    One vectorised pass (~0.05 ms for a 300 KB page); it over-counts void and unclosed elements
    (real pages reach ~230), which only means the exact pass below runs on them.
    """
    data = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
    a = np.frombuffer(data, np.uint8)
    if len(a) < 2:
        return 0
    lt = np.flatnonzero(a[:-1] == 60)
    if len(lt) <= MAX_NESTING:
        return len(lt)
    return int(np.cumsum(_TAG_STEP[a[lt + 1]]).max())


def bound_nesting(source: bytes | str, notes: list[str], limit: int = MAX_NESTING) -> bytes | str:
    """``source`` with elements nested deeper than ``limit`` flattened (their tags dropped, text kept).

    Follows HTML's tree building closely enough for depth: void elements, raw-text elements,
    comments, optional end tags (p, li, dd/dt, table parts, option) and end tags that close
    several open elements. Only pages with more than ``_FEW_TAGS`` tags that the cheap estimate
    flags are scanned tag by tag.
    """
    data = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
    tags = int(np.count_nonzero(np.frombuffer(data, np.uint8) == 60))  # faster than bytes.count
    if tags <= _FEW_TAGS or nesting_estimate(data) <= limit:
        return source
    text = source if isinstance(source, str) else source.decode("utf-8", "replace")
    stack: list[str] = []
    open_count: Counter[str] = Counter()
    pending: Counter[str] = Counter()  # end tags still to drop, of the start tags dropped
    dropped_names: set[str] = set()
    cuts: list[tuple[int, int]] = []
    dropped = 0

    def pop_to(i: int) -> None:
        for name in stack[i:]:
            open_count[name] -= 1
        del stack[i:]
        if len(stack) < limit:
            pending.clear()  # the element that held the dropped ones is closed: so are they

    def close_implied(targets: frozenset[str], stop: frozenset[str]) -> None:
        for i in range(len(stack) - 1, max(-1, len(stack) - 1 - _LOOK), -1):
            if stack[i] in targets:
                pop_to(i)
                return
            if stack[i] in stop:
                return

    for m in _TOKEN.finditer(text):
        name = m.group(3)
        if name is None:  # a comment, or a script/style/... with its raw content
            continue
        name = name.lower()
        if m.group(2):  # an end tag
            if pending[name]:
                pending[name] -= 1
                cuts.append(m.span())
            elif open_count[name]:
                i = len(stack) - 1
                while stack[i] != name:
                    i -= 1
                pop_to(i)
            elif name in dropped_names:
                cuts.append(m.span())
            continue
        if name in _VOID or m.group(4).endswith("/"):
            continue
        if name in _CLOSES_P and open_count["p"]:
            close_implied(*_P)
        implied = _IMPLIED.get(name)
        if implied is not None:
            close_implied(*implied)
        # a list or table needs room for its item below it: text flattened straight into a <ul>
        # would not be read as text (nor placed there by the parser)
        if len(stack) >= (limit - 1 if name in _CONTAINERS else limit):
            cuts.append(m.span())
            pending[name] += 1
            dropped_names.add(name)
            dropped += 1
            continue
        stack.append(name)
        open_count[name] += 1
    if not cuts:
        return source
    notes.append(f"{dropped} element(s) nested deeper than {limit} levels flattened (their text is kept)")
    parts, at = [], 0
    for start, end in cuts:
        parts.append(text[at:start])
        at = end
    parts.append(text[at:])
    return "".join(parts)


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
        except RecursionError:  # json's parser recurses once per nesting level
            notes.append("unreadable JSON-LD block skipped (nested too deeply)")
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
