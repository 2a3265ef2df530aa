"""Two-tower image-text models, scored by Vector-Fusion by default (Table 2 rows 8-9).

* ``clip:ID`` - a `transformers` CLIP-style model (``clip.py``): ``get_text_features`` /
  ``get_image_features``, as the paper's ``gen_embeddings_clip.py`` (``--model openai``);
* ``jina-clip:ID`` - Jina-CLIP (v1/v2), whose code ships with its weights (transformers'
  ``trust_remote_code``, which this family implies: there is no other way to run it). As the
  paper's script (``--model jina``): queries ``encode_text(texts, task="retrieval.query")``,
  documents ``encode_text(texts)``, images ``encode_image(images)`` (PIL images), each returning
  unit vectors; fp16 on CUDA.

Both give the fusion adaptation its text and image towers; the image tower also encodes a page
screenshot (``--adapt screenshot``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wikihow_tiir.evaluate.adapters import paper_text
from wikihow_tiir.evaluate.base import Role
from wikihow_tiir.evaluate.families.common import (
    Family,
    Images,
    RoleText,
    batched,
    load_or_explain,
    local_only,
    torch_dtype,
)

JINA_QUERY_TASK = "retrieval.query"


def load_clip_family(name: str, opt) -> Family:
    from wikihow_tiir.evaluate.clip import load_clip

    towers = load_clip(name, device=opt.device, dtype=opt.dtype, batch_size=opt.batch_size)
    spec = f"clip:{name}"
    return Family(spec=spec, default_adapt="fusion", text=RoleText(spec, towers.encode_texts),
                  image=Images(spec, towers.encode_images), joiner=paper_text,
                  info={"max_length": getattr(towers, "max_length", None),
                        "dtype": str(getattr(towers.model, "dtype", "float32")).replace("torch.", "")})


class JinaClip:
    """Jina-CLIP through its own ``encode_text`` / ``encode_image``."""

    def __init__(self, name: str, device: str = "cpu", dtype: str = "auto", batch_size: int = 32):
        td = torch_dtype(dtype, device, "float16")

        def load():
            from transformers import AutoModel

            return AutoModel.from_pretrained(name, trust_remote_code=True, local_files_only=local_only(name),
                                             dtype=td)

        self.model = load_or_explain("jina-clip", name, load).eval().to(device)
        for method in ("encode_text", "encode_image"):
            if not callable(getattr(self.model, method, None)):
                from wikihow_tiir.evaluate.clip import ModelUnavailableError

                raise ModelUnavailableError(f"jina-clip:{name} ({type(self.model).__name__}) has no {method}(); "
                                            f"it is not a Jina-CLIP model")
        self.name, self.batch_size = f"jina-clip:{name}", batch_size
        self.dtype = str(td).replace("torch.", "")
        # v2 takes a task (the paper's retrieval.query); v1's encode_text has no such argument
        import inspect

        params = inspect.signature(self.model.encode_text).parameters
        self.tasks = "task" in params

    @staticmethod
    def _array(out) -> np.ndarray:
        if hasattr(out, "detach"):
            out = out.detach().float().cpu().numpy()
        return np.asarray(out, dtype=np.float32)

    def encode_texts(self, texts: Sequence[str], role: Role) -> np.ndarray:
        import torch

        def one(batch):
            with torch.inference_mode():
                if role == "query" and self.tasks:
                    return self._array(self.model.encode_text(batch, task=JINA_QUERY_TASK))
                return self._array(self.model.encode_text(batch))

        return batched(one, texts, self.batch_size)

    def encode_images(self, images: Sequence) -> np.ndarray:
        import torch

        def one(batch):
            with torch.inference_mode():
                return self._array(self.model.encode_image(batch))

        return batched(one, images, self.batch_size)


def load_jina_family(name: str, opt) -> Family:
    enc = JinaClip(name, device=opt.device, dtype=opt.dtype, batch_size=opt.batch_size)
    return Family(spec=enc.name, default_adapt="fusion", text=RoleText(enc.name, enc.encode_texts),
                  image=Images(enc.name, enc.encode_images), joiner=paper_text,
                  info={"query_task": JINA_QUERY_TASK, "dtype": enc.dtype})
