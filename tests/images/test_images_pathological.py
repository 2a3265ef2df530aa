"""normalize_image on pathological pictures: hidden decode errors, cut JPEGs with an end marker,
16-bit canvases, blank pictures, AVIF brands, and reject details that must not change between runs."""

from __future__ import annotations

import io
import json
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile, features
from test_images_normalize import encode, photo, png_chunk, reason_of

from wikihow_tiir.config import ImageConfig
from wikihow_tiir.images import REASONS, ImageError, normalize_image, normalize_or_reject

ROOT = Path(__file__).resolve().parents[2]


def png_from_raw(w: int, h: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    """A PNG with the given header and IDAT payload; every chunk has a valid CRC."""
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def detail_of(data, cfg: ImageConfig | None = None) -> tuple[str, str]:
    with pytest.raises(ImageError) as info:
        normalize_image(data, cfg)
    return info.value.reason, info.value.detail


# --------------------------------------------------------------------------- hidden decode errors


def test_png_with_garbage_pixel_stream_but_valid_checksums_is_refused():
    rng = np.random.default_rng(1)
    w, h = 100, 80
    # valid zlib, but the filter bytes of the rows are garbage (any value 0..255, PNG allows 0..4)
    bad_filters = png_from_raw(w, h, 8, 2, zlib.compress(bytes(rng.integers(0, 256, (w * 3 + 1) * h,
                                                                           dtype=np.uint8))))
    # not even a zlib stream
    bad_zlib = png_from_raw(w, h, 8, 2, bytes(rng.integers(0, 256, 5000, dtype=np.uint8)))
    for data in (bad_filters, bad_zlib):
        assert reason_of(data) == "decode-failed"  # it used to come out as an all-black picture
    # the same payload with proper rows is a picture (the test above is about the pixels only)
    rows = b"".join(b"\x00" + bytes(rng.integers(0, 256, w * 3, dtype=np.uint8)) for _ in range(h))
    assert normalize_image(png_from_raw(w, h, 8, 2, zlib.compress(rows))).width == w


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_cut_jpeg_with_an_end_marker_appended_is_truncated(progressive, keep, monkeypatch):
    jpeg = encode(photo(480, 360, seed=2), "JPEG", quality=90, progressive=progressive)
    cut = jpeg[: int(len(jpeg) * keep)] + b"\xff\xd9"  # looks complete to a byte check
    assert reason_of(cut) == "truncated"
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)
    assert reason_of(cut) == "truncated"
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # another library's setting must not matter
    assert reason_of(cut) == "truncated"
    assert normalize_image(jpeg).width == 480  # the whole file is fine


def test_jpeg_with_extraneous_bytes_before_a_marker_is_kept():
    # libjpeg warns ("extraneous bytes before marker") but every pixel is there: camera files do this
    jpeg = encode(photo(160, 120, seed=5), "JPEG", quality=90)
    assert jpeg.endswith(b"\xff\xd9")
    padded = jpeg[:-2] + b"\x00\x11\x22" + jpeg[-2:]
    assert normalize_image(padded).data == normalize_image(jpeg).data


def test_pillow_still_refuses_truncated_jpegs_by_default():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # nothing in the package switches it on


# --------------------------------------------------------------------------- memory


_MEASURE = r"""
import gc, io, resource, sys
from wikihow_tiir.images import normalize_image
from PIL import Image
import numpy as np

small = io.BytesIO()
Image.fromarray(np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (48, 1))).save(small, "PNG")
normalize_image(small.getvalue())  # imports and first-call set-up happen before the baseline
data = open(sys.argv[1], "rb").read()
gc.collect()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = normalize_image(data)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
im = Image.open(io.BytesIO(out.data)).convert("L")
print((after - before) // 1024, out.width, out.height, im.getpixel((5, 300)), im.getpixel((722, 300)))
"""


def sixteen_bit_ramp_png(side: int) -> bytes:
    """A side x side 16-bit greyscale PNG (a dark-to-bright ramp in every row) built row by row."""
    first = b"\x00" + np.linspace(0, 65535, side).astype(">u2").tobytes()
    same = b"\x02" + bytes(2 * side)  # PNG filter "Up": the same row again, all zeros on the wire
    z = zlib.compressobj(9)
    idat = z.compress(first) + b"".join(z.compress(same) for _ in range(side - 1)) + z.flush()
    return png_from_raw(side, side, 16, 0, idat)


