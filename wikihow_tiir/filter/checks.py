"""The filter's checks: one small function each, in one registry.

A check is a function ``fn(ctx)`` over the whole query set (never a batch of it) that writes scores
with ``ctx.score``, failures with ``ctx.fail`` and flags with ``ctx.flag``, registered with the
reasons it can give, the scores it writes and the settings (``FilterConfig`` fields) each score is
judged against. The registry's order is the order of precedence: a rejected query's reason is the
first failing check's. Adding a check is one function and its ``@check(...)`` line.

Checks of phase ``"all"`` score every query (so rejects carry every figure); checks of phase
``"survivors"`` run afterwards on the queries that passed everything else (near-duplicates: a
rejected query never displaces a good one; the LLM judge: paid calls only for survivors).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wikihow_tiir.config import FilterConfig
from wikihow_tiir.filter.text import (
    find_placeholder,
    language_score,
    language_supported,
    lexical_overlap,
    safe_text,
    text_problem,
)
from wikihow_tiir.model import Document, Query
from wikihow_tiir.tokens import base_lang, leak_figures

Phase = Literal["all", "survivors"]


@dataclass(frozen=True)
class Check:
    name: str
    reasons: tuple[str, ...]  # reject reasons, in order of precedence within the check
    scores: dict[str, tuple[str, ...]]  # score key -> the settings it is judged against
    settings: tuple[str, ...]  # every FilterConfig field the check reads
    phase: Phase
    fn: Callable[[FilterContext], None]
    flags: tuple[str, ...] = ()
    doc: str = ""


CHECKS: list[Check] = []


def check(name: str, *, reasons: Sequence[str] = (), scores: dict[str, Sequence[str]] | None = None,
          settings: Sequence[str] = (), flags: Sequence[str] = (), phase: Phase = "all"):
    """Register ``fn`` as a check (see the module doc)."""

    def register(fn: Callable[[FilterContext], None]) -> Callable[[FilterContext], None]:
        score_map = {k: tuple(v) for k, v in (scores or {}).items()}
        every = tuple(dict.fromkeys([*settings, *(s for v in score_map.values() for s in v)]))
        CHECKS.append(Check(name, tuple(reasons), score_map, every, phase, fn, tuple(flags),
                            (fn.__doc__ or "").strip().split("\n")[0]))
        return fn

    return register


# --------------------------------------------------------------------------- the shared context


def query_embedding_text(q: Query) -> str:
    """The query as the text embedder sees it with its pictures: its text with each image replaced by
    its image prompt (what the picture shows)."""
    parts: list[str] = []
    k = 0
    for text, meta in zip(q.content.texts, q.content.image_meta, strict=False):
        if text:
            parts.append(text)
        elif meta is not None:
            if k < len(q.image_prompts) and q.image_prompts[k]:
                parts.append(q.image_prompts[k])
            k += 1
    return safe_text("\n".join(parts))


def document_embedding_text(d: Document) -> str:
    """A document as the text embedder sees it: its text positions (pictures dropped)."""
    return safe_text(d.content.text)


@dataclass
class Vectors:
    documents: np.ndarray
    full: np.ndarray  # query text + image prompts
    text_only: np.ndarray  # query text alone (pictures dropped)


@dataclass
class FilterContext:
    """Everything the checks share, in a canonical order (queries and documents sorted by id), so
    every score is independent of the order the caller passed them in."""

    cfg: FilterConfig
    queries: list[Query]
    corpus: list[Document]
    cache_dir: Path | None = None
    doc_row: dict[str, int] = field(default_factory=dict)
    failed: list[list[str]] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    flags: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)  # each query's text positions, safe to tokenize
    messages: list[str] = field(default_factory=list)
    runtime: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # check -> report facts (cut-offs, judge info ...)
    _vectors: Vectors | None = None
    _stats: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, queries: Sequence[Query], corpus: Sequence[Document], cfg: FilterConfig,
              cache_dir: Path | None) -> FilterContext:
        ctx = cls(cfg=cfg, queries=sorted(queries, key=lambda q: q.id), corpus=sorted(corpus, key=lambda d: d.id),
                  cache_dir=cache_dir)
        n = len(ctx.queries)
        ctx.failed = [[] for _ in range(n)]
        ctx.details = [{} for _ in range(n)]
        for q in ctx.queries:
            q.scores = {}
        for i, d in enumerate(ctx.corpus):
            if d.id in ctx.doc_row:
                ctx.messages.append(f"corpus document id {d.id!r} occurs more than once; the first is used")
                continue
            ctx.doc_row[d.id] = i
        ctx.texts = [safe_text(q.content.text) for q in ctx.queries]
        return ctx

    @property
    def n(self) -> int:
        return len(self.queries)

    def fail(self, i: int, reason: str, detail: str | None = None) -> None:
        self.failed[i].append(reason)
        if detail is not None:
            self.details[i][reason] = detail

    def score(self, i: int, key: str, value: float) -> None:
        self.queries[i].scores[key] = round(float(value), 6)

    def flag(self, i: int, name: str, info: dict[str, Any] | None = None) -> None:
        self.flags.setdefault(name, {})[i] = info or {}

    def positive(self, i: int) -> Document | None:
        row = self.doc_row.get(self.queries[i].positive_id)
        return None if row is None else self.corpus[row]

    def with_positive(self) -> np.ndarray:
        return np.array([i for i in range(self.n) if self.queries[i].positive_id in self.doc_row], dtype=np.int64)

    # ---- embeddings and exact search, computed once when a check first needs them

    def vectors(self) -> Vectors:
        if self._vectors is None:
            from wikihow_tiir.filter.vectors import embed_cached

            t0 = time.perf_counter()
            emb_dir = Path(self.cache_dir) / "embeddings" if self.cache_dir is not None else None
            opts = {"batch_size": self.cfg.embed_batch_size, "shard_size": self.cfg.embed_shard_size,
                    "cache_dir": emb_dir, "device": self.cfg.embed_device}
            docs, doc_cache = embed_cached([document_embedding_text(d) for d in self.corpus], **opts)
            full, full_cache = embed_cached([query_embedding_text(q) for q in self.queries], **opts)
            text, text_cache = embed_cached(self.texts, **opts)
            self._vectors = Vectors(docs, full, text)
            self.runtime["embed_s"] = round(time.perf_counter() - t0, 3)
            self.runtime["embedding_cache"] = {"documents": doc_cache, "queries": full_cache,
                                               "queries_text_only": text_cache}
        return self._vectors

    def search(self, which: Literal["full", "text_only"]):
        """The positive's standing against the whole corpus for the queries that have one
        (:func:`~wikihow_tiir.filter.vectors.positive_stats`, rows in ``with_positive()`` order)."""
        if which not in self._stats:
            from wikihow_tiir.filter.vectors import positive_stats

            v = self.vectors()
            t0 = time.perf_counter()
            rows = self.with_positive()
            codes: dict[str, int] = {}
            doc_article = np.array([codes.setdefault(d.article_id, len(codes)) for d in self.corpus], dtype=np.int64)
            query_article = np.array([codes.setdefault(self.queries[i].article_id, len(codes)) for i in rows],
                                     dtype=np.int64)
            pos_index = np.array([self.doc_row[self.queries[i].positive_id] for i in rows], dtype=np.int64)
            q = v.full if which == "full" else v.text_only
            self._stats[which] = positive_stats(q[rows], v.documents, pos_index, query_article, doc_article,
                                                block=self.cfg.query_block_size)
            self.runtime[f"search_{which}_s"] = round(time.perf_counter() - t0, 3)
        return self._stats[which]


def _min_pairwise(hashes: list[str], others: list[str] | None = None) -> tuple[int | None, int]:
    """Smallest pHash distance among ``hashes`` (or between ``hashes`` and ``others``), and how many
    hashes were unusable."""
    from wikihow_tiir.images import phash_distance

    good = [h for h in hashes if h]
    bad = len(hashes) - len(good)
    best: int | None = None
    pairs = ([(a, b) for i, a in enumerate(good) for b in good[i + 1:]] if others is None
             else [(a, b) for a in good for b in others if b])
    for a, b in pairs:
        try:
            d = phash_distance(a, b)
        except ValueError:
            bad += 1
            continue
        best = d if best is None else min(best, d)
    return best, bad


# --------------------------------------------------------------------------- the checks, in order


@check("input", reasons=("duplicate-id", "malformed-sequence", "text-encoding", "positive-missing"))
def check_input(ctx: FilterContext) -> None:
    """Unique ids, well-formed interleaved lists, clean Unicode, a positive that is in the corpus."""
    seen: set[str] = set()
    for i, q in enumerate(ctx.queries):
        if q.id in seen:
            ctx.fail(i, "duplicate-id", f"query id {q.id!r} occurs more than once; the first is kept")
        seen.add(q.id)
        try:
            q.content.check()
        except ValueError as exc:
            ctx.fail(i, "malformed-sequence", str(exc))
        for piece in [q.content.text, *q.image_prompts]:
            problem = text_problem(piece)
            if problem:
                ctx.fail(i, "text-encoding", problem)
                break
        if q.positive_id not in ctx.doc_row:
            ctx.fail(i, "positive-missing", f"positive document {q.positive_id!r} is not in the corpus")


@check("images", reasons=("too-few-images", "too-many-images", "query-image-near-copy", "image-leak"),
       scores={"images": ("min_query_images", "max_query_images"),
               "query_image_min_distance": ("phash_max_distance",),
               "image_leak_min_distance": ("phash_max_distance",)})
def check_images(ctx: FilterContext) -> None:
    """2-4 pictures, no two near-copies of each other, none a near-copy of a positive's picture (pHash)."""
    cfg = ctx.cfg
    for i, q in enumerate(ctx.queries):
        n_img = q.content.n_images
        ctx.score(i, "images", n_img)
        if n_img < cfg.min_query_images:
            ctx.fail(i, "too-few-images", f"{n_img} images, at least {cfg.min_query_images} needed")
        elif n_img > cfg.max_query_images:
            ctx.fail(i, "too-many-images", f"{n_img} images, at most {cfg.max_query_images} allowed")
        q_hashes = [m.phash for m in q.content.image_meta if m is not None]
        within, bad = _min_pairwise(q_hashes)
        if within is not None:
            ctx.score(i, "query_image_min_distance", within)
            if within <= cfg.phash_max_distance:
                ctx.fail(i, "query-image-near-copy", f"two query images are {within} pHash bits apart "
                                                     f"(<= {cfg.phash_max_distance})")
        doc = ctx.positive(i)
        if doc is not None:
            d_hashes = [m.phash for m in doc.content.image_meta if m is not None]
            leak, _ = _min_pairwise(q_hashes, d_hashes)  # unusable hashes were counted just above
            if leak is not None:
                ctx.score(i, "image_leak_min_distance", leak)
                if leak <= cfg.phash_max_distance:
                    ctx.fail(i, "image-leak", f"a query image is {leak} pHash bits from an image of its positive "
                                              f"document (<= {cfg.phash_max_distance})")
        if bad:
            ctx.details[i]["unhashed_images"] = bad


