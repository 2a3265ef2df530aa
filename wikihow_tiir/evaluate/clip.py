"""CLIP-style two-tower models by name, scored by vector fusion (the paper's Jina-CLIP / CLIP rows).

``clip:NAME`` loads NAME with `transformers` (a Hub id such as ``openai/clip-vit-large-patch14`` or
a local folder: any model with ``get_text_features`` / ``get_image_features``, e.g. CLIP, SigLIP), as
the paper's ``gen_embeddings_clip.py`` does: texts tokenized with padding and truncation at the
tokenizer's limit (77 for CLIP), images through the model's image processor, fp16 on CUDA;
``clip:open_clip:ARCH/PRETRAINED`` loads an `open_clip` model (the ``clip`` extra). No weights for
such models ship in any PyPI package, so offline this fails, with a message saying so, unless the
weights are in the local Hugging Face cache or a local folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wikihow_tiir.errors import WikihowTiirError
from wikihow_tiir.evaluate.base import Role


class ModelUnavailableError(WikihowTiirError, RuntimeError):
    """A model whose weights or code cannot be loaded here."""

    reason = "model-unavailable"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _unavailable(name: str, exc: BaseException) -> ModelUnavailableError:
    where = ("the Hub cannot be reached (offline: HF_HUB_OFFLINE=1)" if _offline()
             else "the download failed")
    return ModelUnavailableError(
        f"weights for CLIP model {name!r} are not available: they are not in a local folder or the local "
        f"Hugging Face cache, and {where}. Download them on a connected machine "
        f"(huggingface-cli download {name}) or pass a folder: --model clip:/path/to/model. ({exc})")


class HFClipTowers:
    """The text and image towers of a `transformers` two-tower model; ``text`` / ``image`` are encoders."""

    def __init__(self, name: str, device: str = "cpu", batch_size: int = 32, dtype: str = "auto"):
        try:
            import torch  # noqa: F401
            from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

            from wikihow_tiir.evaluate.families.common import torch_dtype

            local_only = _offline() or Path(name).is_dir()
            self.model = AutoModel.from_pretrained(name, local_files_only=local_only,
                                                   dtype=torch_dtype(dtype, device, "float16")).eval().to(device)
            self.tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_only)
            self.processor = AutoImageProcessor.from_pretrained(name, local_files_only=local_only)
        except OSError as exc:
            raise _unavailable(name, exc) from exc
        if not (hasattr(self.model, "get_text_features") and hasattr(self.model, "get_image_features")):
            raise ModelUnavailableError(f"{name!r} ({type(self.model).__name__}) is not a two-tower image-text "
                                        f"model: it has no get_text_features / get_image_features")
        self.name, self.device, self.batch_size = name, device, batch_size
        cfg = getattr(self.model.config, "text_config", self.model.config)
        # the tokenizer's own limit (the paper's ``truncation=True``), never past the position table
        limits = [int(getattr(cfg, "max_position_embeddings", 77)), int(self.tokenizer.model_max_length or 0)]
        self.max_length = min(x for x in limits if 0 < x < 1_000_000)
        self.text = _Tower(self, "text")
        self.image = _Tower(self, "image")

    @staticmethod
    def _tensor(out):
        # transformers 5 may return a model output instead of a tensor
        if hasattr(out, "pooler_output") and not hasattr(out, "shape"):
            out = out.pooler_output
        return out.float().cpu().numpy()

    def encode_texts(self, texts: Sequence[str], role: Role) -> np.ndarray:
        import torch

        parts = []
        with torch.inference_mode():
            for s in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(list(texts[s:s + self.batch_size]), padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(self.device)
                batch = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
                parts.append(self._tensor(self.model.get_text_features(**batch)))
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def encode_images(self, images: Sequence) -> np.ndarray:
        import torch

        parts = []
        with torch.inference_mode():
            for s in range(0, len(images), self.batch_size):
                pixels = self.processor(images=list(images[s:s + self.batch_size]), return_tensors="pt")
                parts.append(self._tensor(self.model.get_image_features(
                    pixel_values=pixels["pixel_values"].to(self.device, self.model.dtype))))
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


class OpenClipTowers(HFClipTowers):
    def __init__(self, spec: str, device: str = "cpu", batch_size: int = 32):
        try:
            import open_clip
        except ImportError as exc:
            raise ModelUnavailableError("open_clip is not installed: pip install 'wikihow-tiir[clip]' "
                                        "(open-clip-torch)") from exc
        arch, _, pretrained = spec.partition("/")
        try:
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=pretrained or None, device=device)
        except Exception as exc:  # open_clip raises RuntimeError/OSError/hub errors when weights are absent
            raise _unavailable(f"open_clip:{spec}", exc) from exc
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.name, self.device, self.batch_size = f"open_clip:{spec}", device, batch_size
        self.text = _Tower(self, "text")
        self.image = _Tower(self, "image")

    def encode_texts(self, texts: Sequence[str], role: Role) -> np.ndarray:
        import torch

        with torch.inference_mode():
            parts = [self.model.encode_text(self.tokenizer(list(texts[s:s + self.batch_size])).to(self.device))
                     .float().cpu().numpy() for s in range(0, len(texts), self.batch_size)]
        return np.concatenate(parts)

    def encode_images(self, images: Sequence) -> np.ndarray:
        import torch

        with torch.inference_mode():
            parts = []
            for s in range(0, len(images), self.batch_size):
                x = torch.stack([self.preprocess(im) for im in images[s:s + self.batch_size]]).to(self.device)
                parts.append(self.model.encode_image(x).float().cpu().numpy())
        return np.concatenate(parts)


class _Tower:
    """One side of a two-tower model, as a TextEncoder or ImageEncoder."""

    def __init__(self, towers, side: str):
        self.towers, self.side = towers, side
        self.name = f"clip:{towers.name}"

    def encode_texts(self, texts: Sequence[str], role: Role) -> np.ndarray:
        return self.towers.encode_texts(texts, role)

    def encode_images(self, images: Sequence) -> np.ndarray:
        return self.towers.encode_images(images)


def load_clip(name: str, device: str = "cpu", dtype: str = "auto", batch_size: int = 32):
    """``openai/clip-vit-base-patch32`` | ``/local/folder`` | ``open_clip:ViT-B-32/laion2b_s34b_b79k``."""
    if name.startswith("open_clip:"):
        return OpenClipTowers(name[len("open_clip:"):], device=device, batch_size=batch_size)
    return HFClipTowers(name, device=device, dtype=dtype, batch_size=batch_size)