def test_16bit_png_peak_memory_is_bounded(tmp_path):
    side = 6000  # 36 M pixels: 72 MB decoded at 16 bits; the file is well under 100 KB
    data = sixteen_bit_ramp_png(side)
    assert len(data) < 200_000
    path = tmp_path / "ramp16.png"
    path.write_bytes(data)
    # a fresh interpreter, so the peak RSS belongs to this one call (the old path took ~600+ MB)
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    peak_mb, w, h, left, right = map(int, done.stdout.split())
    assert (w, h) == (728, 728)
    assert left < 10 and right > 245  # scaled to 8 bits, not clipped
    assert peak_mb < 300, f"normalizing a {len(data)}-byte 16-bit PNG raised peak RSS by {peak_mb} MB"


@pytest.mark.parametrize("mode", ["I", "F"])
def test_32bit_int_and_float_pictures_scale_to_8_bits(mode):
    ramp = np.tile(np.linspace(0, 65535, 256), (64, 1))
    src = Image.fromarray(ramp.astype(np.int32 if mode == "I" else np.float32), mode)
    out = normalize_image(encode(src, "TIFF"))
    im = Image.open(io.BytesIO(out.data)).convert("L")
    assert im.getpixel((2, 32)) < 15 and im.getpixel((253, 32)) > 240


def test_large_16bit_png_is_shrunk_like_any_other_picture():
    data = sixteen_bit_ramp_png(1500)
    out = normalize_image(data, ImageConfig(max_side=300))
    assert (out.width, out.height, out.source_width, out.source_height) == (300, 300, 1500, 1500)


# --------------------------------------------------------------------------- blank pictures


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_single_colour_picture_is_blank(fmt):
    reason, detail = detail_of(encode(Image.new("RGB", (200, 150), (240, 240, 240)), fmt))
    assert reason == "blank-image" and "single colour" in detail


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_fully_transparent_picture_is_blank(mode):
    clear = {"RGBA": ((200, 30, 30, 0), (0, 0, 0, 0)), "LA": ((200, 0), (0, 0))}[mode]
    im = Image.new(mode, (120, 90), clear[0])
    ImageDraw.Draw(im).rectangle((10, 10, 60, 60), fill=clear[1])  # another colour, alpha 0 too
    reason, detail = detail_of(encode(im, "PNG"))
    assert reason == "blank-image" and "transparent" in detail


