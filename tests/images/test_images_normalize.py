"""images.normalize_image: every bad input gets its reason; good inputs come out normalized."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, features

from wikihow_tiir.config import ImageConfig
from wikihow_tiir.images import (
    REASONS,
    ImageError,
    NormalizedImage,
    normalize_image,
    normalize_or_reject,
    phash_distance,
    sniff_format,
)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def photo(w: int = 400, h: int = 300, seed: int = 1) -> Image.Image:
    """A photo-like picture: smooth gradients, a few blobs, mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w * 200, yy / h * 200, (xx + yy) / (w + h) * 255], axis=-1)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(20, min(w, h) / 2)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
        base[mask] = rng.uniform(0, 255, 3)
    base += rng.normal(0, 6, base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(w: int, h: int) -> bytes:
    """A tiny PNG whose header claims w x h RGB pixels (a decompression bomb's calling card)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + png_chunk(b"IEND", b""))


def reason_of(data, cfg: ImageConfig | None = None) -> str:
    with pytest.raises(ImageError) as info:
        normalize_image(data, cfg)
    assert info.value.reason in REASONS
    assert info.value.detail, "every refusal explains itself"
    return info.value.reason


JPEG = encode(photo(), "JPEG", quality=92)
PNG = encode(photo(), "PNG")


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("none", None, "missing"),
    ("empty", b"", "empty"),
    ("zeros", b"\x00" * 4096, "not-an-image"),
    ("garbage", bytes(np.random.default_rng(7).integers(1, 256, 4096, dtype=np.uint8)), "not-an-image"),
    ("text", b"Access denied. Please try again later.", "not-an-image"),
    ("json", b'{"error": "not found"}', "not-an-image"),
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "not-an-image"),
    ("svg", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="460" height="345">'
            b'<rect width="10" height="10"/></svg>', "svg"),
    ("svg-bare", b"  <svg viewBox='0 0 10 10'></svg>", "svg"),
    ("html", b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not Found</body></html>",
     "html"),
    ("html-bom", b"\xef\xbb\xbf\n  <html lang=en><body><p>Login required</p></body></html>", "html"),
    ("xml", b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>", "not-an-image"),
    ("truncated-jpeg", JPEG[: len(JPEG) // 2], "truncated"),
    ("truncated-png", PNG[: len(PNG) // 2], "truncated"),
    ("truncated-png-tail", PNG[:-20], "truncated"),
    ("jpeg-magic-only", b"\xff\xd8\xff\xe0" + b"\x00" * 100, "truncated"),
    ("corrupt-png-crc", PNG[:40] + bytes([PNG[40] ^ 0xFF]) + PNG[41:], "decode-failed"),
    ("tiny", encode(Image.new("RGB", (20, 20), "red"), "PNG"), "too-small"),
    ("aspect", encode(Image.new("RGB", (1200, 100), "red"), "PNG"), "bad-aspect-ratio"),
    ("bomb-header", png_claiming(100_000, 100_000), "decompression-bomb"),
    ("bomb-over-cap", png_claiming(8_000, 8_000), "decompression-bomb"),
])
def test_bad_input_gets_its_reason(name, data, reason):
    assert reason_of(data) == reason


def test_truncated_jpeg_refused_even_when_pillow_is_told_to_accept_truncation(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    assert reason_of(JPEG[:-400]) == "truncated"


def test_byte_cap_and_pixel_cap_come_from_the_config():
    assert reason_of(JPEG, ImageConfig(max_bytes=1000)) == "too-large-bytes"
    assert reason_of(JPEG, ImageConfig(max_pixels=400 * 300 - 1)) == "decompression-bomb"
    assert reason_of(JPEG, ImageConfig(min_side=301)) == "too-small"
    assert reason_of(encode(photo(400, 100), "PNG"), ImageConfig(max_aspect_ratio=3.5)) == "bad-aspect-ratio"


def test_bomb_refused_before_pixels_are_decoded():
    # the bomb's IDAT holds 64 bytes; decoding 8000x8000 from it would fail differently ("truncated")
    with pytest.raises(ImageError) as info:
        normalize_image(png_claiming(8_000, 8_000))
    assert info.value.reason == "decompression-bomb" and "8000x8000" in info.value.detail


def test_sniff_format_names_the_formats():
    assert sniff_format(JPEG) == "JPEG"
    assert sniff_format(PNG) == "PNG"
    assert sniff_format(encode(photo(), "GIF")) == "GIF"
    assert sniff_format(encode(photo(), "WEBP")) == "WEBP"
    assert sniff_format(encode(photo(), "BMP")) == "BMP"
    assert sniff_format(encode(photo(), "TIFF")) == "TIFF"
    avif = encode(photo(), "AVIF")
    assert sniff_format(avif) == "AVIF" and normalize_image(avif).source_format == "AVIF"


def test_normalize_or_reject_returns_a_reject_with_reason():
    img, rej = normalize_or_reject(b"<html><body>oops</body></html>", "wh-1-s1#3")
    assert img is None and rej is not None
    assert (rej.stage, rej.item_id, rej.reason) == ("images", "wh-1-s1#3", "html")
    img, rej = normalize_or_reject(JPEG, "wh-1-s1#3")
    assert rej is None and isinstance(img, NormalizedImage)


# --------------------------------------------------------------------------- conversions


def decoded(n: NormalizedImage) -> Image.Image:
    im = Image.open(io.BytesIO(n.data))
    assert im.format == "JPEG" and im.mode == "RGB" and im.size == (n.width, n.height)
    return im


def test_plain_jpeg_round_trip():
    n = normalize_image(JPEG)
    assert (n.width, n.height, n.source_format, n.source_width, n.source_height) == (400, 300, "JPEG", 400, 300)
    im = decoded(n)
    assert not im.info.get("exif") and not im.info.get("icc_profile")
    assert len(n.phash) == 16 and int(n.phash, 16) >= 0
    assert n.sha256 == __import__("hashlib").sha256(n.data).hexdigest()


def test_cmyk_jpeg_becomes_rgb():
    src = Image.new("CMYK", (120, 90), (0, 255, 255, 0))  # pure red ink
    src.paste((0, 0, 0, 255), (0, 0, 20, 90))  # a black stripe: a flat picture would be "blank-image"
    n = normalize_image(encode(src, "JPEG", quality=95))
    r, g, b = decoded(n).getpixel((60, 45))
    assert r > 200 and g < 60 and b < 60


def test_palette_with_transparency_composited_on_white():
    im = Image.new("P", (100, 100), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (50, 0, 100, 100))  # right half red, left half palette index 0 = transparent
    n = normalize_image(encode(im, "PNG", transparency=0))
    out = decoded(n)
    assert min(out.getpixel((10, 50))) > 245  # transparent -> white, not black
    r, g, b = out.getpixel((80, 50))
    assert r > 200 and g < 50


def test_la_and_rgba_composited_on_white():
    la = Image.new("LA", (64, 64), (0, 0))  # black, transparent ...
    la.paste((0, 255), (48, 0, 64, 64))  # ... but for an opaque black stripe
    out = decoded(normalize_image(encode(la, "PNG")))
    assert min(out.getpixel((20, 32))) > 245 and max(out.getpixel((58, 32))) < 20
    rgba = Image.new("RGBA", (64, 64), (0, 0, 255, 255))
    rgba.paste((255, 255, 0, 255), (0, 0, 10, 64))
    r, g, b = decoded(normalize_image(encode(rgba, "PNG"))).getpixel((32, 32))
    assert b > 230 and r < 30


def test_animated_gif_keeps_first_frame_and_records_frames():
    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "lime", "blue")]
    for frame in frames:
        frame.paste((255, 255, 255), (0, 0, 64, 8))  # a white band: flat frames would be "blank-image"
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    n = normalize_image(data)
    assert n.source_frames == 3 and n.source_format == "GIF"
    r, g, b = decoded(n).getpixel((32, 32))
    assert r > 200 and g < 50 and b < 50


def test_exif_rotation_swaps_dimensions():
    src = Image.new("RGB", (200, 100), "white")
    src.paste((255, 0, 0), (0, 0, 40, 100))  # a red stripe on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise to display
    n = normalize_image(encode(src, "JPEG", quality=95, exif=exif.tobytes()))
    assert (n.source_width, n.source_height) == (200, 100)
    assert (n.width, n.height) == (100, 200) and n.exif_orientation == 6
    out = decoded(n)
    assert out.getpixel((50, 10))[1] < 60  # left edge went to the top: red there
    assert out.getpixel((50, 190))[1] > 200
    assert not out.getexif().get(0x0112)


def test_16bit_png_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 256), (64, 1)).astype(np.uint16)  # dark left, bright right
    src = Image.fromarray(ramp)
    assert src.mode.startswith("I;16")
    out = decoded(normalize_image(encode(src, "PNG")))
    row = [out.getpixel((x, 32))[0] for x in (2, 128, 253)]
    assert row[0] < 15 and 110 < row[1] < 145 and row[2] > 240  # clipping would make all three 255


def test_resize_bounds_longest_side():
    cfg = ImageConfig()
    for w, h in ((2000, 1500), (1500, 2000), (729, 300), (3000, 400)):
        src = Image.merge("RGB", [Image.radial_gradient("L"), Image.linear_gradient("L"),
                                  Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90)]).resize((w, h))
        n = normalize_image(encode(src, "JPEG", quality=85), cfg)
        assert max(n.width, n.height) == cfg.max_side
        assert abs(n.width / n.height - w / h) < 0.02
        assert (n.source_width, n.source_height) == (w, h)
    small = normalize_image(encode(photo(500, 375), "PNG"))
    assert (small.width, small.height) == (500, 375)  # never upscaled
    n = normalize_image(encode(photo(1000, 800), "PNG"), ImageConfig(max_side=256))
    assert (n.width, n.height) == (256, 205)


# --------------------------------------------------------------------------- determinism and hashing


def test_deterministic_bytes_and_sha():
    data = encode(photo(1600, 1200, seed=3), "JPEG", quality=90)
    a, b = normalize_image(data), normalize_image(data)
    assert a.data == b.data and a.sha256 == b.sha256 and a.phash == b.phash


def test_phash_near_copy_small_and_different_image_large():
    original = normalize_image(encode(photo(600, 450, seed=4), "PNG"))
    recoded = normalize_image(encode(photo(600, 450, seed=4).resize((300, 225)), "JPEG", quality=60))
    other = normalize_image(encode(photo(600, 450, seed=5), "PNG"))
    assert phash_distance(original.phash, recoded.phash) <= 4
    assert phash_distance(original.phash, other.phash) >= 16


def test_phash_distance_checks_its_input():
    assert phash_distance("0" * 16, "f" * 16) == 64
    assert phash_distance("8000000000000001", "0000000000000001") == 1
    for bad in ("abc", "z" * 16, None):
        with pytest.raises(ValueError, match="16 hex digits"):
            phash_distance(bad, "0" * 16)  # type: ignore[arg-type]


def test_meta_carries_licence_and_stand_in_flag():
    n = normalize_image(JPEG)
    m = n.meta("https://www.wikihow.com/images/x.jpg", license="License: Creative Commons", stand_in=True)
    assert (m.sha256, m.width, m.height, m.phash) == (n.sha256, n.width, n.height, n.phash)
    assert m.license == "License: Creative Commons" and m.stand_in is True


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bomb_in_pillows_warning_range_still_refused():
    # 10000x10000 makes Pillow warn (not raise) when it reads the header; we refuse it all the same
    assert reason_of(png_claiming(10_000, 10_000)) == "decompression-bomb"


def test_damaged_files_never_crash():
    """Cut and bit-flipped copies of valid files give an image or an ImageError, nothing else."""
    rng = np.random.default_rng(11)
    small = photo(96, 72, seed=9)
    frames = [small, small.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    originals = [encode(small, "JPEG"), encode(small, "PNG"), encode(small, "WEBP"), encode(small, "BMP"),
                 encode(small, "TIFF"), encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
                 encode(small, "JPEG", progressive=True)]
    if features.check("avif"):
        originals.append(encode(small, "AVIF"))  # its decoder raises RuntimeError on damage
    outcomes = set()
    for data in originals:
        for _ in range(40):
            damaged = bytearray(data)
            if rng.random() < 0.5:
                damaged = damaged[: int(rng.integers(1, len(damaged)))]
            else:
                for pos in rng.integers(0, len(damaged), int(rng.integers(1, 8))):
                    damaged[pos] = int(rng.integers(0, 256))
            try:
                normalize_image(bytes(damaged))
                outcomes.add("ok")
            except ImageError as exc:
                assert exc.reason in REASONS
                outcomes.add(exc.reason)
    assert "truncated" in outcomes and len(outcomes) >= 3
