"""The 2019+ responsive skin (also the 2022 localised sites): one ``div.section.steps`` per method.

Only language-independent hooks are used for structure (``div.section.steps``, ``ol.steps_list_2``,
``div.step``, ``b.whb``, ``.mwimg``, ``#intro``); words are only one signal among several when
naming the kind of a section (method / part) or of a tips-like list.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from ..model import Section, Step
from .media import step_media
from .text import inline_text, node_text, norm, split_step

# "Part 1 of 3" in the languages wikiHow publishes; anything else labelled is a method
_PART_WORDS = re.compile(
    r"^\s*(part|パート|parte|partie|teil|deel|часть|部分|第.部|bagian|phần|ส่วน|جزء|भाग|파트|kısım|část|część)\b",
    re.I)
# tips-like sections: class token / id, then the heading text, per language
_LIST_KINDS = {
    "tips": ("tips", "ポイント", "consejos", "conseils", "tipps", "dicas", "consigli", "tips", "советы",
             "小提示", "提示", "tips", "mẹo", "เคล็ดลับ", "نصائح", "सलाह", "팁", "ipuçları", "rady", "saran"),
    "warnings": ("warnings", "注意事項", "advertencias", "avertissements", "warnungen", "avisos",
                 "avvertenze", "waarschuwingen", "предупреждения", "警告", "cảnh báo", "คำเตือน",
                 "تحذيرات", "चेतावनी", "경고", "uyarılar", "varování", "peringatan"),
    "things_needed": ("thingsyoullneed", "必要なもの", "cosas que necesitarás", "ce dont vous aurez besoin",
                      "was du brauchst", "itens necessários", "cose che ti serviranno", "что вам понадобится",
                      "你需要准备", "những thứ bạn cần", "สิ่งที่คุณจะต้องใช้", "benodigdheden"),
}
_NOT_LISTS = frozenset({"steps", "qa", "relatedwikihows", "references", "sourcesandcitations", "video",
                        "aboutthisarticle", "articleinfo", "ingredients", "hasad", "bss_share_container",
                        "aidata", "relatedarticles", "expertqa", "summary", "thingsyoushouldknow"})


def section_kind_and_title(section: LexborNode) -> tuple[str, str]:
    h3 = section.css_first("h3")
    if h3 is None:
        return "steps", ""  # an unnamed block under the h2 "Steps" / "ステップ" ...
    label = h3.css_first(".method_label") or h3.css_first(".altblock")
    label_text = inline_text(label) if label is not None else ""
    headline = h3.css_first(".mw-headline")
    title = inline_text(headline) if headline is not None else inline_text(h3)
    if not label_text and not title:
        return "steps", ""
    kind = "part" if _PART_WORDS.match(label_text) else "method"
    return kind, title


def parse_steps_list(ol: LexborNode, base: str, strict_whb: bool) -> list[Step]:
    steps = []
    for li in ol.iter():
        if li.tag != "li":
            continue
        media = step_media(li, base)
        body = li.css_first("div.step")
        if body is None:
            summary, detail = split_step(li, strict_whb)
        else:
            summary, detail = split_step(body, strict_whb)
        if not summary and not detail and not media:
            continue
        steps.append(Step(index=len(steps) + 1, summary=summary, detail=detail, media=media))
    return steps


def parse_sections(root: LexborNode, base: str, notes: list[str]) -> list[Section]:
    sections: list[Section] = []
    for block in root.css("div.section.steps"):
        kind, title = section_kind_and_title(block)
        steps: list[Step] = []
        # ol.steps_list_2 since ~2010; a plain top-level <ol> if a skin ever drops the class
        lists = block.css("ol.steps_list_2") or block.css("ol")
        for ol in lists:
            if _inside_li(ol):
                continue  # never a nested list as a step list
            steps.extend(parse_steps_list(ol, base, strict_whb=True))
        if not steps:
            notes.append(f"section {title or kind!r} has no steps; skipped")
            continue
        for i, step in enumerate(steps, 1):
            step.index = i
        sections.append(Section(index=len(sections) + 1, kind=kind, title=title, steps=steps))
    return sections


def _inside_li(node: LexborNode) -> bool:
    parent = node.parent
    while parent is not None and parent.tag not in ("div", "body"):
        if parent.tag == "li":
            return True
        parent = parent.parent
    return False


def intro(root: LexborNode) -> str:
    node = root.css_first("#intro #mf-section-0") or root.css_first("#mf-section-0")
    return node_text(node)


def _list_items(node: LexborNode) -> list[str]:
    items = []
    for ul in node.css("ul"):
        if ul.parent is not None and ul.parent.tag == "li":
            continue
        for li in ul.iter():
            if li.tag == "li":
                text = node_text(li)
                if text:
                    items.append(text)
    return items


def _kind_of(block: LexborNode) -> str | None:
    tokens = set((block.attributes.get("class") or "").lower().split())
    body = block.css_first(".section_text")
    ids = {(body.attributes.get("id") or "").lower()} if body is not None else set()
    heading = block.css_first("h2 .mw-headline") or block.css_first("h2")
    heading_text = norm(heading.text(deep=True)).lower() if heading is not None else ""
    ad = block.css_first(".wh_ad_inner[data-type]")
    ad_type = (ad.attributes.get("data-type") or "") if ad is not None else ""
    for kind, words in _LIST_KINDS.items():
        if ad_type and ad_type in words:
            return kind
        if any(w in tokens or w in ids or w == heading_text for w in words):
            return kind
    return None


def tips_warnings_things(tree: LexborHTMLParser, notes: list[str]) -> dict[str, list[str]]:
    """Tips, warnings and things-needed lists, wherever the page has them."""
    out: dict[str, list[str]] = {"tips": [], "warnings": [], "things_needed": []}
    unnamed: list[LexborNode] = []
    for block in tree.css("div.section"):
        tokens = set((block.attributes.get("class") or "").split())
        if tokens & _NOT_LISTS or block.css_first("h2") is None:
            continue
        kind = _kind_of(block)
        if kind is None:
            # list sections carry their (localised) name as a class token; widgets such as
            # "Reader Success Stories" only have "section sticky"
            if tokens - {"section", "sticky"}:
                unnamed.append(block)
        elif not out[kind]:
            out[kind] = _list_items(block)
    # wikiHow always orders Tips before Warnings: unrecognised headings fill the gaps by position
    for block in unnamed:
        items = _list_items(block)
        if not items:
            continue
        for kind in ("tips", "warnings"):
            if not out[kind]:
                out[kind] = items
                notes.append(f"{kind} recognised by position only")
                break
    return out
