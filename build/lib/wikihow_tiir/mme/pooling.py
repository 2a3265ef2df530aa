"""Matryoshka pooling and the token-budget / truncation rules of MME.

Pure functions, no model: the visual grid of one image is average-pooled to N x N (N a divisor
of the grid side), and an interleaved sequence is laid out under the language model's context
budget. Both are small enough to test exhaustively and are shared by every backbone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

DEFAULT_N = 3  # the paper's best setting: 3 x 3 = 9 visual tokens per image


def valid_ns(grid_side: int) -> list[int]:
    """The granularities a grid supports: the divisors of its side (24 -> 1,2,3,4,6,8,12,24)."""
    if grid_side < 1:
        raise ValueError(f"grid side must be positive, got {grid_side}")
    return [n for n in range(1, grid_side + 1) if grid_side % n == 0]


def check_n(n: int, grid_side: int) -> int:
    """``n`` itself when it divides the grid side, else a ValueError naming the valid choices."""
    if n not in valid_ns(grid_side):
        raise ValueError(f"N={n} does not divide the {grid_side}x{grid_side} visual grid; "
                         f"choose one of {valid_ns(grid_side)}")
    return n


def clip_n(n: int, grid_side: int) -> int:
    """The largest valid N not above ``n`` (so the default 3 works on any grid, e.g. 2 on an 8x8 grid)."""
    return max(v for v in valid_ns(grid_side) if v <= max(n, 1))


def matryoshka_pool(grid: torch.Tensor, n: int) -> torch.Tensor:
    """Average-pool projected visual grids (k, g, g, D) to (k, n*n, D), rows in raster order.

    Non-overlapping g/n x g/n windows: every visual token of the full grid contributes to exactly
    one pooled token, so N = g returns the grid unchanged and N = 1 is the mean over the image.
    """
    if grid.ndim != 4 or grid.shape[1] != grid.shape[2]:
        raise ValueError(f"expected a (k, g, g, D) grid, got shape {tuple(grid.shape)}")
    g = grid.shape[1]
    check_n(n, g)
    k, _, _, d = grid.shape
    if n == g:
        return grid.reshape(k, g * g, d)
    x = grid.permute(0, 3, 1, 2)  # (k, D, g, g)
    x = F.avg_pool2d(x, kernel_size=g // n, stride=g // n)
    return x.permute(0, 2, 3, 1).reshape(k, n * n, d)


# --------------------------------------------------------------------------- sequence layout


@dataclass(frozen=True, slots=True)
class TextPart:
    ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ImagePart:
    key: str  # the image's sha256: the vision cache key
    data: bytes = field(default=b"", compare=False, repr=False)  # to recompute evicted features


Part = TextPart | ImagePart


@dataclass(slots=True)
class Truncation:
    """What the budget cut from one sequence (all zero when it fitted)."""

    images_dropped: int = 0
    text_tokens_dropped: int = 0

    @property
    def truncated(self) -> bool:
        return bool(self.images_dropped or self.text_tokens_dropped)


@dataclass(slots=True)
class Layout:
    """The sequence the language model sees at one N: parts in order plus the cut, if any."""

    parts: list[Part] = field(default_factory=list)
    n: int = 1
    n_special: int = 0
    truncation: Truncation = field(default_factory=Truncation)

    @property
    def n_visual_tokens(self) -> int:
        return self.n * self.n * sum(isinstance(p, ImagePart) for p in self.parts)

    @property
    def n_text_tokens(self) -> int:
        return sum(len(p.ids) for p in self.parts if isinstance(p, TextPart))

    @property
    def length(self) -> int:
        return self.n_special + self.n_text_tokens + self.n_visual_tokens


def layout(parts: list[Part], n: int, max_length: int, n_special: int) -> Layout:
    """Lay ``parts`` out at N under ``max_length`` tokens (special tokens included).

    The truncation rule (README, "Token budget"): right truncation in reading order. Parts are
    kept from the start while they fit; the first part that does not fit ends the sequence. A
    text part is cut at a token boundary; an image that does not fit whole is dropped whole (a
    partial grid would misplace the pooled tokens), and so is everything after the cut. The
    special tokens (e.g. the final [EOS]/[SEP] whose state is pooled) are always kept.
    """
    budget = max_length - n_special
    if budget < 1:
        raise ValueError(f"max_length {max_length} leaves no room after {n_special} special tokens")
    per_image = n * n
    kept: list[Part] = []
    used = 0
    cut = Truncation()
    for i, part in enumerate(parts):
        size = per_image if isinstance(part, ImagePart) else len(part.ids)
        if used + size <= budget:
            kept.append(part)
            used += size
            continue
        if isinstance(part, TextPart) and budget - used > 0:
            room = budget - used
            kept.append(TextPart(part.ids[:room]))
            cut.text_tokens_dropped += size - room
            used = budget
        elif isinstance(part, ImagePart):
            cut.images_dropped += 1
        else:
            cut.text_tokens_dropped += size
        for rest in parts[i + 1:]:
            if isinstance(rest, ImagePart):
                cut.images_dropped += 1
            else:
                cut.text_tokens_dropped += len(rest.ids)
        break
    return Layout(parts=kept, n=n, n_special=n_special, truncation=cut)
