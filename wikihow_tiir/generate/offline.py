"""The ``offline`` backend: deterministic, seeded, no model server.

* caption: the step's own text (the text position just before the image);
* write + visualize: ``offline-extractive-v2``. The text never names the goal or the method: it is
  built from what the document does not say (phrases from ``prompts/offline_extractive.v2.yaml``
  around the article's category path, quoted sentences of the steps' detail text, a tip or a
  warning; the writer context of ``segment.section_context``), and every borrowed sentence passes
  the filter's leak measures at stricter limits. Visualize shows the BM25-most-salient steps as
  pictures (image prompts: the step texts), removes their sentences and keeps at most one other;
* render: ``offline-pool-minilm-v1``, for each image prompt a real image from a *different
  article* in the corpus pool, by MiniLM similarity of its step text, never a perceptual
  near-copy of an image of the positive document.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from wikihow_tiir.config import GenerateConfig
from wikihow_tiir.generate.pool import ImagePool, step_texts
from wikihow_tiir.generate.records import Segment, Visual
from wikihow_tiir.generate.text import bm25_salience, split_sentences
from wikihow_tiir.images import phash_distance
from wikihow_tiir.llm.errors import GenerationError
from wikihow_tiir.llm.prompts import load_prompt
from wikihow_tiir.model import Document
from wikihow_tiir.tokens import NO_SPACE_LANGS, base_lang, count_tokens, leak_figures

GENERATOR = "offline-extractive-v2"
CAPTIONER = "offline-step-text-v1"
RENDERER = "offline-pool-minilm-v1"

_NO_SPACE_LANGS = NO_SPACE_LANGS
_SENTENCE_TOKENS = (4, 40)  # a borrowed sentence between these lengths (words, CJK characters)
# the writer is stricter than the filter (step_copy_max_words 8 / _cjk_chars 12): a borrowed sentence may
# share at most this many consecutive tokens with one step text
_MAX_COPY_RUN = {"words": 5, "cjk": 8}
_MIN_PHRASE = {"words": 1, "cjk": 2}  # goal/title phrases at least this long never appear (filter defaults)
_BULLET = re.compile(r"^\s*[-*•・]\s*")
_SPACE = re.compile(r"\s+")


def _lang(doc: Document) -> str:
    return base_lang(doc.lang or "en") or "en"


def _phrases(lang: str) -> dict[str, Any]:
    data = load_prompt("offline_extractive").data
    return data.get(lang) or data["en"]


def _joiner(lang: str) -> str:
    return "" if lang in _NO_SPACE_LANGS else " "


def _kind(lang: str) -> str:
    return "cjk" if lang in _NO_SPACE_LANGS else "words"


def _category(name: str, lang: str) -> str:
    """'Steak Dishes' -> 'steak dishes' (acronyms and CJK stay as they are)."""
    if lang in _NO_SPACE_LANGS:
        return name
    return " ".join(w if (len(w) > 1 and w.isupper()) else w.lower() for w in name.split())


def gives_answer_away(text: str, doc: Document) -> bool:
    """Whether ``text`` names the document's goal or section title, or copies a long run of one of its
    step texts (the filter's leak measures, at the writer's stricter limits)."""
    kind = _kind(_lang(doc))
    fig = leak_figures(text, doc.goal, doc.section_title, doc.step_texts())
    phrase_leak = any(share is not None and share >= 1.0 and n >= _MIN_PHRASE[kind]
                      for share, n in ((fig.goal, fig.goal_tokens), (fig.title, fig.title_tokens)))
    return phrase_leak or fig.step_copy > _MAX_COPY_RUN[kind]


def borrowed_sentence(text: str, doc: Document) -> str | None:
    """The first sentence of ``text`` (a step's detail, a tip) that a query may quote: not too short or
    long, and not giving the answer away."""
    lines = [_BULLET.sub("", line) for line in (text or "").splitlines()]
    for sentence in split_sentences(" \n".join(lines)):
        sentence = _SPACE.sub(" ", sentence).strip().strip('"“”「」')
        if _lang(doc) in _NO_SPACE_LANGS:  # the template closes it: 「…」と書いてありました。
            sentence = sentence.rstrip("。．！？!?.")
        n = count_tokens(sentence)
        if _SENTENCE_TOKENS[0] <= n <= _SENTENCE_TOKENS[1] and not gives_answer_away(sentence, doc):
            return sentence
    return None


def caption(doc: Document) -> list[str]:
    return [text for _, text in step_texts(doc)]


def _step_sentences(doc: Document, context: dict[str, Any] | None) -> list[str | None]:
    """For each step of the writer context, the sentence of its detail text a query may quote."""
    return [borrowed_sentence(st.get("detail", ""), doc) for st in (context or {}).get("steps", [])]


def write(doc: Document, context: dict[str, Any] | None, rng: random.Random, cfg: GenerateConfig) -> str:
    """The situation, from what the document does not say: the category path, a quoted sentence of each
    step's detail text, a tip or warning, a closing question. Never the goal or the method."""
    lang = _lang(doc)
    p = _phrases(lang)
    ctx = context or {}
    cats = ctx.get("categories") or list(doc.categories)
    sentences: list[str] = []
    if cats:
        intro = rng.choice(p["intro_category"]).format(category=_category(cats[0], lang),
                                                       area=_category(cats[-1], lang))
        if gives_answer_away(intro, doc):
            intro = rng.choice(p["intro_plain"])
    else:
        intro = rng.choice(p["intro_plain"])
    sentences.append(intro)
    templates = rng.sample(p["detail"], len(p["detail"]))  # neighbouring sentences never share a phrase
    for n, sentence in enumerate(s for s in _step_sentences(doc, ctx) if s):
        sentences.append(templates[n % len(templates)].format(sentence=sentence))
    extras = [("tip", t) for t in ctx.get("tips", [])] + [("warning", w) for w in ctx.get("warnings", [])]
    for kind, text in rng.sample(extras, len(extras)):
        sentence = borrowed_sentence(text, doc)
        if sentence:
            sentences.append(rng.choice(p[kind]).format(sentence=sentence))
            break
    sentences.append(rng.choice(p["closing"]))
    return _joiner(lang).join(sentences)


def visualize(doc: Document, text: str, captions: Sequence[str], rng: random.Random, cfg: GenerateConfig,
              context: dict[str, Any] | None = None) -> Visual:
    """Show the salient steps as pictures and take them out of the text.

    The ``k`` steps whose text says most about the document (BM25 over the document's own words) become
    pictures, their image prompts the step texts; the narrative keeps at most one quoted sentence of the
    other steps, and drops the sentences of the pictured steps."""
    lang = _lang(doc)
    p = _phrases(lang)
    n_img = len(captions)
    hi = min(cfg.max_query_images, n_img)
    if hi < cfg.min_query_images:
        raise GenerationError("too-few-steps", f"{n_img} pictured steps, a query shows {cfg.min_query_images}")
    k = rng.randint(cfg.min_query_images, hi)
    salience = bm25_salience(list(captions), " ".join([doc.goal, doc.section_title, *captions]))
    picked = sorted(sorted(range(n_img), key=lambda j: (-salience[j], j))[:k])
    # which narrative sentence quotes which pictured step (context steps and pictures matched by text)
    ctx_steps = (context or {}).get("steps", [])
    quoted = _step_sentences(doc, context)
    step_of_picture: dict[int, int] = {}
    free = list(range(len(ctx_steps)))
    for j, cap in enumerate(captions):
        match = next((c for c in free if ctx_steps[c].get("text") == cap), None)
        if match is not None:
            step_of_picture[j] = match
            free.remove(match)
    shown = {step_of_picture[j] for j in picked if j in step_of_picture}
    sentences = split_sentences(text)
    owner = {}
    for s, sentence in enumerate(sentences):
        c = next((c for c, q in enumerate(quoted) if q and q in sentence), None)
        if c is not None:
            owner[s] = c
    others = [s for s, c in owner.items() if c not in shown]
    keep = set(rng.sample(others, min(1, len(others))))
    body = [s for s in range(len(sentences)) if s not in owner or s in keep]
    intro, rest = (body[:1], body[1:]) if body else ([], [])
    context_sentences = [s for s in rest if s in keep]
    tail = [s for s in rest if s not in keep]
    connectors = rng.sample(p["connector"], k) if len(p["connector"]) >= k else \
        [p["connector"][i % len(p["connector"])] for i in range(k)]
    joiner = _joiner(lang)
    segments = []
    for n, j in enumerate(picked):
        lead = [sentences[s] for s in intro] if n == 0 else []
        lead += [sentences[s] for s in context_sentences] if n == 1 or (n == 0 and k == 1) else []
        segments.append(Segment(joiner.join([*lead, connectors[n]]), captions[j]))
    return Visual(tuple(segments), joiner.join(sentences[s] for s in tail))


def render(prompts: Sequence[Sequence[str]], docs: Sequence[Document], pool: ImagePool,
           cfg: GenerateConfig) -> list[list[str] | GenerationError]:
    """Pool keys for each unit's image prompts (one batch for the whole shard), or the error."""
    from wikihow_tiir.encoders.minilm import encode_texts

    flat = [text for unit in prompts for text in unit]
    if not flat:
        return [[] for _ in prompts]
    if not len(pool):
        return [GenerationError("no-pool-image", "the image pool is empty") for _ in prompts]
    vectors = pool.vectors()
    # offline prompts are step texts, which the pool has embedded already: encode only new ones
    known = pool.text_index()
    new = sorted({t for t in flat if t not in known})
    fresh = dict(zip(new, encode_texts(new), strict=True))
    sims = np.stack([vectors[known[t]] if t in known else fresh[t] for t in flat]) @ vectors.T
    article = np.array([im.article_id for im in pool.images], dtype=object)
    lang = np.array([_lang_of(im.lang) for im in pool.images], dtype=object)
    usable = np.array([im.has_image and bool(im.meta.phash) for im in pool.images], dtype=bool)
    out: list[list[str] | GenerationError] = []
    start = 0
    for unit, doc in zip(prompts, docs, strict=True):
        rows, start = range(start, start + len(unit)), start + len(unit)
        allowed = usable & (article != doc.article_id)
        same_lang = allowed & (lang == _lang(doc))
        if same_lang.sum() >= len(unit):  # prefer pictures from articles in the query's language
            allowed = same_lang
        positives = [m.phash for m in doc.content.image_meta if m is not None and m.phash]
        used: set[int] = set()
        keys: list[str] = []
        for row in rows:
            order = np.argsort(-sims[row], kind="stable")
            choice = next((int(i) for i in order if allowed[i] and int(i) not in used
                           and not _near_copy(pool.images[int(i)].meta.phash, positives, cfg)), None)
            if choice is None:
                break
            used.add(choice)
            keys.append(pool.images[choice].key)
        if len(keys) < len(unit):
            out.append(GenerationError("no-pool-image", "no image from another article left in the pool "
                                       f"({len(keys)} of {len(unit)} found)"))
        else:
            out.append(keys)
    return out


def _lang_of(lang: str) -> str:
    return (lang or "en").split("-")[0].lower()


def _near_copy(phash: str, positives: Sequence[str], cfg: GenerateConfig) -> bool:
    return any(phash_distance(phash, p) <= cfg.near_copy_phash_distance for p in positives)
