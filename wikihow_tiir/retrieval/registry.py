"""Model families that packages outside ``evaluate`` provide, found by the prefix of a ``--model`` spec.

``evaluate`` builds its own baselines (``evaluate/baselines.py``); a spec ``PREFIX:ARG`` whose prefix is
registered here is built by that family's factory (``mme:PATH`` -> ``wikihow_tiir.mme.factory``). A
package registers its family when its registering module is imported; :data:`PROVIDERS` names that
module per prefix and is imported only when a spec (or an error message) asks for it, so ``evaluate``
and the provider never import each other and nothing heavy loads before a model is built.

A new model family: a module calling :func:`register` and one line in :data:`PROVIDERS` (or call
:func:`register` yourself before scoring, e.g. in a notebook).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# prefix -> the module whose import registers it
PROVIDERS: dict[str, str] = {
    "mme": "wikihow_tiir.mme.factory",
}


@dataclass(slots=True)
class ModelOptions:
    """Settings of ``--model`` specs that need them (every factory receives them all)."""

    fusion: str = "NAddNorm"  # vector fusion: gen_embeddings_clip.py's --it_type names (adapters.FUSIONS)
    fusion_images: str = "mean"  # several images: mean of per-image unit vectors | one merged image
    captions: Mapping[str, str] | None = None
    mme_n: int | None = None  # None: MME's default (the paper's N = 3)
    device: str = "cpu"
    dtype: str = "auto"  # families: the paper's dtype on CUDA, float32 on CPU
    batch_size: int = 32  # families: items per forward pass
    max_length: int | None = None  # st: the paper's --maxtoken; gme: 1800 unless set
    query_prefix: str | None = None  # st: override the paper's query instruction
    document_prefix: str | None = None
    trust_remote_code: bool = False  # st: models whose code ships with the weights (GTE-large-v1.5 ...)
    adapt: str | None = None  # families: --adapt (None: the family's default)
    screenshot_font: Path | None = None  # --adapt screenshot: a font with the items' script
    dataset: str | None = None  # the dataset being scored: a bare ``PREFIX`` (``mme``) may mean its own model


@dataclass(frozen=True, slots=True)
class ModelFamily:
    """``build(arg, options)`` -> a RetrievalModel or ScoringModel (``evaluate/base.py``) for ``PREFIX:ARG``;
    ``sweep(documents, queries, qrels, arg, output_dir, options=)`` -> a summary, for ``evaluate --mme-sweep``."""

    prefix: str
    argument: str  # what ARG is, for help and errors: "PATH"
    build: Callable[[str, ModelOptions], Any]
    sweep: Callable[..., dict[str, Any]] | None = None
    # a bare ``PREFIX`` (no ``:ARG``) is a spec too, built with ARG "" (``mme``: the scorer released with
    # ``ModelOptions.dataset``); what it means, for help
    bare: str | None = None


_FAMILIES: dict[str, ModelFamily] = {}


def register(family: ModelFamily) -> None:
    """Make ``family.prefix:ARG`` a ``--model`` spec (a second registration of a prefix replaces the first)."""
    _FAMILIES[family.prefix] = family


def family(spec: str) -> tuple[ModelFamily, str] | None:
    """The family of ``PREFIX:ARG`` and its ARG, or None when no family has that prefix."""
    prefix, sep, arg = spec.partition(":")
    if prefix not in _FAMILIES and prefix in PROVIDERS:
        importlib.import_module(PROVIDERS[prefix])
    found = _FAMILIES.get(prefix)
    if found is None or (not sep and found.bare is None):
        return None
    return found, arg


def spec_forms() -> list[str]:
    """``PREFIX:ARG`` of every family (providers are imported: they are light), for help and errors."""
    for prefix, module in PROVIDERS.items():
        if prefix not in _FAMILIES:
            importlib.import_module(module)
    return [f"{f.prefix}:{f.argument}" for _, f in sorted(_FAMILIES.items())]