@check("structure", reasons=("text-too-short", "text-too-long", "placeholder", "language-mismatch"),
       scores={"text_tokens": ("min_text_tokens", "max_text_tokens"), "language": ("language_min",)},
       settings=("check_language",))
def check_structure(ctx: FilterContext) -> None:
    """Text length in MiniLM WordPiece tokens, no template leftovers, written in the article's language."""
    from wikihow_tiir.stats import count_tokens

    cfg = ctx.cfg
    tokens = count_tokens(ctx.texts)
    unsupported: set[str] = set()
    t0 = time.perf_counter()
    for i, q in enumerate(ctx.queries):
        ctx.score(i, "text_tokens", tokens[i])
        if tokens[i] < cfg.min_text_tokens:
            ctx.fail(i, "text-too-short", f"{tokens[i]} text tokens < {cfg.min_text_tokens}")
        elif tokens[i] > cfg.max_text_tokens:
            ctx.fail(i, "text-too-long", f"{tokens[i]} text tokens > {cfg.max_text_tokens}")
        hole = next((h for h in (find_placeholder(safe_text(p)) for p in [ctx.texts[i], *q.image_prompts]) if h), None)
        if hole:
            ctx.fail(i, "placeholder", f"leftover placeholder {hole!r} in the query text or an image prompt")
        if cfg.check_language:
            if not language_supported(q.lang):
                unsupported.add(q.lang)
            elif ctx.texts[i].strip():
                score = language_score(ctx.texts[i], q.lang)
                if score is not None:
                    ctx.score(i, "language", score)
                    if score < cfg.language_min:
                        ctx.fail(i, "language-mismatch", f"text does not read as the article's language "
                                                         f"{q.lang!r} (score {round(score, 6)} < {cfg.language_min})")
    ctx.runtime["language_s"] = round(time.perf_counter() - t0, 3)
    if unsupported:
        ctx.messages.append(f"language not checked for languages without a detector: {sorted(unsupported)}")


