"""2008-2012 markup: the classic skin, the ~2010 desktop skin and the 2009/2011 app fragments.

These pages have no per-method containers. Methods are ``h3`` headings followed by a list, and in
the classic skin ``div#steps`` may close before the later methods, so the document is walked in
order as a flat sequence of headings, lists and paragraphs (nested lists stay inside their step).
The steps region runs from the "Steps" ``h2`` to the next ``h2``.
"""

from __future__ import annotations

from collections.abc import Iterator

from selectolax.lexbor import LexborHTMLParser, LexborNode

from ..model import Section, Step
from .media import step_media
from .text import inline_text, is_junk, node_text, norm, split_step

_HEADINGS = frozenset({"h2", "h3", "h4"})
# the steps heading in the languages of old wikiHow sites (one signal; the other is "has a list")
_STEPS_WORDS = frozenset({"steps", "ステップ", "pasos", "étapes", "schritte", "passi", "passos", "stappen",
                          "шаги", "步骤", "langkah", "các bước", "ขั้นตอน", "الخطوات", "चरण", "단계", "adımlar"})
_LIST_WORDS = {
    "tips": frozenset({"tips", "ポイント", "consejos", "conseils", "tipps", "dicas", "consigli", "советы"}),
    "warnings": frozenset({"warnings", "注意事項", "advertencias", "avertissements", "warnungen", "avisos",
                           "avvertenze", "предупреждения"}),
    "things_needed": frozenset({"things you'll need", "things you’ll need", "必要なもの",
                                "cosas que necesitarás"}),
}
_LIST_IDS = {"tips": "tips", "warnings": "warnings", "things_needed": "thingsyoullneed"}
_WALK_SKIP_IDS = frozenset({"toc", "breadcrumb", "gatBreadCrumb", "article_tabs", "originators", "sidebar",
                            "footer", "header", "bottom_ads", "article_info_header"})


def _walk(node: LexborNode) -> Iterator[tuple[str, LexborNode]]:
    """Headings, lists and paragraphs in document order, never descending into them.

    An explicit stack of child iterators, not recursion (the nesting depth is the page's choice).
    """
    stack = [node.iter()]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            continue
        tag = child.tag
        if tag in _HEADINGS:
            yield "heading", child
        elif tag in ("ol", "ul"):
            yield "list", child
        elif tag == "p":
            yield "p", child
        elif tag in ("script", "style", "noscript", "table") or is_junk(child):
            continue
        elif (child.attributes.get("id") or "") in _WALK_SKIP_IDS:
            continue
        else:
            stack.append(child.iter())


def heading_text(h: LexborNode) -> str:
    return inline_text(h)


def _content_root(tree: LexborHTMLParser) -> LexborNode | None:
    return (tree.css_first("#bodycontents") or tree.css_first("#bodyContent") or tree.css_first("#article")
            or tree.css_first("#content") or tree.body or tree.root)


def _regions(items: list[tuple[str, LexborNode]]) -> list[tuple[LexborNode | None, list]]:
    """Split the flat sequence at every h2: [(h2 or None, [items...])]."""
    regions: list[tuple[LexborNode | None, list]] = [(None, [])]
    for kind, node in items:
        if kind == "heading" and node.tag == "h2":
            regions.append((node, []))
        else:
            regions[-1][1].append((kind, node))
    return regions


def _is_steps_heading(h2: LexborNode | None) -> bool:
    if h2 is None:
        return False
    return norm(heading_text(h2)).lower() in _STEPS_WORDS


def _has_list(items: list) -> bool:
    return any(kind == "list" and node.tag == "ol" for kind, node in items)


def parse(tree: LexborHTMLParser, base: str, strict_whb: bool, notes: list[str]) -> tuple[
        list[Section], str, dict[str, list[str]]]:
    """(sections, intro, {"tips", "warnings", "things_needed"}) of a 2008-2012 page."""
    root = _content_root(tree)
    if root is None:
        return [], "", {}
    items = list(_walk(root))
    regions = _regions(items)
    steps_at = next((i for i, (h2, _) in enumerate(regions) if _is_steps_heading(h2) and _has_list(regions[i][1])),
                    None)
    if steps_at is None:  # unknown language: the first h2 region that holds a numbered list
        steps_at = next((i for i, (h2, body) in enumerate(regions) if h2 is not None and _has_list(body)), None)
    if steps_at is None and _has_list(regions[0][1]):
        steps_at = 0  # a fragment that is nothing but the step list
    sections: list[Section] = []
    intro_parts: list[str] = []
    if steps_at is not None:
        for kind, node in regions[0][1] if steps_at > 0 else []:
            if kind == "p":
                intro_parts.append(node_text(node))
        sections = _sections(regions[steps_at][1], base, strict_whb, notes)
    lists = _lists(tree, regions)
    return sections, "\n".join(p for p in intro_parts if p), lists


def _sections(items: list, base: str, strict_whb: bool, notes: list[str]) -> list[Section]:
    sections: list[Section] = []
    title: str | None = None  # None: the unnamed block before the first h3
    lists: list[LexborNode] = []
    empty: list[str] = []

    def close() -> None:
        # numbered lists are the steps; a method written as a bullet list (2010) counts when it has no <ol>
        chosen = [n for n in lists if n.tag == "ol"]
        if not chosen and title is not None:
            chosen = [n for n in lists if n.tag == "ul"][:1]
        steps = [step for ol in chosen for step in _steps(ol, base, strict_whb)]
        for i, step in enumerate(steps, 1):
            step.index = i
        if steps:
            sections.append(Section(index=len(sections) + 1, kind="steps" if title is None else "method",
                                    title=title or "", steps=steps))
        elif title is not None:
            empty.append(title)
        lists.clear()

    for kind, node in items:
        if kind == "heading":
            close()
            title = heading_text(node)
        elif kind == "list":
            lists.append(node)
    close()
    if empty:
        notes.append(f"{len(empty)} method heading(s) without a step list skipped: " + "; ".join(empty))
    return sections


def _steps(ol: LexborNode, base: str, strict_whb: bool) -> list[Step]:
    steps = []
    for li in ol.iter():
        if li.tag != "li":
            continue
        summary, detail = split_step(li, strict_whb)
        media = step_media(li, base)
        if summary or detail or media:
            steps.append(Step(index=len(steps) + 1, summary=summary, detail=detail, media=media))
    return steps


def _lists(tree: LexborHTMLParser, regions: list) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"tips": [], "warnings": [], "things_needed": []}
    for kind, ident in _LIST_IDS.items():
        node = tree.css_first(f"#{ident}")
        if node is not None:
            out[kind] = _items(node.css("ul"))
    for h2, body in regions:
        if h2 is None:
            continue
        name = norm(heading_text(h2)).lower()
        for kind, words in _LIST_WORDS.items():
            if name in words and not out[kind]:
                out[kind] = _items([node for k, node in body if k == "list"])
    return out


def _items(lists: list[LexborNode]) -> list[str]:
    found = []
    for ul in lists:
        if ul.parent is not None and ul.parent.tag == "li":
            continue
        for li in ul.iter():
            if li.tag == "li":
                text = node_text(li)
                if text:
                    found.append(text)
    return found
