"""``st:ID_OR_PATH``: any sentence-transformers model, with the paper's query instructions (Table 2's
"Text w/ Caption" rows: BGE-large-v1.5, GTE-large-v1.5, GTE-Qwen2-7B-instruct).

The paper's ``gen_embeddings_text.py`` joins the text positions with newlines and, by model:

==================  ================================================================  ==========
model (name holds)  query / document prefix                                           pooling
==================  ================================================================  ==========
``gte-qwen``        ``Instruct: Given a query, retrieve relevant wikiHow document that  last token
                    answer the query\\nQuery: `` / none
``bge``             ``Represent this query for searching relevant wikiHow passages: ``  CLS
                    / none
``gte-large``       ``query:`` / ``passage:`` (no space after the colon)              CLS (first)
``e5-``             none / none                                                       mean
==================  ================================================================  ==========

Other models get no prefix and keep their own pooling. The prefix is put in front of the text
(not through sentence-transformers' prompts, which some pooling configs exclude from the pooled
tokens); the pooling is set to the paper's where the model's own config differs. ``--query-prefix``
/ ``--document-prefix`` override the prefixes, ``--max-length`` the token limit (the paper's
``--maxtoken``; default: the model's). The paper runs these models in bf16 (``--dtype auto`` on CUDA).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wikihow_tiir.evaluate.adapters import newline_text
from wikihow_tiir.evaluate.base import Role
from wikihow_tiir.evaluate.families.common import Family, RoleText, load_or_explain, local_only, torch_dtype

GTE_INSTRUCT_TASK = "Given a query, retrieve relevant wikiHow document that answer the query"
BGE_QUERY_INSTRUCTION = "Represent this query for searching relevant wikiHow passages:"


@dataclass(frozen=True)
class PaperTextModel:
    pattern: str  # searched in the lower-cased model name
    query_prefix: str
    document_prefix: str
    pooling: str | None  # sentence-transformers pooling mode; None: the model's own


# order matters: gte-qwen before gte-large; the first match wins
PAPER_TEXT_MODELS = (
    PaperTextModel(r"gte-qwen", f"Instruct: {GTE_INSTRUCT_TASK}\nQuery: ", "", "lasttoken"),
    PaperTextModel(r"bge", f"{BGE_QUERY_INSTRUCTION} ", "", "cls"),
    PaperTextModel(r"gte-large", "query:", "passage:", "cls"),
    PaperTextModel(r"(^|[/_-])e5-", "", "", "mean"),
)


def paper_settings(name: str) -> PaperTextModel | None:
    """The paper's prefixes and pooling for a model name, or None (no prefix, own pooling)."""
    low = name.lower().rstrip("/")
    for m in PAPER_TEXT_MODELS:
        if re.search(m.pattern, low):
            return m
    return None


class SentenceTransformerText:
    """A TextEncoder over a sentence-transformers model with role prefixes."""

    def __init__(self, name: str, device: str = "cpu", dtype: str = "auto", batch_size: int = 32,
                 max_length: int | None = None, query_prefix: str | None = None,
                 document_prefix: str | None = None, trust_remote_code: bool = False):
        paper = paper_settings(name)
        td = torch_dtype(dtype, device, "bfloat16")

        def load():
            from wikihow_tiir.encoders.st import load_sentence_transformer

            return load_sentence_transformer(name, device=device, local_files_only=local_only(name),
                                             trust_remote_code=trust_remote_code, model_kwargs={"dtype": td})

        self.model = load_or_explain("st", name, load)
        self.dtype = str(td).replace("torch.", "")
        self.pooling = self._set_pooling(paper.pooling if paper else None)
        if max_length is not None:
            self.model.max_seq_length = max_length
        self.name, self.batch_size = f"st:{name}", batch_size
        self.query_prefix = query_prefix if query_prefix is not None else (paper.query_prefix if paper else "")
        self.document_prefix = (document_prefix if document_prefix is not None
                                else (paper.document_prefix if paper else ""))

    def _set_pooling(self, mode: str | None) -> str | None:
        from wikihow_tiir.encoders.st import pooling_modules

        pools = pooling_modules(self.model)
        if not pools:
            return None
        if mode is not None and pools[0].pooling_mode != mode:
            pools[0].pooling_mode = mode  # the paper pools so; one mode keeps the output dimension
        return str(pools[0].pooling_mode)

    def encode_texts(self, texts: Sequence[str], role: Role) -> np.ndarray:
        prefix = self.query_prefix if role == "query" else self.document_prefix
        vecs = self.model.encode([prefix + t for t in texts], batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=False, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)

    def info(self) -> dict:
        return {"query_prefix": self.query_prefix, "document_prefix": self.document_prefix,
                "pooling": self.pooling, "max_length": int(self.model.max_seq_length or 0), "dtype": self.dtype}


def load(name: str, opt) -> Family:
    enc = SentenceTransformerText(name, device=opt.device, dtype=opt.dtype, batch_size=opt.batch_size,
                                  max_length=opt.max_length, query_prefix=opt.query_prefix,
                                  document_prefix=opt.document_prefix, trust_remote_code=opt.trust_remote_code)
    return Family(spec=f"st:{name}", default_adapt="text", text=RoleText(enc.name, enc.encode_texts),
                  joiner=newline_text, info=enc.info())