def _leak_limits(cfg: FilterConfig, lang: str) -> tuple[int, int]:
    """(shortest goal/title that counts as a leak, longest step-text run allowed) in tokens."""
    if base_lang(lang) in ("ja", "zh"):
        return cfg.leak_min_phrase_cjk_chars, cfg.step_copy_max_cjk_chars
    return cfg.leak_min_phrase_words, cfg.step_copy_max_words


@check("leak", reasons=("goal-leak", "title-leak", "step-copy"),
       scores={"goal_leak": (), "title_leak": (),  # a leak is a share of 1.0 (the whole phrase)
               "step_copy_tokens": ("step_copy_max_words", "step_copy_max_cjk_chars")},
       settings=("leak_min_phrase_words", "leak_min_phrase_cjk_chars"))
def check_leak(ctx: FilterContext) -> None:
    """The text must not give the answer away: not the positive's goal, not its section title, and no
    long verbatim run of its step text (case, punctuation, "How to" and qualifiers normalized;
    CJK by characters). Image prompts are not checked: they describe the pictures."""
    for i, q in enumerate(ctx.queries):
        doc = ctx.positive(i)
        if doc is None:
            continue
        fig = leak_figures(ctx.texts[i], doc.goal, doc.section_title, doc.step_texts())
        min_phrase, max_copy = _leak_limits(ctx.cfg, q.lang)
        if fig.goal is not None:
            ctx.score(i, "goal_leak", fig.goal)
            if fig.goal >= 1.0 and fig.goal_tokens >= min_phrase:
                ctx.fail(i, "goal-leak", f"the text states the positive's goal ({doc.goal!r})")
        if fig.title is not None:
            ctx.score(i, "title_leak", fig.title)
            if fig.title >= 1.0 and fig.title_tokens >= min_phrase:
                ctx.fail(i, "title-leak", f"the text states the positive's section title ({doc.section_title!r})")
        ctx.score(i, "step_copy_tokens", fig.step_copy)
        if fig.step_copy >= max_copy:
            ctx.fail(i, "step-copy", f"{fig.step_copy} consecutive tokens of the positive's step text are copied "
                                     f"verbatim (>= {max_copy})")


