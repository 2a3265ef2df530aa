"""The stand-in card renderer: deterministic, labelled, visually different per URL."""

from __future__ import annotations

import io
import itertools

import pytest
from PIL import Image

from wikihow_tiir.images import normalize_image, phash_distance
from wikihow_tiir.sources.standins import (
    BANNER,
    ORIGIN,
    file_label,
    render_stand_in,
    renderer_fingerprint,
    to_drawable,
)

URL = ("https://www.wikihow.com/images/thumb/0/0f/Grill-Zucchini-Step-{n}-Version-2.jpg/"
       "aid4346099-v4-728px-Grill-Zucchini-Step-{n}-Version-2.jpg")


def test_same_arguments_same_bytes_and_a_valid_jpeg():
    a = render_stand_in("How to Grill Zucchini", "Slice the zucchini lengthwise.", URL.format(n=1))
    b = render_stand_in("How to Grill Zucchini", "Slice the zucchini lengthwise.", URL.format(n=1))
    assert a == b
    im = Image.open(io.BytesIO(a))
    assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (460, 345))
    assert not im.info.get("exif")


def test_banner_is_drawn_across_the_top():
    im = Image.open(io.BytesIO(render_stand_in("How to X", "Do it.", "k"))).convert("RGB")
    # the banner is a dark red bar with white text: both colours appear in the top rows
    top = im.crop((0, 0, im.width, 24))
    colours = top.getcolors(maxcolors=1 << 16)
    assert any(r > 120 and g < 60 and b < 60 for _, (r, g, b) in colours)
    assert any(min(c) > 230 for _, c in colours)
    assert "STAND-IN" in BANNER and "not available offline" in BANNER
    assert ORIGIN.startswith("stand-in-renderer:")


def test_different_urls_look_different():
    cards = [render_stand_in("How to Grill Zucchini", f"Step {n}: brush the slices with oil.", URL.format(n=n))
             for n in range(1, 13)]
    assert len(set(cards)) == len(cards)
    hashes = [normalize_image(c).phash for c in cards]
    distances = [phash_distance(a, b) for a, b in itertools.combinations(hashes, 2)]
    assert min(distances) > 6  # above the near-duplicate threshold of the filter stage


def test_size_argument_and_minimum():
    im = Image.open(io.BytesIO(render_stand_in("t", "s", "k", size=(728, 546))))
    assert im.size == (728, 546)
    with pytest.raises(ValueError, match="too small"):
        render_stand_in("t", "s", "k", size=(100, 80))


def test_text_outside_the_bundled_font_is_transliterated_or_replaced():
    assert to_drawable("Sauté — “quickly”…") == ('Saute - "quickly"...', True)
    text, ok = to_drawable("車の内装に付着したグリースとオイルを取り除く")
    assert not ok
    # a Japanese card still renders (with a note instead of tofu boxes) and differs from others
    ja = render_stand_in("ファンデーションを塗る", "下地を塗る", "https://www.wikihow.com/images_en/thumb/a/a1/"
                         "Apply-Foundation-Step-1.jpg/v4-460px-Apply-Foundation-Step-1.jpg")
    assert Image.open(io.BytesIO(ja)).size == (460, 345)


def test_long_text_is_wrapped_not_overflowing():
    long = "word " * 400 + "Supercalifragilisticexpialidocious" * 5
    data = render_stand_in(long, long, "k")
    assert Image.open(io.BytesIO(data)).size == (460, 345)


def test_file_label_and_fingerprint():
    assert file_label(URL.format(n=3)) == "aid4346099-v4-728px-Grill-Zucchini-Step-3-Version-2.jpg".split(
        "v4-728px-", 1)[1]
    assert file_label("https://pad1.whstatic.com/images/thumb/1/1a/Sick.jpg/180px-Sick.jpg") == "Sick.jpg"
    fp = renderer_fingerprint()
    assert fp["renderer"] == ORIGIN and fp["pillow"]
