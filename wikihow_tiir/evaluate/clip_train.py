"""``wikihow-tiir clip train``: fine-tune a CLIP model for Vector-Fusion on the train split (Table 2
row 9, "CLIP-large fine-tuned").

The paper does not publish this recipe beyond "fine-tuned"; we use its contrastive setup of §3 (MME's
training): InfoNCE over the batch with temperature 0.05, in-batch negatives plus ``hard_negatives``
random other documents per query, AdamW at 5e-5 with a linear warm-up then linear decay, batch 32,
3 epochs. A query and a document are embedded exactly as ``evaluate --model clip:FOLDER`` scores
them (``adapters.VectorFusion``: the paper's text string, unit text and image vectors, the mean of
the image unit vectors or one merged image, the chosen ``--fusion``), with gradients through both
towers. The result is a `transformers` folder (model, tokenizer, image processor) plus
``train_log.json`` (settings, data, the loss of every step); same data + seed = same weights on one
machine.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from wikihow_tiir.evaluate.adapters import FUSIONS, decode_images, merge_images, paper_text
from wikihow_tiir.retrieval.dataset import DatasetError, load_split


@dataclass
class ClipTrainConfig:
    fusion: str = "NAddNorm"
    fusion_images: str = "mean"
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    temperature: float = 0.05
    warmup: float = 0.1
    hard_negatives: int = 1
    max_steps: int | None = None
    seed: int = 0
    device: str = "auto"
    weight_decay: float = 0.01

    def check(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; choose one of {', '.join(FUSIONS)}")
        if self.fusion_images not in ("mean", "merged"):
            raise ValueError(f"fusion images must be mean or merged, not {self.fusion_images!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.batch_size < 2 and self.hard_negatives < 1:
            raise ValueError("a batch of 1 without hard negatives has nothing to contrast")
        if not self.temperature > 0 or not self.lr > 0:
            raise ValueError("temperature and lr must be positive")


def fuse(text, image, fusion: str):
    """The Vector-Fusion of unit text vectors and (mean) image vectors, in torch (same as the adapter)."""
    import torch
    import torch.nn.functional as F

    how, norm_parts = FUSIONS[fusion]
    if norm_parts:
        image = F.normalize(image, dim=-1)
    if how == "concat":
        out = torch.cat([text, image], dim=-1)
    elif how == "sum":
        out = text + image
    else:
        out = text * image
    return F.normalize(out, dim=-1)


class _Towers:
    def __init__(self, model, tokenizer, processor, device: str, max_length: int):
        self.model, self.tokenizer, self.processor = model, tokenizer, processor
        self.device, self.max_length = device, max_length

    def features(self, items, fusion: str, images_mode: str):
        import torch
        import torch.nn.functional as F

        def _t(out):
            return out.pooler_output if hasattr(out, "pooler_output") and not hasattr(out, "shape") else out

        tok = self.tokenizer([paper_text(it.content.texts) for it in items], padding=True, truncation=True,
                             max_length=self.max_length, return_tensors="pt").to(self.device)
        text = F.normalize(_t(self.model.get_text_features(input_ids=tok["input_ids"],
                                                           attention_mask=tok["attention_mask"])), dim=-1)
        pictures = [decode_images(it) for it in items]
        if images_mode == "merged":
            flat, counts = [merge_images(p) for p in pictures], [1] * len(items)
        else:
            flat, counts = [im for p in pictures for im in p], [len(p) for p in pictures]
        pixels = self.processor(images=flat, return_tensors="pt")["pixel_values"].to(self.device)
        img = F.normalize(_t(self.model.get_image_features(pixel_values=pixels)), dim=-1)
        parts = torch.split(img, counts)
        image = torch.stack([p.mean(dim=0) for p in parts])
        return fuse(text, image, fusion)


def _documents(ev, ids: set[str]) -> dict:
    """The documents with these ids, with image bytes (only those are read from the corpus files)."""
    from wikihow_tiir.model import document_from_row

    if ev.documents._items is not None:
        return {d.id: d for d in ev.documents._items if d.id in ids}
    from wikihow_tiir.storage import read_rows_where

    return {r["id"]: document_from_row(r) for r in read_rows_where(ev.documents.paths, "id", ids)}


def train_clip(dataset: str | Path, model_name: str, output: Path, cfg: ClipTrainConfig | None = None,
               split: str = "train", log=print) -> dict[str, Any]:
    """Fine-tune ``model_name`` on ``split``'s (query, positive) pairs; see the module doc."""
    import torch

    from wikihow_tiir.evaluate.adapters import _require_images
    from wikihow_tiir.evaluate.families.common import load_or_explain, local_only
    from wikihow_tiir.io import atomic_write_json

    cfg = cfg or ClipTrainConfig()
    cfg.check()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    ev = load_split(dataset, split)
    pairs = sorted((q, d) for q, judged in ev.qrels.items() for d, g in judged.items() if g > 0)
    rng = random.Random(cfg.seed)
    all_docs = sorted(ev.documents.ids)
    if cfg.hard_negatives and len(all_docs) < 2:
        raise DatasetError("hard negatives need at least two documents in the corpus")

    def load():
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        local = local_only(model_name)
        return (AutoModel.from_pretrained(model_name, local_files_only=local, dtype=torch.float32),
                AutoTokenizer.from_pretrained(model_name, local_files_only=local),
                AutoImageProcessor.from_pretrained(model_name, local_files_only=local))

    torch.manual_seed(cfg.seed)
    model, tokenizer, processor = load_or_explain("clip", model_name, load)
    if not (hasattr(model, "get_text_features") and hasattr(model, "get_image_features")):
        raise ValueError(f"{model_name} ({type(model).__name__}) is not a two-tower image-text model")
    model.to(device).train()
    tcfg = getattr(model.config, "text_config", model.config)
    limits = [int(getattr(tcfg, "max_position_embeddings", 77)), int(tokenizer.model_max_length or 0)]
    towers = _Towers(model, tokenizer, processor, device, min(x for x in limits if 0 < x < 1_000_000))

    queries = {q.id: q for q in ev.queries.load(images=True)}
    steps_per_epoch = math.ceil(len(pairs) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs if cfg.max_steps is None else min(cfg.max_steps,
                                                                           steps_per_epoch * cfg.epochs)
    warm = max(1, int(total * cfg.warmup)) if cfg.warmup > 0 else 0
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    losses: list[float] = []
    step = 0
    for epoch in range(cfg.epochs):
        order = list(pairs)
        rng.shuffle(order)
        for b in range(0, len(order), cfg.batch_size):
            if step >= total:
                break
            batch = order[b:b + cfg.batch_size]
            positives = [d for _, d in batch]
            negatives = []
            for _, d in batch:
                for _ in range(cfg.hard_negatives):
                    n = rng.choice(all_docs)
                    while n == d:
                        n = rng.choice(all_docs)
                    negatives.append(n)
            docs = _documents(ev, set(positives) | set(negatives))
            q_items = [queries[q] for q, _ in batch]
            d_items = [docs[d] for d in positives + negatives]
            _require_images(q_items + d_items, "clip train")
            qv = towers.features(q_items, cfg.fusion, cfg.fusion_images)
            dv = towers.features(d_items, cfg.fusion, cfg.fusion_images)
            logits = qv @ dv.T / cfg.temperature
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch), device=device))
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            sched.step()
            losses.append(round(float(loss.detach()), 6))
            step += 1
            if step == 1 or step % 10 == 0 or step == total:
                log(f"step {step}/{total} (epoch {epoch + 1}) loss {losses[-1]:.4f}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    processor.save_pretrained(output)
    result = {"base_model": model_name, "steps": step, "pairs": len(pairs), "loss_first": losses[0] if losses else None,
              "loss_last": losses[-1] if losses else None, "config": asdict(cfg), "device": device,
              "dataset": {"source": str(dataset), "split": split, "revision": ev.revision}, "losses": losses}
    atomic_write_json(output / "train_log.json", result)
    return result