@check("relevance", reasons=("low-relevance",), scores={"relevance": ("relevance_min",)})
def check_relevance(ctx: FilterContext) -> None:
    """cosine(query text + image prompts, positive) above a floor: the query is about its document."""
    st = ctx.search("full")
    for k, i in enumerate(ctx.with_positive()):
        rel = float(st.positive_score[k])
        ctx.score(i, "relevance", rel)
        if rel < ctx.cfg.relevance_min:
            ctx.fail(i, "low-relevance", f"cosine to the positive {round(rel, 6)} < {ctx.cfg.relevance_min}")


@check("easiness", reasons=("too-easy", "too-easy-percentile", "lexical-copy"),
       scores={"relevance": ("easiness_max_similarity", "easiness_percentile_cutoff"),
               "lexical_overlap": ("lexical_overlap_max",)},
       settings=("easiness_percentile", "lexical_ngram"))
def check_easiness(ctx: FilterContext) -> None:
    """Not a near-copy of the positive: cosine ceiling (and optional whole-set percentile), word n-gram share."""
    cfg = ctx.cfg
    rows = ctx.with_positive()
    relevance = ctx.search("full").positive_score
    cutoff = None
    if cfg.easiness_percentile is not None and len(relevance):
        # over the WHOLE query set at once: a per-batch percentile (NeMo-Curator's pitfall) would drop
        # the same share of every batch, however easy or hard that batch is
        cutoff = float(np.percentile(relevance.astype(np.float64), cfg.easiness_percentile))
    ctx.extra["easiness_percentile_cutoff"] = None if cutoff is None else round(cutoff, 6)
    for k, i in enumerate(rows):
        rel = float(relevance[k])
        if rel > cfg.easiness_max_similarity:
            ctx.fail(i, "too-easy", f"cosine to the positive {round(rel, 6)} > {cfg.easiness_max_similarity}")
        elif cutoff is not None and rel > cutoff:
            ctx.fail(i, "too-easy-percentile", f"cosine to the positive {round(rel, 6)} is above the "
                                               f"{cfg.easiness_percentile}th percentile of the whole query set "
                                               f"({cutoff})")
        doc = ctx.corpus[ctx.doc_row[ctx.queries[i].positive_id]]
        ov = lexical_overlap(ctx.texts[i], safe_text(doc.content.text), cfg.lexical_ngram)
        ctx.score(i, "lexical_overlap", ov)
        if ov > cfg.lexical_overlap_max:
            ctx.fail(i, "lexical-copy", f"{round(ov, 6)} of the query's word {cfg.lexical_ngram}-grams occur in the "
                                        f"positive (> {cfg.lexical_overlap_max})")


