"""An interleaved item rendered as one page image (``--adapt screenshot``, the paper's "document
screenshot" adaptation for visual-document retrievers such as GME).

Text and pictures in reading order, top to bottom, on a white page of fixed width: each text
position word-wrapped (characters of scripts without spaces wrap anywhere), each picture scaled
down to the text width (never up). The font is DejaVu Sans from matplotlib's package (a dependency),
so a page is the same image on every machine with the same Pillow; it has no CJK glyphs, so pass
a font that has them (``--screenshot-font``) for Japanese or Chinese items.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ScreenshotStyle:
    width: int = 768
    margin: int = 24
    font_size: int = 20
    line_gap: int = 6  # pixels between lines
    block_gap: int = 14  # pixels between positions
    font: Path | None = None  # a TrueType/OpenType file; None: DejaVu Sans


@functools.lru_cache(maxsize=8)
def _font(path: str | None, size: int):
    from PIL import ImageFont

    if path is None:
        import matplotlib

        path = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    try:
        return ImageFont.truetype(path, size)
    except OSError as exc:
        raise ValueError(f"screenshot font {path}: not a readable TrueType/OpenType font ({exc})") from None


def wrap(text: str, font, width: int) -> list[str]:
    """Lines of ``text`` no wider than ``width``: break at spaces, inside a word only when it alone is wider."""
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for ch in word:  # a word (or a run of CJK text) wider than the line
                if font.getlength(line + ch) > width and line:
                    lines.append(line)
                    line = ""
                line += ch
        lines.append(line)
    return lines


def render_page(sequence: list, style: ScreenshotStyle = ScreenshotStyle()):
    """One RGB page image of an interleaved sequence (``str`` and PIL images, in reading order)."""
    from PIL import Image, ImageDraw

    font = _font(str(style.font) if style.font else None, style.font_size)
    inner = style.width - 2 * style.margin
    ascent, descent = font.getmetrics()
    line_h = ascent + descent + style.line_gap
    blocks: list[tuple[str, object, int]] = []  # (kind, payload, height)
    for part in sequence:
        if isinstance(part, str):
            lines = wrap(part, font, inner)
            blocks.append(("text", lines, len(lines) * line_h))
        else:
            im = part.convert("RGB")
            if im.width > inner:
                im = im.resize((inner, max(1, round(im.height * inner / im.width))), Image.Resampling.BICUBIC)
            blocks.append(("image", im, im.height))
    height = 2 * style.margin + sum(h for _, _, h in blocks) + style.block_gap * max(0, len(blocks) - 1)
    page = Image.new("RGB", (style.width, max(height, 2 * style.margin + 1)), "white")
    draw = ImageDraw.Draw(page)
    y = style.margin
    for kind, payload, h in blocks:
        if kind == "text":
            for i, line in enumerate(payload):
                draw.text((style.margin, y + i * line_h), line, fill="black", font=font)
        else:
            page.paste(payload, (style.margin, y))
        y += h + style.block_gap
    return page
