"""Validate, normalize and hash step images; every refusal has a reason.

``normalize_image(data, cfg)`` turns whatever bytes a URL served into the one form the dataset
stores: an RGB JPEG whose longest side is at most ``cfg.max_side``, with no metadata, plus its
sha256 and a 64-bit perceptual hash. Anything that is not a usable picture raises
:class:`ImageError` whose ``.reason`` is a short code (the build counts rejects per reason):

==================== =====================================================================
reason               what it means
==================== =====================================================================
missing              no bytes at all (``None``: the archive has no body for the URL)
empty                zero-length body
too-large-bytes      body larger than ``cfg.max_bytes``
svg                  an SVG document (vector art; not rasterised here)
html                 an HTML page served where an image was expected (error/login pages)
not-an-image         no known image signature (text, PDF, zeros, random bytes ...)
decompression-bomb   the header claims more than ``cfg.max_pixels`` pixels
too-small            shorter side below ``cfg.min_side``
bad-aspect-ratio     longer/shorter side above ``cfg.max_aspect_ratio``
truncated            the body ends before the picture does (also a cut JPEG whose end marker
                     was appended: libjpeg-turbo reports the premature end of the scan data)
decode-failed        a known format that could not be decoded (corrupt data, a PNG whose pixel
                     stream is garbage behind valid checksums, an AVIF without an AVIF decoder)
unsupported-mode     a pixel format we do not convert (e.g. LAB)
blank-image          a single colour (every channel within ``cfg.blank_max_spread`` levels) or
                     fully transparent: nothing to see
==================== =====================================================================

Why the order below: cheap byte checks first, then Pillow reads only the header (so size,
bomb, tiny and aspect-ratio refusals cost no pixel decoding), then ``verify()`` and a fresh
``load()`` (``verify`` leaves the image unusable, and catches PNG CRC damage; ``load`` catches
truncation). Pillow does not report libjpeg's recoverable errors (a cut scan is padded with grey), so
JPEGs are decoded by libjpeg-turbo with warnings made fatal (simplejpeg, ``strict``), to the same
pixels Pillow gives (CMYK JPEGs stay with Pillow, after the same check). JPEG inputs larger than
needed are decoded at a DCT scale (what Pillow's ``draft()`` picks), which is most of the speed on
big photos. 16-bit and 32-bit pictures are brought to 8 bits band by band and shrunk
before they are expanded to RGB, so a small file with a large 16-bit canvas costs about one copy of
its decoded pixels, not ten.

Determinism: the output depends only on the input bytes, the config, and the Pillow build (its
bundled libjpeg-turbo); no timestamps, no EXIF, no ICC profile, no random state. Refusal details
never carry memory addresses (Pillow puts ``<_io.BytesIO object at 0x...>`` in some messages), so
identical builds write identical ``rejects/images.jsonl``.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image, ImageCms, UnidentifiedImageError, features

from wikihow_tiir.io import sha256_bytes

if TYPE_CHECKING:
    from wikihow_tiir.config import ImageConfig
    from wikihow_tiir.model import ImageMeta, Reject

__all__ = [
    "ImageError", "NormalizedImage", "normalize_image", "normalize_or_reject", "image_phash",
    "phash_distance", "sniff_format", "REASONS",
]

REASONS = (
    "missing", "empty", "too-large-bytes", "svg", "html", "not-an-image", "decompression-bomb",
    "too-small", "bad-aspect-ratio", "truncated", "decode-failed", "unsupported-mode", "blank-image",
)

# Formats we accept, by their leading bytes. Pillow is told to try only the sniffed format, so
# a body can never be routed to an obscure plugin by accident.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)
# Things that are recognisably something else (reported as not-an-image with what they are).
_OTHER_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "gzip data (perhaps .svgz)"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x00\x00\x01\x00", "a Windows icon"),
    (b"8BPS", "a Photoshop document"),
)
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<meta", b"<script",
                 b"<div", b"<p>", b"<a ", b"<br", b"<h1", b"<table", b"<iframe")
_WHITE = (255, 255, 255)
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_PHASH_SIDE = 32  # imagehash.phash's working size (hash_size 8 x highfreq_factor 4)
# ISO-BMFF brands: AVIF pictures and sequences, and the HEIF/HEIC family Pillow cannot decode
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_PILLOW_AVIF_MAJOR = frozenset({b"avif", b"avis", b"mif1", b"msf1"})  # what Pillow's AVIF plugin opens
# "<_io.BytesIO object at 0x7f3a...>" and other reprs: the address differs on every run
_ADDRESS = re.compile(r"<([\w.]+) object at 0x[0-9a-fA-F]+>|\s+at 0x[0-9a-fA-F]+")
_HIGH_DEPTH = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_BAND_PIXELS = 1 << 22  # rows converted at a time from 16/32-bit to 8-bit (~4 M pixels)


def _deterministic(detail: str) -> str:
    return _ADDRESS.sub(lambda m: f"<{m.group(1)}>" if m.group(1) else "", detail)


class ImageError(ValueError):
    """An image refused with a short ``reason`` code and a human ``detail``."""

    def __init__(self, reason: str, detail: str = ""):
        detail = _deterministic(detail)
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class NormalizedImage:
    data: bytes  # the re-encoded JPEG
    width: int
    height: int
    sha256: str  # of ``data``
    phash: str  # 64-bit perceptual hash, 16 hex digits (imagehash.phash)
    source_format: str  # "JPEG", "PNG", "GIF", "WEBP", ...
    source_width: int  # as stored in the file (before EXIF orientation and resizing)
    source_height: int
    source_frames: int = 1  # >1 for animations; the first frame was kept
    exif_orientation: int = 1  # the EXIF orientation that was applied (1 = none)

    def meta(self, source_url: str, license: str = "", stand_in: bool = False) -> ImageMeta:
        """The ``ImageMeta`` of an interleaved sequence position holding this image."""
        from wikihow_tiir.model import ImageMeta

        return ImageMeta(source_url=source_url, license=license, sha256=self.sha256, width=self.width,
                         height=self.height, phash=self.phash, stand_in=stand_in)


# --------------------------------------------------------------------------- sniffing


def sniff_format(data: bytes) -> str:
    """The Pillow format name of ``data`` from its leading bytes, or raise ImageError.

    Text bodies are looked at more closely, because a CDN that fails often serves an HTML page
    (or an SVG placeholder) with an image content type; those get their own reasons.
    """
    head = bytes(data[:32])
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        brands = _ftyp_brands(data)
        if brands & _AVIF_BRANDS:
            return "AVIF"
        if brands & _HEIF_BRANDS:
            raise ImageError("not-an-image", "a HEIF/HEIC image (only its AVIF variant is decoded here)")
    for magic, what in _OTHER_MAGIC:
        if head.startswith(magic):
            raise ImageError("not-an-image", f"the body is {what}")
    text = bytes(data[:2048])
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    elif text.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16: drop the zero bytes of ASCII
        text = text[2:].replace(b"\x00", b"")
    text = text.lstrip().lower()
    if text.startswith(b"<"):
        if b"<svg" in text and not any(m in text for m in _HTML_MARKERS[:4]):
            raise ImageError("svg", "an SVG document, not a raster image")
        if any(m in text for m in _HTML_MARKERS):
            raise ImageError("html", "an HTML page was served instead of an image")
        raise ImageError("not-an-image", "XML or other markup, not image data")
    if not any(data[:64]):
        raise ImageError("not-an-image", f"the first {min(len(data), 64)} bytes are all zero")
    try:
        bytes(data[:256]).decode("utf-8")
    except UnicodeDecodeError:
        raise ImageError("not-an-image", f"unknown binary signature {head[:8].hex()}") from None
    raise ImageError("not-an-image", "text, not image data")


def _ftyp_brands(data: bytes) -> frozenset[bytes]:
    """Major and compatible brands of an ISO-BMFF ``ftyp`` box (AVIF files may name ``mif1`` first)."""
    size = int.from_bytes(data[:4], "big")
    end = min(max(size, 16), len(data), 256)
    return frozenset([data[8:12]] + [data[i:i + 4] for i in range(16, end - 3, 4)])


def _jpeg_truncated(data: bytes) -> bool:
    """A JPEG whose last scan has no end-of-image marker after it was cut short.

    Checked on the bytes because Pillow's own check can be switched off process-wide
    (``ImageFile.LOAD_TRUNCATED_IMAGES``). Inside entropy-coded data every 0xFF is stuffed, so
    the last SOS (FFDA) is the last scan's, and the EOI (FFD9) must follow it.
    """
    if data.endswith(b"\xff\xd9"):  # the common case, without scanning the file
        return False
    last_sos = data.rfind(b"\xff\xda")
    return last_sos < 0 or data.find(b"\xff\xd9", last_sos) < 0


def _jpeg_warning(exc: ValueError) -> ImageError | bool:
    """libjpeg-turbo's complaint as our refusal; False: harmless; True: not a warning (an error)."""
    msg = str(exc).strip()
    low = msg.lower()
    if "premature end" in low:
        return ImageError("truncated", f"the JPEG scan data ends early ({msg})")
    if "corrupt jpeg data" in low:
        # extraneous bytes before a marker are common in camera files and cost no pixel
        return False if "extraneous bytes" in low else ImageError("decode-failed", f"libjpeg-turbo: {msg}")
    return True


