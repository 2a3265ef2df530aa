"""Step images and videos of one step (``li``), for every era.

2019+: ``div.mwimg`` holds either ``video.m-video[data-src][data-poster]`` or a lazy
``img.whcdn[data-src][data-srclarge]`` plus a ``<noscript>`` copy (never counted twice) and a
hidden ``.image_details`` JSON with sizes and the per-image licence. 2008-2011: MediaWiki thumbs
``div.thumb ... a.image > img[src]`` with a magnifier icon to skip.
"""

from __future__ import annotations

import html as htmllib
import json
import re
from functools import lru_cache
from urllib.parse import quote, urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from ..model import Media
from .text import node_text, norm

VIDEO_BASE = "https://www.wikihow.com/video"
_THUMB = re.compile(r"^(?P<head>.*?/images(?:_[a-z]{2})?)/thumb/(?P<hash>[0-9a-f]/[0-9a-f]{2})/(?P<file>[^/]+)/[^/]+$")
_ICONS = ("magnify-clip", "/skins/", "/extensions/", "data:image")


def _absolute(url: str | None, base: str) -> str | None:
    if not url:
        return None
    url = url.strip()
    if not url or url.startswith(("data:", "javascript:", "#")):
        return None
    if url.startswith(("https://", "http://")):
        return url
    if url.startswith("//"):
        return "https:" + url
    if url.startswith("/"):
        return base + url
    return urljoin(base + "/", url)


def _int(value) -> int | None:
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


@lru_cache(maxsize=256)
def licence_text(licensing: str) -> str:
    """The ``licensing`` HTML of ``.image_details`` as plain text (the same few strings repeat)."""
    if not licensing or "<" not in licensing and "&" not in licensing:
        return norm(licensing)
    tree = LexborHTMLParser(f"<div>{htmllib.unescape(licensing)}</div>")
    return norm(node_text(tree.css_first("div")).replace("\n", " "))


def _image_details(block: LexborNode) -> dict:
    node = block.css_first(".image_details span") or block.css_first(".image_details")
    if node is None:
        return {}
    try:
        data = json.loads(node.text(deep=True), strict=False)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _video(block: LexborNode, base: str) -> Media | None:
    video = block.css_first("video")
    if video is None:
        return None
    attrs = video.attributes
    src = (attrs.get("data-src") or attrs.get("src") or "").strip()
    if not src:
        source = video.css_first("source[src]")
        src = (source.attributes.get("src") or "").strip() if source is not None else ""
    if not src:
        return None
    if src.startswith(("http://", "https://", "//")):
        url = _absolute(src, base)
    else:
        # wikiHow serves step clips from /video/<hash path>; the path has raw spaces in it
        url = VIDEO_BASE + quote(src if src.startswith("/") else "/" + src, safe="/%()-_.~")
    poster = _absolute(attrs.get("data-poster") or attrs.get("poster"), base)
    return Media(kind="video", url=url or "", poster_url=poster, alt=norm(attrs.get("alt") or ""))


def _placement(img: LexborNode, src: str) -> str:
    """"icon" (magnifier, logo, UI), "noscript" (the duplicate copy) or "content"."""
    if any(s in src for s in _ICONS):
        return "icon"
    parent = img.parent
    while parent is not None and parent.tag not in ("li", "body"):
        if parent.tag == "noscript":
            return "noscript"
        cls = parent.attributes.get("class")
        if cls and ("magnify" in cls or "m-video-wm" in cls or "internal" in cls.split()):
            return "icon"
        parent = parent.parent
    return "content"


def _image(block: LexborNode, base: str) -> Media | None:
    details = _image_details(block)
    chosen = fallback = None
    for img in block.css("img"):
        attrs = img.attributes
        src = attrs.get("data-src") or attrs.get("src") or ""
        if not src.strip():
            continue
        placement = _placement(img, src)
        if placement == "noscript":
            fallback = fallback or img
        elif placement == "content":
            chosen = img
            break
    img = chosen or fallback
    if img is None and not details.get("smallUrl"):
        return None
    attrs = img.attributes if img is not None else {}
    url = _absolute(attrs.get("data-src") or attrs.get("src"), base) or _absolute(details.get("smallUrl"), base)
    if not url:
        return None
    large = _absolute(attrs.get("data-srclarge") or attrs.get("data-src-large") or details.get("bigUrl"), base)
    if large is None:
        m = _THUMB.match(url)
        if m and "/v4-" not in url:  # old MediaWiki thumb: the original file sits beside it
            large = f"{m.group('head')}/{m.group('hash')}/{m.group('file')}"
    width = _int(attrs.get("data-width") or attrs.get("width") or details.get("smallWidth"))
    height = _int(attrs.get("data-height") or attrs.get("height") or details.get("smallHeight"))
    alt = norm(attrs.get("alt") or "")
    if not alt:
        caption = block.css_first(".caption, .thumbcaption")
        alt = norm(caption.text(deep=True)) if caption is not None else ""
    return Media(kind="image", url=url, large_url=large, width=width, height=height,
                 license=licence_text(str(details.get("licensing") or "")), alt=alt)


def step_media(li: LexborNode, base: str) -> list[Media]:
    """The images/videos of one step, in page order, each URL once."""
    blocks = li.css("div.mwimg")
    if not blocks:
        blocks = li.css("div.thumb") or li.css("a.image") or li.css("video")
    found: list[Media] = []
    seen: set[str] = set()
    for block in blocks:
        if block.tag == "div" and block.parent is not None and _inside_block(block, blocks):
            continue  # a block nested in another one (stray wrappers): the outer one is read
        media = _video(block, base) or _image(block, base)
        if media is None or media.url in seen:
            continue
        seen.add(media.url)
        found.append(media)
    return found


def _inside_block(block: LexborNode, blocks: list[LexborNode]) -> bool:
    parent = block.parent
    others = {b.mem_id for b in blocks if b.mem_id != block.mem_id}
    while parent is not None and parent.tag not in ("li", "body"):
        if parent.mem_id in others:
            return True
        parent = parent.parent
    return False
