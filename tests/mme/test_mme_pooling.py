"""Matryoshka pooling and the token budget / truncation rule (pure functions)."""

from __future__ import annotations

import pytest
import torch

from wikihow_tiir.mme.pooling import (
    ImagePart,
    TextPart,
    check_n,
    clip_n,
    layout,
    matryoshka_pool,
    valid_ns,
)


def test_valid_ns_are_the_divisors_of_the_grid_side():
    assert valid_ns(24) == [1, 2, 3, 4, 6, 8, 12, 24]  # the paper's set
    assert valid_ns(12) == [1, 2, 3, 4, 6, 12]  # mme-mini at 384 px
    with pytest.raises(ValueError, match="positive"):
        valid_ns(0)


def test_pool_gives_n_squared_tokens_for_every_n():
    grid = torch.randn(3, 24, 24, 5)
    for n in valid_ns(24):
        out = matryoshka_pool(grid, n)
        assert out.shape == (3, n * n, 5)
    assert torch.equal(matryoshka_pool(grid, 24), grid.reshape(3, 576, 5))  # full grid unchanged
    assert torch.allclose(matryoshka_pool(grid, 1)[:, 0], grid.mean(dim=(1, 2)), atol=1e-6)


def test_pool_averages_each_window_in_raster_order():
    grid = torch.arange(16.0).reshape(1, 4, 4, 1)
    out = matryoshka_pool(grid, 2)[0, :, 0]
    # windows: rows 0-1 x cols 0-1, rows 0-1 x cols 2-3, rows 2-3 x cols 0-1, rows 2-3 x cols 2-3
    assert out.tolist() == [2.5, 4.5, 10.5, 12.5]


def test_bad_n_and_bad_grid_are_clear_errors():
    with pytest.raises(ValueError, match=r"N=5 does not divide the 24x24 .*\[1, 2, 3, 4, 6, 8, 12, 24\]"):
        check_n(5, 24)
    with pytest.raises(ValueError, match="grid"):
        matryoshka_pool(torch.zeros(2, 4, 3, 1), 1)
    assert clip_n(3, 8) == 2 and clip_n(3, 12) == 3 and clip_n(3, 2) == 2


def _doc(k: int, text_tokens: int = 5):
    parts = []
    for i in range(k):
        parts += [TextPart(tuple(range(text_tokens))), ImagePart(f"img{i}")]
    return parts


def test_token_budget_n3_is_nine_per_image_and_full_grid_is_the_grid():
    for k in (1, 2, 5, 7):
        lay = layout(_doc(k), 3, max_length=4096, n_special=2)
        assert lay.n_visual_tokens == 9 * k
        assert lay.length == 2 + 5 * k + 9 * k
        assert not lay.truncation.truncated
    assert layout(_doc(4), 24, 4096, 2).n_visual_tokens == 4 * 576


def test_64_images_at_full_grid_truncate_whole_images_and_report_it():
    parts = _doc(64)
    lay = layout(parts, 12, max_length=512, n_special=2)  # mme-mini: 144 tokens per image, 512 context
    kept_images = sum(isinstance(p, ImagePart) for p in lay.parts)
    assert lay.length <= 512
    assert kept_images == 3  # 5+144 per step: 3 fit in 510, the 4th image does not fit whole
    assert lay.truncation.images_dropped == 64 - kept_images
    assert lay.truncation.text_tokens_dropped == 5 * (64 - 4)  # the 4th step's text fitted
    assert lay.n_visual_tokens == 3 * 144  # never a partial grid
    # at N=3 the same document needs 64*(5+9)+2 = 898 tokens: still cut, after 36 whole steps
    lay3 = layout(parts, 3, max_length=512, n_special=2)
    assert lay3.length == 2 + 36 * 14 + 5 and lay3.truncation.images_dropped == 28


def test_text_is_cut_at_a_token_boundary_and_budget_must_leave_room():
    lay = layout([TextPart(tuple(range(100)))], 3, max_length=10, n_special=2)
    assert lay.parts == [TextPart(tuple(range(8)))]
    assert lay.truncation.text_tokens_dropped == 92
    with pytest.raises(ValueError, match="no room"):
        layout([], 3, max_length=2, n_special=2)
