"""Readable text out of wikiHow markup: junk removed, bullets kept, the bold lead split off.

One small renderer is used for every era (an explicit stack, not recursion: a page may nest
thousands of elements). It walks children in order (text nodes included), skips widgets that
would leak into the text (scripts, reference popups, ads, vote boxes, media blocks, step
numbers), turns nested lists into "- " lines and block elements into line breaks, then
normalises whitespace line by line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from selectolax.lexbor import LexborNode

# Tags whose content is never article text.
SKIP_TAGS = frozenset({
    "script", "style", "noscript", "img", "video", "audio", "source", "picture", "iframe", "object",
    "embed", "map", "input", "button", "form", "select", "textarea", "template", "svg", "canvas",
    "-comment", "head", "title", "meta", "link",
})
# Class tokens of page widgets that sit inside step/tip markup (checked on every element).
SKIP_CLASSES = frozenset({
    "reference", "ts_popup", "wh_ad", "wh_ad_inner", "wh_vote_container", "clearall", "scrolltomarker",
    "mwimg", "step_num", "stepanchor", "checkmark", "thumb", "thumbinner", "magnify", "image_details",
    "video-player", "m-video-controls", "m-video-wm", "addTipElement", "editsection", "editsection1",
    "editsectionbutton", "SecL", "SecR", "al_method", "qa_divider", "corner", "rounders", "caption",
    "method_label", "altblock", "toc", "references-small", "references",
})
SKIP_IDS = frozenset({"toc", "method_toc"})
_BLOCK_TAGS = frozenset({
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "tr", "blockquote", "pre", "center",
    "dl", "dt", "dd", "section", "article", "header", "footer", "figure", "figcaption",
})
_LIST_TAGS = frozenset({"ul", "ol"})
_INLINE_WRAPPERS = frozenset({"a", "span", "i", "em", "u", "font", "big", "small", "strong", "b", "code"})
_BOLD_TAGS = frozenset({"b", "strong"})

# punctuation that closes the bold lead sentence when the page leaves it outside the <b>
_CLOSING = re.compile(r"^[.!?:;。！？：；…」』）)”’]+")


def norm(text: str) -> str:
    """Collapse every whitespace run (incl. NBSP and the ideographic space) to one space."""
    return " ".join(text.split())  # str.split() knows every Unicode space, and is fast


def is_junk(node: LexborNode) -> bool:
    tag = node.tag
    if tag in SKIP_TAGS:
        return True
    if tag.startswith("-"):
        return tag != "-text"
    attrs = node.attributes
    if not attrs:
        return False
    cls = attrs.get("class")
    if cls and not SKIP_CLASSES.isdisjoint(cls.split()):
        return True
    if "hidden" in attrs:
        return True
    ident = attrs.get("id")
    if ident and ident in SKIP_IDS:
        return True
    style = attrs.get("style")
    return bool(style) and "display:none" in style.replace(" ", "")


def _render(node: LexborNode, out: list[str], depth: int) -> None:
    _run([(node.iter(include_text=True), depth, False, "")], out)


def _render_child(child: LexborNode, out: list[str], depth: int) -> None:
    _run([(iter((child,)), depth, False, "")], out)


def _run(stack: list[tuple[Iterator[LexborNode], int, bool, str]], out: list[str]) -> None:
    """Render with an explicit stack, never the Python one: nesting depth is the page's choice.

    A frame is (children still to render, list depth, inside a ul/ol, text to add when done).
    Inside a list only ``li`` children count (a list directly inside a list, invalid but seen,
    is flattened); each item starts a "- " line, its content one level deeper.
    """
    append, push, junk, lists, blocks = out.append, stack.append, is_junk, _LIST_TAGS, _BLOCK_TAGS  # hot loop
    while stack:
        children, depth, in_list, tail = stack[-1]
        for child in children:  # siblings in a row; a child with content of its own is a new frame
            tag = child.tag
            if in_list:
                if tag in lists:
                    push((child.iter(), depth, True, ""))
                    break
                if tag == "li" and not junk(child):
                    # \x00 marks the bullet so that line normalisation below can keep its indent
                    append(f"\n\x00{'  ' * depth}- ")
                    push((child.iter(include_text=True), depth + 1, False, "\n"))
                    break
            elif tag == "-text":
                append(child.text_content or "")
            elif junk(child):
                continue
            elif tag == "br":
                append("\n")
            elif tag in lists:
                push((child.iter(), depth, True, ""))
                break
            elif tag in blocks:
                append("\n")
                push((child.iter(include_text=True), depth, False, "\n"))
                break
            else:
                push((child.iter(include_text=True), depth, False, ""))
                break
        else:  # no children left: this frame is done
            stack.pop()
            if tail:
                append(tail)


def render_parts(out: list[str]) -> str:
    """Join rendered pieces into clean lines ("- " bullets kept, empty lines dropped)."""
    lines = []
    for raw in "".join(out).split("\n"):
        if raw.startswith("\x00"):
            body = raw[1:]
            indent = body[: len(body) - len(body.lstrip(" "))]
            text = norm(body)
            if text and text != "-":
                lines.append(indent + text)
        else:
            text = norm(raw)
            if text:
                lines.append(text)
    return "\n".join(lines)


def node_text(node: LexborNode | None) -> str:
    """Readable text of one element (without the junk listed above)."""
    if node is None:
        return ""
    out: list[str] = []
    _render(node, out, 0)
    return render_parts(out)


def inline_text(node: LexborNode | None) -> str:
    """Text of one element on a single line."""
    return norm(node_text(node).replace("\n", " "))


def _bold_text(node: LexborNode, strict_whb: bool) -> str | None:
    """The text of a bold lead piece, or None when ``node`` is not one.

    A piece is <b>/<strong> (``b.whb`` when the page uses that marker), or an inline wrapper
    (a link, a span) whose whole text is bold.
    """
    tag = node.tag
    if tag in _BOLD_TAGS:
        if strict_whb and not _has_class(node, "whb") and node.css_first("b.whb") is None:
            return None
        return _raw_text(node)
    if tag not in _INLINE_WRAPPERS:
        return None
    bold = node.css("b.whb") if strict_whb else node.css("b, strong")
    if not bold:
        return None
    whole = _raw_text(node)
    if norm(whole) and norm(whole) == norm("".join(_raw_text(b) for b in bold)):
        return whole
    return None


def _raw_text(node: LexborNode) -> str:
    """Rendered text with its own spacing kept (a bold run is joined from several pieces)."""
    out: list[str] = []
    _render(node, out, 0)
    return "".join(out).replace("\x00", "")


def _has_class(node: LexborNode, token: str) -> bool:
    cls = node.attributes.get("class")
    return bool(cls) and token in cls.split()


def split_step(container: LexborNode, strict_whb: bool) -> tuple[str, str]:
    """(summary, detail) of one step: the leading bold run, then everything else.

    ``strict_whb`` (wikiHow's ``b.whb`` marker is present on the page) only accepts ``b.whb``
    as the lead; otherwise any leading <b>/<strong> counts (2008-2011 markup).
    """
    children = list(container.iter(include_text=True))
    parts: list[str] = []
    rest_at = len(children)
    for i, child in enumerate(children):
        tag = child.tag
        if tag == "-text":
            text = child.text_content or ""
            if not text.strip():
                if parts:
                    parts.append(text)
                continue
            rest_at = i
            break
        if is_junk(child) or tag == "br" and not parts:
            continue
        bold = _bold_text(child, strict_whb)
        if bold is not None:
            parts.append(bold)
            continue
        if not parts and not node_text(child):  # e.g. a wrapper around the image block
            continue
        rest_at = i
        break
    summary = norm("".join(parts))
    out: list[str] = []
    for child in children[rest_at:]:
        _render_child(child, out, 0)
    detail = render_parts(out)
    if not summary and strict_whb:
        # a b.whb that is not at the start (text before it): still the page's own summary marker
        lead = container.css_first("b.whb")
        summary = norm(node_text(lead)) if lead is not None else ""
        if summary:
            whole = node_text(container)
            at = whole.find(summary)
            detail = whole if at < 0 else render_parts([whole[:at], " ", whole[at + len(summary):]])
        else:  # no b.whb in this step at all: a plain leading <b> is the next best thing
            return split_step(container, strict_whb=False)
    if summary and detail:
        m = _CLOSING.match(detail)
        if m:
            summary += m.group(0)
            detail = detail[m.end():].lstrip()
    return summary, detail