def test_palette_picture_with_only_transparent_pixels_is_blank():
    im = Image.new("P", (100, 100), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    assert reason_of(encode(im, "PNG", transparency=0)) == "blank-image"


def test_blank_threshold_comes_from_the_config():
    flat = Image.fromarray(np.tile(np.linspace(120, 130, 200).astype(np.uint8), (150, 1)), "L").convert("RGB")
    data = encode(flat, "PNG")  # a faint ramp: 10 levels from left to right
    assert normalize_image(data).width == 200  # default: kept
    assert reason_of(data, ImageConfig(blank_max_spread=16)) == "blank-image"
    solid = encode(Image.new("RGB", (64, 64), "navy"), "PNG")
    assert normalize_image(solid, ImageConfig(blank_max_spread=None)).width == 64  # switched off
    with pytest.raises(ValueError):
        ImageConfig(blank_max_spread=-1)


def test_thin_line_on_white_is_not_blank():
    im = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(im).line((0, 150, 399, 150), fill="black", width=1)
    assert normalize_image(encode(im, "PNG")).height == 300


# --------------------------------------------------------------------------- AVIF


def avif_with_major_brand(brand: bytes) -> bytes:
    data = encode(photo(120, 90, seed=6), "AVIF", quality=80)
    assert data[4:12] == b"ftypavif" and b"avif" in data[16:32]  # "avif" stays among the compatible brands
    return data[:8] + brand + data[12:]


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow build has no AVIF codec")
@pytest.mark.parametrize("brand", [b"avif", b"mif1", b"MA1B"])
def test_valid_avif_is_accepted_whatever_its_major_brand(brand):
    out = normalize_image(avif_with_major_brand(brand))
    assert (out.source_format, out.width, out.height) == ("AVIF", 120, 90)


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow build has no AVIF codec")
def test_undecodable_avif_is_refused_as_decode_failed():
    data = avif_with_major_brand(b"avif")
    damaged = data[:-200] + bytes(200)  # the AV1 payload sits at the end
    assert reason_of(damaged[: len(data) // 2]) in ("decode-failed", "truncated")
    assert reason_of(damaged) in ("decode-failed", "truncated")


def test_heic_is_named_not_passed_to_pillow():
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    reason, detail = detail_of(heic)
    assert reason == "not-an-image" and "HEIC" in detail


def test_avif_without_a_decoder_is_a_reasoned_refusal(monkeypatch):
    data = avif_with_major_brand(b"avif") if features.check("avif") else (
        b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64))
    real = features.check
    monkeypatch.setattr(features, "check", lambda name: False if name == "avif" else real(name))
    reason, detail = detail_of(data)
    assert reason == "decode-failed" and "AVIF" in detail


# --------------------------------------------------------------------------- deterministic details


def bad_inputs() -> list[bytes]:
    rng = np.random.default_rng(3)
    jpeg = encode(photo(160, 120), "JPEG")
    out = [head + bytes(rng.integers(0, 256, 600, dtype=np.uint8))
           for head in (b"BM", b"GIF89a", b"II*\x00", b"MM\x00*", b"\x89PNG\r\n\x1a\n",
                        b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"\xff\xd8\xff\xe0")]
    out += [jpeg[: len(jpeg) // 2], jpeg[: len(jpeg) // 2] + b"\xff\xd9", encode(Image.new("RGB", (64, 64)), "PNG"),
            png_from_raw(50, 50, 8, 2, bytes(rng.integers(0, 256, 900, dtype=np.uint8)))]
    return out


def test_reject_details_are_the_same_on_every_run_and_carry_no_addresses():
    first = [normalize_or_reject(data, f"doc#{i}")[1] for i, data in enumerate(bad_inputs())]
    second = [normalize_or_reject(data, f"doc#{i}")[1] for i, data in enumerate(bad_inputs())]
    assert all(r is not None for r in first)
    assert [(r.reason, r.detail) for r in first] == [(r.reason, r.detail) for r in second]
    for rej in first:
        assert rej.reason in REASONS
        assert not re.search(r"0x[0-9a-fA-F]{6,}", rej.detail), rej.detail
        assert " object at " not in rej.detail
    # the same holds for the JSON line the build writes
    lines = {json.dumps([r.reason, r.detail]) for r in first}
    assert len(lines) >= 4


def test_details_with_object_reprs_are_scrubbed():
    im = Image.new("RGB", (1, 1))
    err = ImageError("decode-failed", f"cannot use {im!r} from {io.BytesIO()!r}")
    assert "0x" not in err.detail and "0x" not in str(err)
    assert "<PIL.Image.Image image mode=RGB size=1x1>" in err.detail and "<_io.BytesIO>" in err.detail


# --------------------------------------------------------------------------- one JPEG decode, Pillow's pixels


@pytest.mark.parametrize("size", [(728, 546), (2000, 1500), (1457, 1093), (3000, 400), (500, 375)])
@pytest.mark.parametrize("kw", [{"quality": 90}, {"quality": 75, "progressive": True},
                                {"quality": 95, "subsampling": 0}, {"quality": 85, "subsampling": 1}, "grey"])
def test_libjpeg_turbo_decode_gives_the_bytes_pillow_gives(size, kw, monkeypatch):
    """The strict decoder replaced Pillow's for RGB/grey JPEGs: the stored bytes must not change."""
    from wikihow_tiir import images

    src = photo(*size, seed=size[0])
    data = encode(src.convert("L"), "JPEG", quality=88) if kw == "grey" else encode(src, "JPEG", **kw)
    ours = normalize_image(data)
    monkeypatch.setattr(images, "_decode_jpeg", lambda *args: None)  # Pillow's draft() + load()
    pillow = normalize_image(data)
    assert (ours.data, ours.width, ours.height, ours.phash) == (pillow.data, pillow.width, pillow.height,
                                                                pillow.phash)


def test_cut_cmyk_jpeg_with_an_end_marker_is_truncated_too():
    src = Image.new("CMYK", (160, 120), (0, 200, 200, 0))
    ImageDraw.Draw(src).rectangle((20, 20, 90, 90), fill=(200, 0, 0, 40))
    jpeg = encode(src, "JPEG", quality=92)
    assert normalize_image(jpeg).width == 160
    assert reason_of(jpeg[: len(jpeg) * 2 // 3] + b"\xff\xd9") == "truncated"