def _draft_scale(size: tuple[int, int], target: tuple[int, int]) -> int:
    """The DCT scale Pillow's ``JpegImageFile.draft`` picks: 8, 4, 2 or 1, never below ``target``."""
    if size == target:
        return 1
    ratio = min(size[0] // target[0], size[1] // target[1])
    return next(s for s in (8, 4, 2, 1) if ratio >= s)


def _decode_jpeg(data: bytes, size: tuple[int, int], target: tuple[int, int]) -> Image.Image | None:
    """A YCbCr/grey/RGB JPEG decoded by libjpeg-turbo with its warnings made errors (simplejpeg).

    Pillow silences libjpeg's warnings, so a JPEG cut inside a scan and given an end marker
    (``... FF D9``) decodes "fine" with the rest of the picture grey; TurboJPEG's strict mode stops
    at the first warning. The DCT scale is the one Pillow's ``draft()`` would pick, and the pixels
    are the same as Pillow's (both libjpeg-turbo, accurate DCT, fancy upsampling; the tests check
    it), so this is one decode, not a second one. None: libjpeg-turbo's API refuses the file with
    an error (not a warning); Pillow decides then.
    """
    import simplejpeg

    s = _draft_scale(size, target)
    scale = {"min_factor": s, "min_width": -(-size[0] // s), "min_height": -(-size[1] // s)}
    try:
        pixels = simplejpeg.decode_jpeg(data, "RGB", strict=True, **scale)
    except ValueError as exc:
        verdict = _jpeg_warning(exc)
        if isinstance(verdict, ImageError):
            raise verdict from None
        if verdict:
            return None
        try:
            pixels = simplejpeg.decode_jpeg(data, "RGB", strict=False, **scale)
        except ValueError:
            return None
    return Image.fromarray(pixels, "RGB")


def _jpeg_stream_error(data: bytes) -> ImageError | None:
    """For JPEGs Pillow decodes itself (CMYK): libjpeg-turbo's warnings, checked at 1/8 scale."""
    import simplejpeg

    try:
        simplejpeg.decode_jpeg(data, "CMYK", min_factor=8, strict=True)
    except ValueError as exc:
        verdict = _jpeg_warning(exc)
        return verdict if isinstance(verdict, ImageError) else None
    return None


# --------------------------------------------------------------------------- pixels


def _classify(exc: BaseException) -> ImageError:
    if isinstance(exc, ImageError):
        return exc
    if isinstance(exc, Image.DecompressionBombError):
        return ImageError("decompression-bomb", str(exc))
    msg = str(exc) or type(exc).__name__
    low = msg.lower()
    if isinstance(exc, EOFError) or "truncat" in low or "premature end" in low or "not enough data" in low:
        return ImageError("truncated", msg)
    return ImageError("decode-failed", f"{type(exc).__name__}: {msg}")


def _to_rgb(im: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Any Pillow mode -> RGB; transparency composited on white.

    ``target`` is the size the picture will be stored at: 16/32-bit pictures are shrunk to it
    before their grey is tripled into RGB (the result is resized to the same size later anyway).
    """
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in _HIGH_DEPTH:
        return _high_depth_to_rgb(im, target)
    if mode == "CMYK":
        return _cmyk_to_rgb(im)
    if mode in ("P", "L", "RGB", "1") and "transparency" in im.info:
        im = im.convert("RGBA")
    elif mode in ("PA", "RGBa", "La", "LA"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        alpha = im.getchannel("A")
        if alpha.getextrema()[1] == 0:
            raise ImageError("blank-image", f"fully transparent: every one of the {im.width}x{im.height} "
                                            "pixels has alpha 0")
        out = Image.new("RGB", im.size, _WHITE)
        out.paste(im.convert("RGB"), mask=alpha)
        return out
    try:
        return im.convert("RGB")
    except ValueError as exc:
        raise ImageError("unsupported-mode", f"cannot convert pixel mode {mode} to RGB: {exc}") from exc


def _bands(im: Image.Image):
    """The picture as numpy row bands of about ``_BAND_PIXELS`` pixels (never the whole copy)."""
    import numpy as np

    w, h = im.size
    rows = max(1, _BAND_PIXELS // max(w, 1))
    for top in range(0, h, rows):
        yield top, np.asarray(im.crop((0, top, w, min(h, top + rows))))


def _high_depth_to_rgb(im: Image.Image, target: tuple[int, int]) -> Image.Image:
    """16-bit (and 32-bit int / float) greyscale -> 8-bit, scaling instead of clipping.

    Pillow's own ``convert("L")`` clips 16-bit values at 255, which turns most 16-bit
    pictures white. PNG and TIFF integer greyscale is treated as 0..65535; float as its range.
    Memory: one 8-bit copy plus one band of temporaries (the old whole-array int64 path peaked at
    ~20 bytes per pixel: 800 MB for a 77 KB 6000x6000 PNG); the grey picture is shrunk to
    ``target`` before it is tripled into RGB.
    """
    import numpy as np

    w, h = im.size
    out = np.empty((h, w), np.uint8)
    if im.mode == "F":
        lo, hi = np.inf, -np.inf
        for _, band in _bands(im):
            if np.isfinite(band).any():
                lo, hi = min(lo, float(np.nanmin(band))), max(hi, float(np.nanmax(band)))
        if not np.isfinite(lo) or hi <= lo:
            out.fill(0)
        else:
            for top, band in _bands(im):
                band = (np.nan_to_num(band, nan=lo) - lo) * (255.0 / (hi - lo))
                out[top:top + band.shape[0]] = np.clip(band, 0, 255).round()
    else:
        for top, band in _bands(im):
            if band.dtype.itemsize > 2:  # "I": 32-bit ints, read as 0..65535 like 16-bit files
                band = np.clip(band, 0, 65535)
            out[top:top + band.shape[0]] = band >> 8
    grey = Image.fromarray(out, "L")
    if grey.size != target:
        grey = grey.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return grey.convert("RGB")


_SRGB = None


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    """CMYK -> RGB through the embedded ICC profile when there is one (print CMYK converted
    naively looks washed out), else Pillow's formula."""
    global _SRGB
    icc = im.info.get("icc_profile")
    if icc:
        try:
            if _SRGB is None:
                _SRGB = ImageCms.createProfile("sRGB")
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out = ImageCms.profileToProfile(im, src, _SRGB, outputMode="RGB")
            if out is not None:
                return out
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall back to the plain conversion below
    return im.convert("RGB")


def _target_size(w: int, h: int, max_side: int) -> tuple[int, int]:
    """The size whose longest side is at most ``max_side``, keeping the aspect ratio."""
    if max(w, h) <= max_side:
        return w, h
    if w >= h:
        return max_side, max(1, round(h * max_side / w))
    return max(1, round(w * max_side / h)), max_side


def image_phash(im: Image.Image) -> str:
    """64-bit perceptual hash (``imagehash.phash``) as 16 hex digits.

    The picture is first brought to phash's 32x32 working size with Pillow's ``reducing_gap``
    (a box reduce, then LANCZOS), ~5x faster on 728-px images than imagehash's own full-size
    LANCZOS; the hash is the same DCT-median hash, and bits differ at most rarely.
    """
    import imagehash

    small = im.convert("L").resize((_PHASH_SIDE, _PHASH_SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return str(imagehash.phash(small))


def phash_distance(a_hex: str, b_hex: str) -> int:
    """Hamming distance between two 64-bit perceptual hashes given as 16 hex digits."""
    try:
        if len(a_hex) != 16 or len(b_hex) != 16:
            raise ValueError
        a, b = int(a_hex, 16), int(b_hex, 16)
    except (TypeError, ValueError):
        raise ValueError(f"perceptual hashes must be 16 hex digits, got {a_hex!r} and {b_hex!r}") from None
    return (a ^ b).bit_count()


# --------------------------------------------------------------------------- the stage


def normalize_image(data: bytes | None, cfg: ImageConfig | None = None) -> NormalizedImage:
    """Validate ``data`` and re-encode it as the dataset stores images (see the module doc)."""
    if cfg is None:
        from wikihow_tiir.config import ImageConfig

        cfg = ImageConfig()
    if data is None:
        raise ImageError("missing", "no image bytes (the archive has no body for this URL)")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ImageError("not-an-image", f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ImageError("empty", "the body is empty (0 bytes)")
    if len(data) > cfg.max_bytes:
        raise ImageError("too-large-bytes", f"{len(data)} bytes > max_bytes {cfg.max_bytes}")
    fmt = sniff_format(data)
    if fmt == "JPEG" and _jpeg_truncated(data):
        raise ImageError("truncated", "the JPEG has no end-of-image marker after its last scan")

    if fmt == "AVIF" and not features.check("avif"):
        raise ImageError("decode-failed", "this Pillow build has no AVIF decoder (PIL.features 'avif')")

    try:
        # 1) header + structure check; verify() consumes the image object
        with _open(data, fmt) as probe:
            _check_geometry(probe.size, cfg)
            probe.verify()
        # 2) a fresh object for the pixels
        with _open(data, fmt) as im:
            src_w, src_h = im.size
            frames = int(getattr(im, "n_frames", 1) or 1)
            target = _target_size(src_w, src_h, cfg.max_side)
            rgb = None
            if fmt == "JPEG" and im.mode in ("RGB", "L"):
                rgb = _decode_jpeg(data, im.size, target)
            if rgb is None:
                if fmt == "JPEG":
                    stream_error = _jpeg_stream_error(data)
                    if stream_error is not None:
                        raise stream_error
                    if target != (src_w, src_h):
                        im.draft(None, target)  # DCT-domain downscale while decoding (never below target)
                # load before anything else reads the file: PNG's getexif() loads the pixels itself
                # and a decode error raised there would be lost (the picture came out black)
                im.load()
                rgb = _to_rgb(im, target)
            orientation = _orientation(im)
        return _finish(rgb, cfg, fmt, src_w, src_h, frames, orientation)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        # Pillow's message names the stream object (with its address): say it in our own words
        raise ImageError("decode-failed", f"Pillow cannot identify this {fmt} file") from exc
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError, EOFError, IndexError,
            KeyError, TypeError, ZeroDivisionError, MemoryError, RuntimeError) as exc:  # what corrupt
        # files raise (RuntimeError: the AVIF decoder's "Failed to decode frame 0: ...")
        raise _classify(exc) from exc


def _open(data: bytes, fmt: str) -> Image.Image:
    """Pillow opens ``data`` as the sniffed format only (never routed to another plugin)."""
    if fmt == "AVIF" and data[8:12] not in _PILLOW_AVIF_MAJOR:
        # an AVIF whose major brand is a profile brand (e.g. "MA1B") with "avif" only among the
        # compatible brands: valid, but Pillow's sniffing looks at the major brand alone
        from PIL import AvifImagePlugin

        return AvifImagePlugin.AvifImageFile(io.BytesIO(data))
    return Image.open(io.BytesIO(data), formats=[fmt])


def _finish(rgb: Image.Image, cfg: ImageConfig, fmt: str, src_w: int, src_h: int, frames: int,
            orientation: int) -> NormalizedImage:
    """Orientation, resize, blank check, deterministic JPEG encoding and the hashes."""
    if orientation in _TRANSPOSE:
        rgb = rgb.transpose(_TRANSPOSE[orientation])
    w, h = rgb.size
    target = _target_size(w, h, cfg.max_side)
    if target != (w, h):
        rgb = rgb.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if cfg.blank_max_spread is not None and _spread(rgb.resize((16, 16), Image.Resampling.NEAREST)) \
            <= cfg.blank_max_spread:
        # 256 sampled pixels already differ enough in almost every picture; only the flat-looking
        # ones get the full scan (getextrema costs ~1 ms at 728 px), on the picture as stored
        spread = _spread(rgb)
        if spread <= cfg.blank_max_spread:
            raise ImageError("blank-image", f"a single colour: every channel spans {spread} level(s) "
                                            f"<= blank_max_spread {cfg.blank_max_spread}")
    rgb.info.clear()  # never carry EXIF / ICC / comments into the output
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=cfg.jpeg_quality, optimize=False, progressive=False,
             subsampling="4:2:0")
    out = buf.getvalue()
    return NormalizedImage(
        data=out, width=rgb.width, height=rgb.height, sha256=sha256_bytes(out), phash=image_phash(rgb),
        source_format=fmt, source_width=src_w, source_height=src_h, source_frames=frames,
        exif_orientation=orientation if orientation in _TRANSPOSE else 1,
    )


def _spread(rgb: Image.Image) -> int:
    """The widest range of values any channel takes (0 for one flat colour)."""
    return max(hi - lo for lo, hi in rgb.getextrema())


def _check_geometry(size: tuple[int, int], cfg: ImageConfig) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageError("decode-failed", f"the header gives an empty size {w}x{h}")
    if w * h > cfg.max_pixels:
        raise ImageError("decompression-bomb", f"{w}x{h} = {w * h} pixels > max_pixels {cfg.max_pixels}")
    if min(w, h) < cfg.min_side:
        raise ImageError("too-small", f"{w}x{h}: shorter side < min_side {cfg.min_side}")
    ratio = max(w, h) / min(w, h)
    if ratio > cfg.max_aspect_ratio:
        raise ImageError("bad-aspect-ratio", f"{w}x{h}: aspect ratio {ratio:.1f} > {cfg.max_aspect_ratio}")


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
        return int(value) if value in _TRANSPOSE else 1
    except Exception:  # a damaged EXIF block only costs us the orientation
        return 1


def normalize_or_reject(data: bytes | None, item_id: str, cfg: ImageConfig | None = None,
                        stage: str = "images") -> tuple[NormalizedImage | None, Reject | None]:
    """``normalize_image`` for a stage: the image, or a :class:`Reject` with the reason."""
    try:
        return normalize_image(data, cfg), None
    except ImageError as exc:
        from wikihow_tiir.model import Reject

        return None, Reject(stage=stage, item_id=item_id, reason=exc.reason, detail=exc.detail)
