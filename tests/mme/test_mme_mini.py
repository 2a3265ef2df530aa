"""mme-mini at its real size: EfficientNet-Lite0's 12 x 12 grid at 384 px, truncation, bad images."""

from __future__ import annotations

import torch

from wikihow_tiir.mme.synthetic import draw_image
from wikihow_tiir.model import ImageMeta, Interleaved


def _content(n_images: int, image: bytes | None = None, step_text: str = "Cut the stem.") -> Interleaved:
    c = Interleaved()
    c.add_text("How to Grow Tomatoes")
    for i in range(n_images):
        c.add_text(step_text)
        c.add_image(ImageMeta(source_url=f"synthetic://{i}"), image if image is not None else draw_image(
            (200, 40 + 10 * i, 40), i, size=120))
    return c


def test_real_grid_is_12x12_and_n3_feeds_nine_tokens_per_image(mini384):
    assert mini384.grid_side == 12 and mini384.ns == [1, 2, 3, 4, 6, 12]
    assert mini384.backbone.pooling == "mean"
    prep = mini384.prepare("doc", _content(2))
    feats = torch.stack([mini384.cache[p.key] for p in prep.parts if hasattr(p, "key")])
    assert feats.shape == (2, 144, 1280)  # EfficientNet-Lite0's last feature map, 12 x 12 at 384 px
    _, grid = mini384.project([p for p in prep.parts if hasattr(p, "key")])
    assert grid.shape == (2, 12, 12, 384)
    for n, expected in ((3, 18), (12, 288), (1, 2)):
        assert mini384.layouts([prep], n)[0].n_visual_tokens == expected
    with torch.no_grad():
        v3, v12 = mini384.encode([prep], 3), mini384.encode([prep], 12)
    assert v3.shape == v12.shape == (1, 384)
    assert not torch.allclose(v3, v12)  # the granularity changes the embedding


def test_64_images_at_full_grid_are_truncated_and_reported(mini384):
    mini384.truncations.clear()
    prep = mini384.prepare("long-doc", _content(64, image=draw_image((10, 120, 200), 1, size=120)))
    assert prep.n_images == 64
    with torch.no_grad():
        vec = mini384.encode([prep], 12)  # 64 x 144 visual tokens >> 512: must not crash
    assert vec.shape == (1, 384) and torch.isfinite(vec).all()
    [rec] = mini384.truncations
    assert rec.item_id == "long-doc" and rec.n == 12
    lay = mini384.layouts([prep], 12)[0]
    assert lay.length <= 512 and rec.images_dropped == 64 - lay.n_visual_tokens // 144 > 0


def test_undecodable_and_missing_images_are_rejected_with_a_reason(mini384):
    mini384.rejects.clear()
    c = _content(1)
    c.add_text("Then water it.")
    c.add_image(ImageMeta(source_url="synthetic://broken"), b"this is not a jpeg")
    c.add_image(ImageMeta(source_url="synthetic://missing"), None)
    prep = mini384.prepare("bad-doc", c)
    assert prep.n_images == 1  # the good image stays; the sequence still encodes
    with torch.no_grad():
        assert mini384.encode([prep], 3).shape == (1, 384)
    reasons = sorted((r.item_id, r.reason) for r in mini384.rejects)
    assert reasons == [("bad-doc", "image-missing"), ("bad-doc", "image-undecodable")]
    assert all(r.stage == "mme" and r.detail for r in mini384.rejects)


def test_bounded_vision_cache_recomputes_evicted_features(mini384):
    prep = mini384.prepare("doc", _content(3))
    with torch.no_grad():
        before = mini384.encode([prep], 3)
        limit = mini384.cache_bytes
        mini384.cache_bytes = 1  # room for one image's features
        try:
            mini384.clear_cache()  # everything evicted: features come back from the image bytes
            assert torch.equal(mini384.encode([prep], 3), before)
            assert len(mini384.cache) == 1
        finally:
            mini384.cache_bytes = limit


def test_prepare_without_vision_still_rejects_and_encodes_the_same(mini384):
    c = _content(2)
    c.add_image(ImageMeta(source_url="synthetic://broken"), b"\xff\xd8 truncated jpeg")
    mini384.rejects.clear()
    with torch.no_grad():
        eager = mini384.encode([mini384.prepare_many([("a", c)])[0]], 3)
        mini384.clear_cache()
        lazy_prep = mini384.prepare_many([("a", c)], vision=False)
        assert not mini384.cache and lazy_prep[0].n_images == 2
        assert torch.equal(mini384.encode(lazy_prep, 3), eager)
    assert [r.reason for r in mini384.rejects] == ["image-undecodable", "image-undecodable"]
