"""Model families behind ``--model PREFIX:ID`` with the paper's exact inputs (§4.2), and the
adaptations (``--adapt``, Table 3) that turn a family's parts into a RetrievalModel.

==============  ============================================  ===============  ===========================
prefix          model                                         default adapt    other adaptations
==============  ============================================  ===============  ===========================
``gme:``        GME (Qwen2-VL), ``gme.py``                    merged-image     text, captions, fusion,
                                                                               screenshot
``e5v:``        E5-V (LLaVA-NeXT), ``e5v.py``                 merged-image     text, captions, fusion,
                                                                               screenshot
``st:``         any sentence-transformers model, ``st.py``    text             captions
``jina-clip:``  Jina-CLIP, ``two_tower.py``                   fusion           text, captions, screenshot
``clip:``       a transformers / open_clip two-tower model    fusion           text, captions, screenshot
==============  ============================================  ===============  ===========================

Each module has a ``load(name, options) -> Family``; the heavy imports happen there, so listing the
families costs nothing.
"""

from __future__ import annotations

import importlib

from wikihow_tiir.evaluate.families.common import ADAPTATIONS, Family

# prefix -> (module, loader function)
FAMILIES: dict[str, tuple[str, str]] = {
    "gme": ("wikihow_tiir.evaluate.families.gme", "load"),
    "e5v": ("wikihow_tiir.evaluate.families.e5v", "load"),
    "st": ("wikihow_tiir.evaluate.families.st", "load"),
    "jina-clip": ("wikihow_tiir.evaluate.families.two_tower", "load_jina_family"),
    "clip": ("wikihow_tiir.evaluate.families.two_tower", "load_clip_family"),
}

__all__ = ["ADAPTATIONS", "FAMILIES", "Family", "assemble", "family_of", "load_family"]


def family_of(spec: str) -> tuple[str, str] | None:
    """``(prefix, name)`` of a family spec, or None for other models (bm25, minilm, mme: ...)."""
    prefix, sep, name = spec.partition(":")
    if sep and prefix in FAMILIES:
        if not name:
            raise ValueError(f"--model {spec}: give a model id or folder after '{prefix}:'")
        return prefix, name
    return None


def load_family(spec: str, options) -> Family:
    prefix, name = family_of(spec) or (None, None)
    if prefix is None:
        raise ValueError(f"{spec!r} is not a model family ({', '.join(p + ':' for p in FAMILIES)})")
    module, fn = FAMILIES[prefix]
    return getattr(importlib.import_module(module), fn)(name, options)


def assemble(family: Family, adapt: str | None, options, name: str | None = None):
    """The RetrievalModel running ``family`` under ``adapt`` (None: the family's default)."""
    from wikihow_tiir.evaluate import adapters

    adapt = adapt or family.default_adapt
    if adapt not in ADAPTATIONS:
        raise ValueError(f"unknown adaptation {adapt!r}; choose {', '.join(ADAPTATIONS)}")
    possible = family.adaptations()
    if adapt not in possible:
        raise ValueError(f"{family.spec} cannot run --adapt {adapt}: it can run {', '.join(possible)}")
    name = name or family.spec
    if adapt == "text":
        return adapters.TextOnly(family.text, name=name, joiner=family.joiner)
    if adapt == "captions":
        return adapters.TextWithCaptions(family.text, captions=options.captions, name=name, joiner=family.joiner)
    if adapt == "merged-image":
        return adapters.MergedImage(family.pair, name=name)
    if adapt == "fusion":
        return adapters.VectorFusion(family.text, family.image, fusion=options.fusion,
                                     images=options.fusion_images, name=name, joiner=family.joiner)
    from wikihow_tiir.evaluate.screenshot import ScreenshotStyle

    page = family.page or (lambda images, role: family.image.encode_images(images))
    return adapters.Screenshot(page, name=name, style=ScreenshotStyle(font=options.screenshot_font))
