"""The MME encoder: interleaved Documents/Queries -> L2-normalized vectors at a chosen N.

Pipeline per item: decode images (failures are rejected with a reason, the rest still encodes),
run the frozen vision tower once per distinct image (cached by sha256), project the grid, pool
it to N x N, place the N^2 pooled tokens at the image's position among the text token
embeddings, lay the sequence out under the context budget (``pooling.layout``), run the language
model, pool (mean for mme-mini, the final [EOS] state for causal MLLMs) and L2-normalize.

Checkpoints are folders: ``mme.json`` (what backbone, its settings, training record) plus the
weights (``model.safetensors`` for mme-mini, a transformers ``backbone/`` folder for MLLMs).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wikihow_tiir.mme.backbones import HF_KINDS, KINDS, MINI, Backbone, HFBackbone, MiniBackbone
from wikihow_tiir.mme.pooling import ImagePart, Layout, Part, TextPart, layout, matryoshka_pool, valid_ns
from wikihow_tiir.model import Interleaved, Reject

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "wikihow-tiir-mme"
CHECKPOINT_VERSION = 1
META_FILE = "mme.json"
CACHE_LIMIT = 4096  # images; mme-mini keeps 368 KB per image (144 x 1280 fp16)


class CheckpointError(ValueError):
    """A folder that is not an MME checkpoint, or one of another backbone than asked for."""


class ImageDecodeError(ValueError):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def decode_image(data: bytes | None):
    """JPEG/PNG bytes -> RGB PIL image; raises ImageDecodeError(reason) instead of crashing."""
    from PIL import Image

    if not data:
        raise ImageDecodeError("image-missing", "no bytes at an image position")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.convert("RGB")
    except Exception as exc:  # PIL raises many types (UnidentifiedImageError, OSError, DecompressionBomb...)
        raise ImageDecodeError("image-undecodable", f"{type(exc).__name__}: {exc}") from exc


@dataclass(slots=True)
class Prepared:
    """One item ready to encode at any N: text token ids and image cache keys, in reading order."""

    id: str
    parts: list[Part] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return sum(isinstance(p, ImagePart) for p in self.parts)


@dataclass(slots=True)
class TruncationRecord:
    item_id: str
    n: int
    images_dropped: int
    text_tokens_dropped: int


class MMEEncoder(nn.Module):
    """A backbone plus the matryoshka machinery; ``encode(prepared, n)`` gives (B, D) unit vectors."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone
        # sha256 -> vision features (T, Dv), fp16 on CPU; bounded (oldest out first) so that scoring
        # a large corpus does not keep every image's grid; evicted features are recomputed on demand
        self.cache: dict[str, torch.Tensor] = {}
        self.cache_limit = CACHE_LIMIT
        self.rejects: list[Reject] = []
        self.truncations: list[TruncationRecord] = []

    # -- facts
    @property
    def kind(self) -> str:
        return self.backbone.kind

    @property
    def grid_side(self) -> int:
        return self.backbone.grid_side

    @property
    def ns(self) -> list[int]:
        return valid_ns(self.grid_side)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def n_special(self) -> int:
        return len(self.backbone.start_ids) + len(self.backbone.end_ids)

    # -- preparation
    def prepare(self, item_id: str, content: Interleaved, vision_batch: int = 4) -> Prepared:
        return self.prepare_many([(item_id, content)], vision_batch=vision_batch)[0]

    def prepare_many(self, items: Sequence[tuple[str, Interleaved]], vision_batch: int = 4,
                     vision: bool = True) -> list[Prepared]:
        """Tokenize texts, decode images (rejecting failures with a reason), fill the vision cache.

        ``vision=False`` only checks that images decode; their features are computed when first
        projected (for sets larger than the cache, where computing them now would be wasted)."""
        out: list[Prepared] = []
        pending: dict[str, Any] = {}
        for item_id, content in items:
            prep = Prepared(item_id)
            for pos, (text, data, meta) in enumerate(zip(content.texts, content.images, content.image_meta,
                                                         strict=True)):
                if meta is None:
                    ids = self.backbone.tokenize(text or "")
                    if ids:
                        prep.parts.append(TextPart(ids))
                    continue
                key = hashlib.sha256(data).hexdigest() if data else ""
                if key not in self.cache and key not in pending:
                    try:
                        pending[key] = decode_image(data)
                    except ImageDecodeError as exc:
                        self.rejects.append(Reject("mme", item_id, exc.reason, f"image position {pos}: {exc.detail}",
                                                   {"position": pos}))
                        continue
                prep.parts.append(ImagePart(key, data))
            out.append(prep)
        if vision:
            self._compute(pending, vision_batch)
        return out

    def _compute(self, images: dict[str, Any], vision_batch: int = 4) -> dict[str, torch.Tensor]:
        """Run the frozen vision tower on decoded images; cache the features and return them."""
        keys = list(images)
        out: dict[str, torch.Tensor] = {}
        for start in range(0, len(keys), vision_batch):
            chunk = keys[start:start + vision_batch]
            pixels = self.backbone.pixels([images[k] for k in chunk]).to(self.device)
            feats = self.backbone.vision_features(pixels).float().cpu().half()
            for k, f in zip(chunk, feats, strict=True):
                out[k] = self.cache[k] = f.clone()
        while len(self.cache) > self.cache_limit:
            del self.cache[next(iter(self.cache))]
        return out

    # -- encoding
    def project(self, images: Sequence[ImagePart]) -> tuple[dict[str, int], torch.Tensor | None]:
        """Projected grids (K, g, g, D) of the distinct images (with gradients in training)."""
        index: dict[str, int] = {}
        for part in images:
            index.setdefault(part.key, len(index))
        if not index:
            return index, None
        missing = {p.key: p.data for p in images if p.key not in self.cache}
        # evicted from the bounded cache: decode again (it decoded before)
        found = self._compute({k: decode_image(v) for k, v in missing.items()}) if missing else {}
        dtype = self.backbone.projector_parameters()[0].dtype
        feats = torch.stack([found[k] if k in found else self.cache[k] for k in index]).to(self.device, dtype)
        return index, self.backbone.project(feats)

    def layouts(self, prepared: Sequence[Prepared], n: int) -> list[Layout]:
        return [layout(p.parts, n, self.backbone.max_length, self.n_special) for p in prepared]

    def encode(self, prepared: Sequence[Prepared], n: int, grids=None, record: bool = True) -> torch.Tensor:
        """(B, D) L2-normalized embeddings at N = ``n`` (with gradients when grad is enabled)."""
        if n not in self.ns:
            raise ValueError(f"N={n} does not divide the {self.grid_side}x{self.grid_side} grid; "
                             f"choose one of {self.ns}")
        if not prepared:
            return torch.zeros((0, self.backbone.hidden_size), device=self.device)
        layouts = self.layouts(prepared, n)
        if record:
            for p, lay in zip(prepared, layouts, strict=True):
                if lay.truncation.truncated:
                    self.truncations.append(TruncationRecord(p.id, n, lay.truncation.images_dropped,
                                                             lay.truncation.text_tokens_dropped))
        if grids is None:
            grids = self.project([part for lay in layouts for part in lay.parts if isinstance(part, ImagePart)])
        index, grid = grids
        pooled = matryoshka_pool(grid, n) if grid is not None else None
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            return self._run(layouts, index, pooled)

    def _run(self, layouts: list[Layout], index: dict[str, int], pooled) -> torch.Tensor:
        bb = self.backbone
        dev = self.device
        start, end = list(bb.start_ids), list(bb.end_ids)
        all_ids: list[int] = []
        for lay in layouts:
            all_ids += start + [i for p in lay.parts if isinstance(p, TextPart) for i in p.ids] + end
        text_emb = bb.embed_ids(torch.tensor(all_ids, dtype=torch.long, device=dev))
        rows: list[torch.Tensor] = []
        spans_per_row: list[list[tuple[str, int]]] = []
        at = 0

        def take(count: int) -> torch.Tensor:
            nonlocal at
            piece = text_emb[at:at + count]
            at += count
            return piece

        for lay in layouts:
            pieces = [take(len(start))] if start else []
            spans: list[tuple[str, int]] = [("text", len(start))] if start else []
            for part in lay.parts:
                if isinstance(part, TextPart):
                    pieces.append(take(len(part.ids)))
                    spans.append(("text", len(part.ids)))
                else:
                    pieces.append(pooled[index[part.key]].to(text_emb.dtype))
                    spans.append(("image", lay.n))
            pieces.append(take(len(end)))
            spans.append(("text", len(end)))
            rows.append(torch.cat(pieces))
            spans_per_row.append(spans)
        lengths = [r.shape[0] for r in rows]
        width = max(lengths)
        embeds = torch.zeros(len(rows), width, text_emb.shape[-1], dtype=text_emb.dtype, device=dev)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=dev)
        for b, r in enumerate(rows):
            embeds[b, :r.shape[0]] = r
            mask[b, :r.shape[0]] = 1
        hidden = bb.run_lm(embeds, mask, spans_per_row)
        if bb.pooling == "mean":
            m = mask.unsqueeze(-1).to(hidden.dtype)
            vec = (hidden * m).sum(1) / m.sum(1)
        else:  # right padding: the last real position holds the final [EOS] state
            last = torch.tensor(lengths, device=dev) - 1
            vec = hidden[torch.arange(len(rows), device=dev), last]
        return F.normalize(vec.float(), dim=-1)

    def encode_many(self, prepared: Sequence[Prepared], ns: Sequence[int]) -> dict[int, torch.Tensor]:
        """Embeddings at several N, projecting each image once (the Mean/MRL strategies need all N)."""
        grids = self.project([p for item in prepared for p in item.parts if isinstance(p, ImagePart)])
        return {n: self.encode(prepared, n, grids=grids) for n in ns}

    # -- checkpoints
    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.backbone.save(directory)
        meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "backbone": self.kind,
                "grid_side": self.grid_side, "ns": self.ns, "pooling": self.backbone.pooling,
                "hidden_size": self.backbone.hidden_size, "backbone_meta": self.backbone.meta(), **(extra or {})}
        from wikihow_tiir.io import atomic_write_text

        atomic_write_text(directory / META_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return directory


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The ``mme.json`` of a checkpoint; CheckpointError when the folder is not one."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory}: not an MME checkpoint (no {META_FILE}); "
                              "train one with `wikihow-tiir mme train`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: unreadable ({exc})") from exc
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an MME checkpoint (format {meta.get('format')!r})")
    if meta.get("backbone") not in KINDS:
        raise CheckpointError(f"{path}: unknown backbone {meta.get('backbone')!r}; known: {list(KINDS)}")
    return meta