@check("pictures", reasons=("text-sufficient",),
       scores={"text_only_rank": (), "full_rank": (), "text_only_margin": ("text_sufficient_margin",)},
       settings=("text_sufficient_action",), flags=("text-sufficient",))
def check_pictures(ctx: FilterContext) -> None:
    """Do the pictures matter? The positive's rank in the whole corpus from the text alone
    (``text_only_rank``) and from the text plus what the pictures show (``full_rank``, image prompts).
    A text that alone ranks its positive first by ``text_sufficient_margin`` is ``text-sufficient``."""
    cfg = ctx.cfg
    full, text = ctx.search("full"), ctx.search("text_only")
    for k, i in enumerate(ctx.with_positive()):
        ctx.score(i, "full_rank", full.rank[k])
        ctx.score(i, "text_only_rank", text.rank[k])
        if np.isfinite(text.runner_up_score[k]):
            margin = float(text.positive_score[k] - text.runner_up_score[k])
            ctx.score(i, "text_only_margin", margin)
            if text.rank[k] == 1 and margin >= cfg.text_sufficient_margin:
                detail = (f"the text alone ranks the positive first by a cosine margin of {round(margin, 6)} "
                          f"(>= {cfg.text_sufficient_margin}): its pictures add nothing a text retriever needs")
                if cfg.text_sufficient_action == "reject":
                    ctx.fail(i, "text-sufficient", detail)
                else:  # "reject-test" is applied by the split (apply_split_rules), "flag" only reports
                    ctx.flag(i, "text-sufficient", {"margin": round(margin, 6), "detail": detail})


@check("answerability", reasons=("positive-not-in-top-k",),
       scores={"full_rank": ("answerability_top_k",), "false_negative_gap": ("false_negative_margin",)},
       settings=("answerability_action", "false_negative_action"),
       flags=("positive-not-in-top-k", "likely-false-negative"))
