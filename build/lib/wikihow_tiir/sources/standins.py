"""Locally rendered stand-ins for step images that cannot be fetched offline.

wikiHow's image CDN is unreachable from the build machines and no real step-image bytes exist
in any reachable source, so the bundled sample archive carries a *card* for every step image:
a background colour and a few shapes derived from a hash of the image URL (so different steps
look different and get different perceptual hashes), the article goal and the step summary,
and a banner saying plainly that this is a stand-in. Archive records of these cards have
``stand_in=True`` and ``origin=ORIGIN``; the flag travels into ``ImageMeta.stand_in``, the
manifest and the dataset card.

Determinism: the picture depends only on the arguments. Randomness comes from
``random.Random`` seeded with the sha256 of ``seed_key``; text is drawn with the font bundled
inside Pillow (``ImageFont.load_default(size=...)``), never a system font. The bytes are then
identical on every run of the same Pillow build (Pillow's wheels bundle FreeType and
libjpeg-turbo); ``renderer_fingerprint()`` records which build made them.

The bundled font covers ASCII only. Text outside it is transliterated where that is lossless
enough (accents, dashes, quotes); text in other scripts (the Japanese pages) is replaced by a
note, and the image file name from the URL - which is English on wikiHow's CDN even for ja
pages - is shown on every card.
"""

from __future__ import annotations

import hashlib
import io
import random
import unicodedata
from functools import lru_cache
from urllib.parse import unquote, urlsplit

from PIL import Image, ImageDraw, ImageFont

RENDERER_VERSION = "1"
ORIGIN = f"stand-in-renderer:{RENDERER_VERSION}"
BANNER = "STAND-IN - real image not available offline"
DEFAULT_SIZE = (460, 345)  # wikiHow's small step-image size (4:3)
JPEG_QUALITY = 80

_PUNCT = str.maketrans({
    "\u2014": "-", "\u2013": "-", "\u2012": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-",
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2026": "...", "\u2022": "*", "\u00b7": "*", "\u00d7": "x", "\u00a0": " ", "\u2009": " ",
    "\u00b0": " deg", "\u00bd": "1/2", "\u00bc": "1/4", "\u00be": "3/4",
})


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def renderer_fingerprint() -> dict[str, str]:
    """What the bytes depend on besides the arguments (recorded next to the archive)."""
    import PIL
    from PIL import features

    return {
        "renderer": ORIGIN,
        "pillow": PIL.__version__,
        "freetype": str(features.version("freetype2")),
        "libjpeg_turbo": str(features.version("libjpeg_turbo")),
    }


def to_drawable(text: str) -> tuple[str, bool]:
    """``text`` as the bundled ASCII font can draw it, and whether that kept most of it."""
    text = unicodedata.normalize("NFKC", text).translate(_PUNCT)
    # strip accents: NFKD splits "é" into "e" + a combining mark, which is then dropped
    decomposed = unicodedata.normalize("NFKD", text)
    kept, dropped = [], 0
    for ch in decomposed:
        if unicodedata.combining(ch):
            continue
        if " " <= ch <= "~":
            kept.append(ch)
        elif ch.isspace():
            kept.append(" ")
        else:
            dropped += 1
    out = " ".join("".join(kept).split())
    visible = sum(1 for c in out if not c.isspace())
    return out, dropped <= visible  # mostly drawable when under half of the characters were lost


