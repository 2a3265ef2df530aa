"""Any sentence-transformers model (the ``st:`` evaluation family: BGE, GTE, GTE-Qwen2 ...), loaded and
built here so that ``sentence_transformers`` is opened in one package (``encoders/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_sentence_transformer(name: str, device: str = "cpu", local_files_only: bool = True,
                              trust_remote_code: bool = False, model_kwargs: dict[str, Any] | None = None):
    """A ``SentenceTransformer`` from a local folder or the Hugging Face cache."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(name, device=device, local_files_only=local_files_only,
                               trust_remote_code=trust_remote_code, model_kwargs=model_kwargs or {})


def pooling_modules(model) -> list:
    """The model's pooling modules (to read or set the pooling mode)."""
    from sentence_transformers.sentence_transformer.modules import Pooling

    return [m for m in model if isinstance(m, Pooling)]


def save_sentence_transformer(folder: Path, transformer_folder: Path, dim: int, pooling: str = "mean",
                              max_seq_length: int = 64) -> Path:
    """A ``transformers`` checkpoint + a pooling layer saved as a sentence-transformers model."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    word = Transformer(str(transformer_folder), max_seq_length=max_seq_length)
    SentenceTransformer(modules=[word, Pooling(dim, pooling_mode=pooling)]).save(str(folder))
    return Path(folder)