def check_answerability(ctx: FilterContext) -> None:
    """Quality flags from the text embedder, never a test-split rule by default: a positive ranked
    below ``answerability_top_k`` (text + image prompts), and another article's document above the
    positive by ``false_negative_margin`` (a likely false negative)."""
    cfg = ctx.cfg
    st = ctx.search("full")
    for k, i in enumerate(ctx.with_positive()):
        q = ctx.queries[i]
        rank = int(st.rank[k])
        if rank > cfg.answerability_top_k:
            detail = f"positive ranks {rank} of {len(ctx.corpus)}, top-{cfg.answerability_top_k} expected"
            ctx.flag(i, "positive-not-in-top-k", {"rank": rank, "detail": detail})
        if st.best_other_index[k] >= 0:
            gap = float(st.best_other_score[k]) - float(st.positive_score[k])
            ctx.score(i, "false_negative_gap", gap)
            if gap > cfg.false_negative_margin:
                ctx.flag(i, "likely-false-negative", {"query": q.id, "positive": q.positive_id,
                                                      "competitor": ctx.corpus[int(st.best_other_index[k])].id,
                                                      "gap": round(gap, 6)})


@check("near-duplicate", reasons=("near-duplicate",), scores={"near_duplicate": ("near_duplicate_cosine",)},
       phase="survivors")
def check_near_duplicates(ctx: FilterContext) -> None:
    """Two queries above ``near_duplicate_cosine`` (text + image prompts): the first by id is kept."""
    from wikihow_tiir.filter.vectors import near_duplicates

    v = ctx.vectors()
    candidates = np.array([not f for f in ctx.failed], dtype=bool)  # queries are in id order already
    max_cos, dup_of, keep = near_duplicates(v.full, candidates, ctx.cfg.near_duplicate_cosine,
                                            block=ctx.cfg.query_block_size)
    for i in range(ctx.n):
        if np.isfinite(max_cos[i]):
            ctx.score(i, "near_duplicate", max_cos[i])
        if candidates[i] and not keep[i]:
            ctx.fail(i, "near-duplicate", f"near-copy of kept query {ctx.queries[int(dup_of[i])].id}")


@check("llm-judge", reasons=("judge-unanswerable", "judge-failed"), scores={"judge": ()}, settings=("llm_judge",),
       phase="survivors")
def check_judge(ctx: FilterContext) -> None:
    """Optional: an LLM reads each surviving query and its positive and says whether it answers it."""
    cfg = ctx.cfg
    if cfg.llm_judge is None:
        return
    from wikihow_tiir.filter.judge import judge_answerability

    survivors = [i for i in range(ctx.n) if not ctx.failed[i]]
    t0 = time.perf_counter()
    verdicts = judge_answerability([ctx.queries[i] for i in survivors], [ctx.positive(i) for i in survivors],
                                   cfg.llm_judge, cache_dir=ctx.cache_dir)
    ctx.runtime["judge_s"] = round(time.perf_counter() - t0, 3)
    ctx.extra["judge"] = {"model": cfg.llm_judge.model, "base_url_set": cfg.llm_judge.base_url is not None,
                          "asked": len(survivors)}
    for i, v in zip(survivors, verdicts, strict=True):
        if v.error is not None:
            ctx.fail(i, "judge-failed", v.error)
            continue
        ctx.score(i, "judge", 1.0 if v.answerable else 0.0)
        if not v.answerable:
            ctx.fail(i, "judge-unanswerable", v.reason)


# reason -> check, in order of precedence (the first failing one is the reject's reason)
REASONS: dict[str, str] = {r: c.name for c in CHECKS for r in c.reasons}
FLAGS: dict[str, str] = {f: c.name for c in CHECKS for f in c.flags}
# score key -> the settings it is judged against (the report draws them as threshold lines)
SCORE_SETTINGS: dict[str, tuple[str, ...]] = {}
for _c in CHECKS:
    for _k, _v in _c.scores.items():
        SCORE_SETTINGS[_k] = tuple(dict.fromkeys([*SCORE_SETTINGS.get(_k, ()), *_v]))
