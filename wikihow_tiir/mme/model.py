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
from collections import OrderedDict
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
# a released scorer (``scorer/`` of a build) keeps the same record as ``config.json``, the Hub's usual name
META_FILES = (META_FILE, "config.json")
CACHE_MB = 1024  # frozen vision features kept; mme-mini keeps 368 KB per image (144 x 1280 fp16)


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
        # sha256 -> vision features (T, Dv), fp16 on CPU; bounded in bytes (least recently used out) so that
        # training or scoring a large corpus does not keep every image's grid; evicted features are
        # recomputed on demand, identically (the tower is frozen and deterministic)
        self.cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.cache_bytes = CACHE_MB * 2**20
        self._cached = 0  # bytes held
        self.vision_runs = 0  # images through the tower (a cache that is too small shows here)
        self.rejects: list[Reject] = []
        self.truncations: list[TruncationRecord] = []
        # "bf16" (autocast of the projector and the language model) or "fp32"; None: bf16 on CUDA, fp32 on
        # CPU. Training on a CPU with native bf16 sets "bf16" (~3x the fp32 matmul rate); scoring stays fp32
        self.precision: str | None = None

    def autocast(self):
        precision = self.precision or ("bf16" if self.device.type == "cuda" else "fp32")
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

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
    @property
    def vision_batch(self) -> int:
        """Images per pass of the vision tower: one on CPU (the fastest there, and a picture's features then
        never depend on which others it was batched with, so evicted features come back bit for bit), 16 on
        a GPU."""
        return 1 if self.device.type == "cpu" else 16

    def prepare(self, item_id: str, content: Interleaved, vision_batch: int | None = None) -> Prepared:
        return self.prepare_many([(item_id, content)], vision_batch=vision_batch)[0]

    def prepare_many(self, items: Sequence[tuple[str, Interleaved]], vision_batch: int | None = None,
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
                if key not in pending and self.cached(key) is None:
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

    def _remember(self, key: str, features: torch.Tensor) -> None:
        old = self.cache.pop(key, None)
        if old is not None:
            self._cached -= old.numel() * old.element_size()
        self.cache[key] = features
        self._cached += features.numel() * features.element_size()
        while self._cached > self.cache_bytes and len(self.cache) > 1:
            _, out = self.cache.popitem(last=False)
            self._cached -= out.numel() * out.element_size()

    def cached(self, key: str) -> torch.Tensor | None:
        """The cached vision features of an image (marked as recently used), or None."""
        found = self.cache.get(key)
        if found is not None:
            self.cache.move_to_end(key)
        return found

    def clear_cache(self) -> None:
        self.cache.clear()
        self._cached = 0

    def _compute(self, images: dict[str, Any], vision_batch: int | None = None) -> dict[str, torch.Tensor]:
        """Run the frozen vision tower on decoded images; cache the features and return them."""
        keys = list(images)
        vision_batch = vision_batch or self.vision_batch
        out: dict[str, torch.Tensor] = {}
        for start in range(0, len(keys), vision_batch):
            chunk = keys[start:start + vision_batch]
            pixels = self.backbone.pixels([images[k] for k in chunk]).to(self.device)
            # never under the training's autocast: features are the same whenever they are (re)computed
            with torch.autocast(self.device.type, enabled=False):
                feats = self.backbone.vision_features(pixels).float().cpu().half()
            self.vision_runs += len(chunk)
            for k, f in zip(chunk, feats, strict=True):
                out[k] = f.clone()
                self._remember(k, out[k])
        return out

    # -- encoding
    def project(self, images: Sequence[ImagePart]) -> tuple[dict[str, int], torch.Tensor | None]:
        """Projected grids (K, g, g, D) of the distinct images (with gradients in training)."""
        index: dict[str, int] = {}
        for part in images:
            index.setdefault(part.key, len(index))
        if not index:
            return index, None
        # taken before computing the missing ones: computing may evict features this call needs
        have = {k: f for k in index if (f := self.cached(k)) is not None}
        missing = {p.key: p.data for p in images if p.key not in have}
        # evicted from the bounded cache (or never computed): decode again (it decoded before)
        have.update(self._compute({k: decode_image(v) for k, v in missing.items()}) if missing else {})
        dtype = self.backbone.projector_parameters()[0].dtype
        feats = torch.stack([have[k].to(dtype) for k in index]).to(self.device)
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
        with self.autocast():
            if grids is None:
                grids = self.project([part for lay in layouts for part in lay.parts if isinstance(part, ImagePart)])
            index, grid = grids
            pooled = matryoshka_pool(grid, n) if grid is not None else None
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

    def encode_many(self, prepared: Sequence[Prepared], ns: Sequence[int], record: bool = True
                    ) -> dict[int, torch.Tensor]:
        """Embeddings at several N, projecting each image once (the Mean/MRL strategies need all N)."""
        with self.autocast():
            grids = self.project([p for item in prepared for p in item.parts if isinstance(p, ImagePart)])
        return {n: self.encode(prepared, n, grids=grids, record=record) for n in ns}

    # -- checkpoints
    def meta(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "backbone": self.kind,
                "grid_side": self.grid_side, "ns": self.ns, "pooling": self.backbone.pooling,
                "hidden_size": self.backbone.hidden_size, "backbone_meta": self.backbone.meta(), **(extra or {})}

    def save(self, directory: str | Path, extra: dict[str, Any] | None = None, meta_file: str = META_FILE) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.backbone.save(directory)
        from wikihow_tiir.io import atomic_write_text

        atomic_write_text(directory / meta_file, json.dumps(self.meta(extra), indent=2, sort_keys=True) + "\n")
        return directory


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The ``mme.json`` (or a released scorer's ``config.json``) of a checkpoint; CheckpointError when the
    folder is not one."""
    found = [Path(directory) / name for name in META_FILES if (Path(directory) / name).is_file()]
    if not found:
        raise CheckpointError(f"{directory}: not an MME checkpoint (no {META_FILE} or config.json); "
                              "train one with `wikihow-tiir mme train`")
    path = found[0]
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