def file_label(url: str) -> str:
    """The image file name of a URL, readable: ".../v4-460px-Grill-Fish-Step-1.jpg" -> "Grill-Fish-Step-1.jpg"."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or url
    for prefix in ("v4-460px-", "v4-728px-", "550px-nowatermark-", "728px-", "460px-", "180px-"):
        if prefix in name:
            name = name.split(prefix, 1)[1]
            break
    return name


def _wrap(text: str, font, width: int, max_lines: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        while font.getlength(word) > width:  # a word wider than the card: hard-break it
            cut = len(word)
            while cut > 1 and font.getlength(word[:cut]) > width:
                cut -= 1
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:cut])
            word = word[cut:]
        candidate = f"{line} {word}".strip()
        if font.getlength(candidate) <= width:
            line = candidate
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and font.getlength(last + "...") > width:
            last = last[:-1]
        lines = lines[: max_lines - 1] + [last.rstrip() + "..."]
    return lines


def _colour(rng: random.Random, light: tuple[float, float]) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hls_to_rgb(rng.random(), rng.uniform(*light), rng.uniform(0.35, 0.85))
    return round(r * 255), round(g * 255), round(b * 255)


def render_stand_in(title: str, step_text: str, seed_key: str, size: tuple[int, int] = DEFAULT_SIZE) -> bytes:
    """A JPEG card standing in for one step image (see the module doc); same arguments, same bytes."""
    w, h = size
    if w < 160 or h < 120:
        raise ValueError(f"stand-in size {w}x{h} is too small to carry its banner (min 160x120)")
    seed = int.from_bytes(hashlib.sha256(seed_key.encode("utf-8")).digest(), "big")
    rng = random.Random(seed)
    im = Image.new("RGB", size, _colour(rng, (0.55, 0.8)))
    draw = ImageDraw.Draw(im)

    # shapes: large enough that they, not the text, dominate the low frequencies phash looks at
    for _ in range(rng.randint(4, 6)):
        kind = rng.choice(("ellipse", "rectangle", "triangle"))
        sw, sh = rng.randint(w // 5, w // 2), rng.randint(h // 5, h // 2)
        x, y = rng.randint(-sw // 3, w - sw // 2), rng.randint(0, h - sh // 2)
        fill = _colour(rng, (0.15, 0.85))
        if kind == "ellipse":
            draw.ellipse((x, y, x + sw, y + sh), fill=fill)
        elif kind == "rectangle":
            draw.rectangle((x, y, x + sw, y + sh), fill=fill)
        else:
            draw.polygon([(x + rng.randint(0, sw), y), (x, y + sh), (x + sw, y + sh)], fill=fill)

    # banner
    banner_font = _font(max(12, h // 22))
    bh = int(banner_font.size * 1.8)
    draw.rectangle((0, 0, w, bh), fill=(150, 20, 20))
    draw.text((w // 2, bh // 2), BANNER, font=banner_font, fill=(255, 255, 255), anchor="mm")

    # text panel: goal, step summary, image file name
    pad = max(8, w // 40)
    title_font, body_font, small_font = _font(max(12, h // 19)), _font(max(11, h // 23)), _font(max(10, h // 30))
    goal, goal_ok = to_drawable(title)
    step, step_ok = to_drawable(step_text)
    if not goal_ok:
        goal = "(article title: script not in the bundled font)"
    if not step_ok:
        step = "(step text: script not in the bundled font; see the document)"
    inner = w - 4 * pad
    goal_lines = _wrap(goal, title_font, inner, 2)
    step_lines = _wrap(step, body_font, inner, 3)
    label = _wrap("image: " + file_label(seed_key), small_font, inner, 1)
    line_h = lambda f: int(f.size * 1.3)  # noqa: E731
    panel_h = (len(goal_lines) * line_h(title_font) + len(step_lines) * line_h(body_font)
               + line_h(small_font) + 3 * pad)
    top = h - pad - panel_h
    draw.rounded_rectangle((pad, top, w - pad, h - pad), radius=pad, fill=(255, 255, 255),
                           outline=(40, 40, 40), width=2)
    y = top + pad
    for font, lines, colour in ((title_font, goal_lines, (20, 20, 20)), (body_font, step_lines, (50, 50, 50)),
                                (small_font, label, (110, 110, 110))):
        for text in lines:
            draw.text((2 * pad, y), text, font=font, fill=colour)
            y += line_h(font)
        y += pad // 2

    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False, subsampling="4:2:0")
    return buf.getvalue()
