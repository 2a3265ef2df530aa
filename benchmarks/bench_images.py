"""Image normalization throughput on one core, against a bare Pillow loop in the same process.

Inputs are generated in memory: photo-like 728x546 JPEGs (gradients, blobs, noise), the size
wikiHow serves its large step images at, plus 2000x1500 JPEGs (a camera-sized upload that must
be downscaled) and 728x546 PNGs. Pillow decodes/encodes on the calling thread, so one process
with no worker pool is "one core". Figures, never pass/fail.
"""

from __future__ import annotations

import io
import os
import time

import numpy as np
from PIL import Image


def _photo(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b, c = rng.uniform(0.2, 1.0, 3)
    base = np.stack([xx / w * 255 * a, yy / h * 255 * b, (1 - xx / w) * 255 * c], axis=-1)
    for _ in range(rng.integers(3, 8)):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(h / 10, h / 2)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
        base[mask] = base[mask] * 0.3 + rng.uniform(0, 255, 3) * 0.7
    # fine texture, as photos have: blurred noise of a random strength
    noise = rng.normal(0, rng.uniform(4, 14), (h // 2, w // 2, 3)).repeat(2, 0).repeat(2, 1)
    base += noise[:h, :w]
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _rate(fn, inputs: list[bytes], repeats: int) -> float:
    """Best-of-``repeats`` images per second of this process's CPU time.

    CPU time, not wall time: on a shared machine other processes take the core away, and that
    is not the normalizer's cost. Pillow does not spawn threads here, so CPU time is one core.
    """
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for data in inputs:
            fn(data)
        best = min(best, time.process_time() - t0)
    return len(inputs) / best


def _bare(data: bytes) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _bare_resize(data: bytes) -> bytes:
    im = Image.open(io.BytesIO(data)).convert("RGB")
    im.thumbnail((728, 728), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def run(quick: bool = False) -> dict:
    from wikihow_tiir.config import ImageConfig
    from wikihow_tiir.images import normalize_image

    n, n_big, repeats = (16, 4, 2) if quick else (48, 12, 3)
    cfg = ImageConfig()
    jpegs = [_encode(_photo(728, 546, s), "JPEG", quality=int(80 + s % 15)) for s in range(n)]
    pngs = [_encode(_photo(728, 546, 1000 + s), "PNG") for s in range(max(4, n // 4))]
    bigs = [_encode(_photo(2000, 1500, 2000 + s), "JPEG", quality=88) for s in range(n_big)]
    normalize = lambda d: normalize_image(d, cfg)  # noqa: E731
    normalize(jpegs[0])  # warm-up: imports (imagehash, scipy) outside the timed loops
    _bare(jpegs[0])

    bare_728 = _rate(_bare, jpegs, repeats)
    ours_728 = _rate(normalize, jpegs, repeats)
    bare_big = _rate(_bare_resize, bigs, repeats)
    ours_big = _rate(normalize, bigs, repeats)
    ours_png = _rate(normalize, pngs, repeats)
    return {
        "clock": f"process CPU time, best of {repeats} passes",
        "cores_used": 1,
        "cpu_count": os.cpu_count(),
        "inputs": {"jpeg_728x546": len(jpegs), "jpeg_2000x1500": len(bigs), "png_728x546": len(pngs),
                   "mean_jpeg_728_bytes": int(sum(map(len, jpegs)) / len(jpegs))},
        "normalize_jpeg_728_images_per_s": round(ours_728, 1),
        "bare_pillow_jpeg_728_images_per_s": round(bare_728, 1),
        "ratio_jpeg_728_vs_bare": round(ours_728 / bare_728, 3),
        "normalize_jpeg_2000_images_per_s": round(ours_big, 1),
        "bare_pillow_resize_jpeg_2000_images_per_s": round(bare_big, 1),
        "ratio_jpeg_2000_vs_bare_resize": round(ours_big / bare_big, 3),
        "normalize_png_728_images_per_s": round(ours_png, 1),
        "target_images_per_s": 150,
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