def load_encoder(directory: str | Path, expect_backbone: str | None = None,
                 device: str | torch.device | None = None) -> MMEEncoder:
    """Load a checkpoint; with ``expect_backbone`` a checkpoint of another backbone is refused."""
    directory = Path(directory)
    meta = read_meta(directory)
    kind = meta["backbone"]
    if expect_backbone is not None and kind != expect_backbone:
        raise CheckpointError(f"{directory}: this checkpoint is for backbone {kind!r}, not {expect_backbone!r}; "
                              f"use a {expect_backbone} checkpoint or a fresh output folder")
    if kind == MINI:
        backbone: Backbone = MiniBackbone.load(directory, meta["backbone_meta"])
    elif kind in HF_KINDS:
        backbone = HFBackbone.load(directory, meta["backbone_meta"])
        if backbone.kind != kind:
            raise CheckpointError(f"{directory}: mme.json says {kind!r} but the weights are {backbone.kind!r}")
    else:  # read_meta already refused it
        raise CheckpointError(f"{directory}: unknown backbone {kind!r}")
    if backbone.grid_side != meta["grid_side"]:
        raise CheckpointError(f"{directory}: grid {backbone.grid_side} != recorded {meta['grid_side']}")
    encoder = MMEEncoder(backbone)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return encoder.to(device).eval()


def new_encoder(backbone: str = MINI, seed: int = 0, image_size: int | None = None,
                max_length: int | None = None) -> MMEEncoder:
    """An untrained encoder: ``mme-mini``, ``tiny:<arch>`` (random tiny MLLM) or an MLLM id/path."""
    if backbone == MINI:
        return MMEEncoder(MiniBackbone(image_size=image_size or 384, max_length=max_length or 512, seed=seed))
    if backbone.startswith("tiny:"):
        from wikihow_tiir.mme.backbones import tiny_backbone

        return MMEEncoder(tiny_backbone(backbone.split(":", 1)[1], seed=seed, max_length=max_length or 512))
    name = backbone.split(":", 1)[1] if backbone.startswith("hf:") else backbone
    return MMEEncoder(HFBackbone.from_pretrained(name, image_size=image_size, max_length=max_length))
