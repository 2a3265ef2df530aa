"""The ``offline`` backend: deterministic, seeded, no model server.

* caption: the step's own text (the text position just before the image);
* write + visualize: ``offline-extractive-v1``, an inverse-cloze-style generator. It builds a
  first-person situation from the goal and a seeded subset of the steps (phrases from
  ``prompts/offline_extractive.v1.yaml``); visualize then picks the BM25-most-salient step
  sentences, turns them into image prompts and removes them from the text, keeping at most a
  couple of other steps as context so the query never restates the document;
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
from wikihow_tiir.generate.prompts import load_prompt
from wikihow_tiir.generate.remote import GenerationError
from wikihow_tiir.generate.text import bm25_salience, overlap, split_sentences
from wikihow_tiir.images import phash_distance
from wikihow_tiir.model import Document

GENERATOR = "offline-extractive-v1"
CAPTIONER = "offline-step-text-v1"
RENDERER = "offline-pool-minilm-v1"

_HOW_TO = re.compile(r"^\s*how\s+to\s+", re.I)
_NO_SPACE_LANGS = {"ja", "zh"}
_STEP_MATCH = 0.6  # share of a step's terms a sentence must contain to stand for that step


def _lang(doc: Document) -> str:
    return (doc.lang or "en").split("-")[0].lower()


def _phrases(lang: str) -> dict[str, Any]:
    data = load_prompt("offline_extractive").data
    return data.get(lang) or data["en"]


def _joiner(lang: str) -> str:
    return "" if lang in _NO_SPACE_LANGS else " "


def _lower_first(text: str) -> str:
    """'Use a hose' -> 'use a hose', but 'TV stand' and 'I' stay as they are."""
    head = text.split(" ", 1)[0]
    if len(head) > 1 and head.isupper() or head == "I":
        return text
    return text[:1].lower() + text[1:]


def goal_phrase(goal: str, lang: str) -> str:
    goal = goal.strip().rstrip(".!?。")
    if lang in _NO_SPACE_LANGS:
        return goal
    return " ".join(w if (len(w) > 1 and w.isupper()) else w.lower() for w in _HOW_TO.sub("", goal).split())


def step_phrase(step: str, lang: str) -> str:
    step = step.strip().rstrip(".!?。！？")
    return step if lang in _NO_SPACE_LANGS else _lower_first(step)


def caption(doc: Document) -> list[str]:
    return [text for _, text in step_texts(doc)]


def write(doc: Document, rng: random.Random, cfg: GenerateConfig) -> str:
    """The situation: intro (goal), section, a seeded subset of steps as sentences, closing."""
    lang = _lang(doc)
    p = _phrases(lang)
    steps = [t for _, t in step_texts(doc) if t.strip()]
    chosen = sorted(rng.sample(range(len(steps)), min(len(steps), cfg.max_query_images + 2)))
    sentences = [rng.choice(p["intro"]).format(goal=goal_phrase(doc.goal, lang))]
    if doc.section_title.strip():
        sentences.append(p["section"].format(section=doc.section_title.strip().rstrip(".。")))
    phrases = rng.sample(p["context"], len(p["context"]))  # neighbouring steps never share a phrase
    sentences += [phrases[n % len(phrases)].format(step=step_phrase(steps[i], lang)) for n, i in enumerate(chosen)]
    sentences.append(rng.choice(p["closing"]))
    return _joiner(lang).join(sentences)


def visualize(doc: Document, text: str, captions: Sequence[str], rng: random.Random,
              cfg: GenerateConfig) -> dict[str, Any]:
    """Pick the salient step sentences to show, and drop them (and most other steps) from the text."""
    lang = _lang(doc)
    p = _phrases(lang)
    steps = [t for _, t in step_texts(doc)]
    sentences = split_sentences(text)
    step_of: dict[int, int] = {}
    for s, sentence in enumerate(sentences):
        scores = [overlap(step, sentence) if step.strip() else 0.0 for step in steps]
        best = max(range(len(steps)), key=lambda j: (scores[j], -j)) if steps else -1
        if best >= 0 and scores[best] >= _STEP_MATCH and best not in step_of.values():
            step_of[s] = best
    hi = min(cfg.max_query_images, len(step_of))
    if hi < cfg.min_query_images:
        raise GenerationError("too-few-steps", f"{len(step_of)} step sentences to show as images, "
                              f"need {cfg.min_query_images}")
    k = rng.randint(cfg.min_query_images, hi)
    salience = bm25_salience(sentences, " ".join([doc.goal, doc.section_title, *captions]))
    picked = set(sorted(step_of, key=lambda s: (-salience[s], s))[:k])
    others = sorted(s for s in step_of if s not in picked)
    keep = set(rng.sample(others, min(2, (len(steps) - k) // 2, len(others))))
    connectors = rng.sample(p["connector"], k) if len(p["connector"]) >= k else \
        [p["connector"][i % len(p["connector"])] for i in range(k)]
    joiner = _joiner(lang)
    segments: list[dict[str, str]] = []
    buffer: list[str] = []
    for s, sentence in enumerate(sentences):
        if s in picked:
            buffer.append(connectors[len(segments)])
            segments.append({"text": joiner.join(buffer), "image_prompt": captions[step_of[s]]})
            buffer = []
        elif s not in step_of or s in keep:
            buffer.append(sentence)
    return {"segments": segments, "closing": joiner.join(buffer)}


def render(prompts: Sequence[Sequence[str]], docs: Sequence[Document], pool: ImagePool,
           cfg: GenerateConfig) -> list[list[str] | GenerationError]:
    """Pool keys for each unit's image prompts (one batch for the whole shard), or the error."""
    from wikihow_tiir.embeddings import encode_texts

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
