"""wikiHow HTML -> :class:`~wikihow_tiir.model.Article`, for every layout era we have seen.

    from wikihow_tiir.parse import parse_html, ParseError, detect_layout
    article = parse_html(page_bytes, url=None)

Layouts (``detect_layout``): ``responsive-2019`` (2019+ skin, also the 2022 localised sites),
``desktop-2010`` (``ol.steps_list_2`` without per-method containers), ``classic-2008`` (plain
lists under h2/h3 headings), ``app-fragment`` (article bodies cached by the 2009/2011 apps),
``unknown``. Pages that give no article raise :class:`ParseError` with a short ``reason``;
findings that do not stop parsing (a JSON-LD step count that differs from the DOM, a truncated
page, headings without steps) and repairs (a wrong or missing charset, control characters removed,
absurdly deep nesting flattened, an unreadable JSON-LD block skipped) go to ``Article.parse_notes``.
"""

from __future__ import annotations

import hashlib

from selectolax.lexbor import LexborHTMLParser, LexborNode

from ..model import Article, Section
from . import legacy, responsive
from .errors import ParseError
from .page import (
    LAYOUT_RESPONSIVE,
    article_id_from_page,
    bound_nesting,
    canonical_url,
    categories,
    check_text,
    decode_for_tree,
    detect,
    howto_step_counts,
    is_fragment,
    json_ld,
    language,
    looks_like_wikihow,
    parse_tree,
    revision,
    strip_controls,
    title_and_goal,
    url_hash_id,
)
from .text import split_step

__all__ = ["ParseError", "detect_layout", "parse_html"]

def detect_layout(html: bytes | str) -> str:
    """The page's layout era: "responsive-2019" | "desktop-2010" | "classic-2008" | "app-fragment" | "unknown"."""
    try:
        text, source = decode_for_tree(html)
        check_text(text)
    except ParseError:
        return "unknown"
    return detect(parse_tree(bound_nesting(source, [])), text)


def parse_html(html: bytes | str, url: str | None = None) -> Article:
    """Parse one wikiHow page. Raises :class:`ParseError` (``.reason``) when no article can be read."""
    try:
        return _parse(html, url)
    except ParseError:
        raise
    except Exception as exc:  # a parser bug must still reach the caller as a reasoned reject
        raise ParseError("parser-error", f"unexpected {type(exc).__name__} while parsing: {exc}") from exc


def _parse(html: bytes | str, url: str | None) -> Article:
    raw = html if isinstance(html, bytes | bytearray | memoryview) else None
    notes: list[str] = []
    text, source = decode_for_tree(html, notes)
    check_text(text)
    tree = parse_tree(bound_nesting(source, notes))
    if not looks_like_wikihow(tree, text, url):
        raise ParseError("not-wikihow", "no wikiHow markup, host or page config found in this page")
    layout = detect(tree, text)
    canonical, base = canonical_url(tree, text, url)
    lang = language(tree, text, canonical or url or "")
    ld = json_ld(tree, notes)
    strict_whb = tree.css_first("b.whb") is not None

    if layout == LAYOUT_RESPONSIVE:
        root = tree.css_first("#content_wrapper") or tree.body or tree.root
        sections = responsive.parse_sections(root, base, notes)
        intro = responsive.intro(root)
        lists = responsive.tips_warnings_things(tree, notes)
    else:
        sections, intro, lists = legacy.parse(tree, base, strict_whb, notes)

    truncated = not is_fragment(text) and "</html" not in text[-16384:].lower()
    if truncated:
        sections = _drop_cut_step(tree, sections, strict_whb, notes)
        if not sections:
            raise ParseError("truncated", "the page is cut off before any complete step")
    if not sections:
        counts = howto_step_counts(ld)
        hint = (f"; its JSON-LD HowTo lists {sum(counts)} steps, so the markup may have changed"
                if counts else " (a quality-review notice, a stub or not an article)")
        raise ParseError("no-steps", f"no step list found in this {layout} page{hint}")
    _cross_check(ld, sections, notes)
    _check_steps(sections, notes)
    title, goal = title_and_goal(tree, text, lang)
    article_id = article_id_from_page(text) or url_hash_id(canonical or url or title)
    if lang and lang != "en" and article_id.isdigit():
        # each language wiki numbers its articles separately (ja 4503712 vs en 4346099 overlap):
        # prefix the language so document ids stay unique in a multilingual corpus
        article_id = f"{lang}-{article_id}"
    if raw is not None:
        digest = hashlib.sha256(bytes(raw)).hexdigest()
    else:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    article = Article(
        id=article_id, url=canonical or url or "", lang=lang, title=title, goal=goal, intro=intro,
        categories=categories(tree, text, ld), sections=sections,
        tips=lists.get("tips", []), warnings=lists.get("warnings", []),
        things_needed=lists.get("things_needed", []), revision=revision(text), layout=layout,
        parse_notes=notes, sha256=digest,
    )
    removed = strip_controls(article)
    if removed:
        article.parse_notes.append(f"{removed} control character(s) removed from the text")
    return article


def _last_node(tree: LexborHTMLParser) -> LexborNode | None:
    node = tree.root
    while node is not None and node.last_child is not None:
        node = node.last_child
    return node


def _drop_cut_step(tree: LexborHTMLParser, sections: list[Section], strict_whb: bool,
                   notes: list[str]) -> list[Section]:
    """A page without its closing </html>: drop the last step if the cut fell inside it."""
    node = _last_node(tree)
    li = None
    while node is not None:
        if node.tag == "li" and node.parent is not None and node.parent.tag == "ol":
            li = node
        node = node.parent
    if li is None or not sections:
        notes.append("page truncated (no closing </html>); the steps before the cut are complete")
        return sections
    body = li.css_first("div.step") or li
    cut = split_step(body, strict_whb)
    last = sections[-1]
    if (last.steps[-1].summary, last.steps[-1].detail) == cut:
        dropped = last.steps.pop()
        notes.append(f"page truncated inside step {dropped.index} of section {last.index}; that step was dropped")
        if not last.steps:
            sections = sections[:-1]
    else:
        notes.append("page truncated (no closing </html>) outside the steps")
    return sections


def _check_steps(sections: list[Section], notes: list[str]) -> None:
    """Non-fatal findings about steps: missing bold leads, one picture used by several steps."""
    no_summary = [f"{s.index}.{st.index}" for s in sections for st in s.steps if not st.summary]
    if no_summary:
        notes.append(f"{len(no_summary)} step(s) without a bold summary: " + ", ".join(no_summary[:10]))
    seen: dict[str, str] = {}
    repeated: list[str] = []
    for s in sections:
        for st in s.steps:
            for m in st.media:
                where = f"{s.index}.{st.index}"
                if m.url in seen and seen[m.url] != where:
                    repeated.append(f"{where} repeats {seen[m.url]}")
                seen.setdefault(m.url, where)
    if repeated:
        notes.append("same media URL in several steps: " + ", ".join(repeated[:10]))


def _cross_check(ld: list[dict], sections: list[Section], notes: list[str]) -> None:
    counts = howto_step_counts(ld)
    if counts is None:
        return
    dom = [len(s.steps) for s in sections]
    if sum(counts) != sum(dom):
        notes.append(f"json-ld HowTo has {sum(counts)} steps, DOM has {sum(dom)}")
    elif len(counts) > 1 and counts != dom:
        notes.append(f"json-ld HowTo steps per section {counts}, DOM {dom}")
