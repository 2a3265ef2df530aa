"""Query filter: every check scores every query; a query fails with the first failing check's reason.

``filter_queries(queries, corpus, cfg, cache_dir=...)`` runs, in this order of precedence:

===================  ==========================================================  ==========================
check                score (``Query.scores`` key)                                reject reason(s)
===================  ==========================================================  ==========================
input                -                                                           duplicate-id, malformed-sequence,
                                                                                 text-encoding, positive-missing
images               ``images``, ``query_image_min_distance``,                   too-few-images, too-many-images,
                     ``image_leak_min_distance`` (pHash Hamming bits)            query-image-near-copy, image-leak
structure            ``text_tokens`` (MiniLM WordPiece), ``language``            text-too-short, text-too-long,
                                                                                 placeholder, language-mismatch
relevance            ``relevance``: cosine(query text + image prompts, positive) low-relevance
easiness             ``relevance`` again (ceiling / whole-set percentile),       too-easy, too-easy-percentile,
                     ``lexical_overlap`` (share of query word 3-grams in doc)    lexical-copy
answerability        ``positive_rank`` in the whole corpus,                      positive-not-in-top-k
                     ``false_negative_gap`` (best other-article doc - positive)  (flag: likely-false-negative)
near-duplicate       ``near_duplicate``: max cosine to another query             near-duplicate
llm-judge (opt.)     ``judge`` (1 answerable / 0 not)                            judge-unanswerable, judge-failed
===================  ==========================================================  ==========================

Scores are computed for every query (all are cheap or vectorised) so that rejects carry all of them;
near-duplicates are resolved only among queries that passed every other check (a rejected query never
displaces a good one), and the optional LLM judge is asked only about the survivors.

Calibration of the defaults in ``FilterConfig``, on the bundled build (``make build-dataset``: 44
documents of 17 articles, 44 queries from the offline extractive generator, 31 en + 13 ja; MiniLM
cosines; numbers are p5 / p50 / p95 / max unless said otherwise). ``CALIBRATION`` holds the same
figures for programs.

* ``relevance_min = 0.30``: positives 0.49 / 0.82 / 0.90 / 0.91 (min 0.41); query vs documents of OTHER
  articles, all pairs: p50 0.05, p90 0.26, p95 0.33, p99 0.45. The floor sits above 90 % of unrelated
  pairs and well below the weakest positive. (CJK text through an English MiniLM gives high unrelated
  cosines, hence not higher.)
* ``easiness_max_similarity = 0.95``: the positives' maximum is 0.915 with extractive queries (which take
  their image prompts from step summaries); a query that pastes its document scores 0.97-1.0.
  ``easiness_percentile`` is off: a relative rule always drops a share, and belongs to LLM-written
  sets where the top tail is known to be copied (NeMo-Curator keeps <= p70).
* ``lexical_overlap_max = 0.6`` (word 3-grams, CJK characters): 0.06 / 0.15 / 0.28 / 0.29; a pasted
  document scores 1.0; 0.6 matches the generator's own ``max_copied_share``.
* ``answerability_top_k = 20``: positive ranks 1 / 1 / 2 / 2 of 44; 20 is the paper's R@20 cut-off.
* ``false_negative_margin = 0.05``: best other-article document minus positive: -0.67 / -0.46 / -0.07 /
  +0.03, so nothing is flagged on the sample; 0.05 is above cosine noise between paraphrases.
* ``near_duplicate_cosine = 0.97``: max cosine to another query 0.50 / 0.75 / 0.86 / 0.86 (queries of
  sibling methods share the goal); identical texts score 1.0.
* ``phash_max_distance = 6`` bits: query-image pairs 18 / 24 / 32 (min 16); query vs positive images min
  16; re-encoded copies of one picture are within ~4 bits (same threshold as generation).
* ``min_text_tokens = 20`` / ``max_text_tokens = 400`` (MiniLM WordPiece): 73 / 105 / 179 / 195 (min 64);
  the paper's queries average 105 tokens.
* ``language_min = 0.5``: every sample query scores 1.0 in its own language and 0.0 in the other
  (en <-> ja); a query mixing two languages half and half sits at the line.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from wikihow_tiir.filter.vectors import embed_cached, near_duplicates, positive_stats
from wikihow_tiir.model import Document, Query, Reject

__all__ = ["FilterResult", "filter_queries", "query_embedding_text", "REASONS", "CALIBRATION"]

STAGE = "filter"
EXAMPLES_PER_REASON = 5

# reason -> check, in order of precedence (the first failing one is the reject's reason)
REASONS: dict[str, str] = {
    "duplicate-id": "input",
    "malformed-sequence": "input",
    "text-encoding": "input",
    "positive-missing": "input",
    "too-few-images": "images",
    "too-many-images": "images",
    "query-image-near-copy": "images",
    "image-leak": "images",
    "text-too-short": "structure",
    "text-too-long": "structure",
    "placeholder": "structure",
    "language-mismatch": "structure",
    "low-relevance": "relevance",
    "too-easy": "easiness",
    "too-easy-percentile": "easiness",
    "lexical-copy": "easiness",
    "positive-not-in-top-k": "answerability",
    "near-duplicate": "near-duplicate",
    "judge-unanswerable": "llm-judge",
    "judge-failed": "llm-judge",
}
FLAG_FALSE_NEGATIVE = "likely-false-negative"

# The distributions the defaults came from (bundled build, 44 offline queries; see the module docstring).
CALIBRATION: dict[str, Any] = {
    "build": "data/builds/sample (make build-dataset), 44 documents / 17 articles / 44 queries (31 en, 13 ja)",
    "relevance": {"p5": 0.49, "p50": 0.82, "p95": 0.90, "max": 0.915, "min": 0.41},
    "other_article_cosine": {"p50": 0.05, "p90": 0.26, "p95": 0.33, "p99": 0.45, "max": 0.55},
    "lexical_overlap": {"p5": 0.06, "p50": 0.15, "p95": 0.28, "max": 0.29},
    "positive_rank": {"p50": 1, "max": 2},
    "false_negative_gap": {"p5": -0.67, "p50": -0.46, "p95": -0.07, "max": 0.03},
    "near_duplicate": {"p5": 0.50, "p50": 0.75, "p95": 0.86, "max": 0.86},
    "query_image_min_distance": {"min": 16, "p50": 24},
    "image_leak_min_distance": {"min": 16, "p50": 20},
    "text_tokens": {"min": 64, "p50": 104.5, "p95": 178.6, "max": 195},
    "language": {"own_language": 1.0, "other_language": 0.0},
}


@dataclass
class FilterResult:
    kept: list[Query]
    rejects: list[Reject]
    flagged: dict[str, list[str]]  # flag -> query ids (kept queries only)
    report: dict[str, Any]  # deterministic: thresholds, score distributions, counts, examples
    runtime: dict[str, Any] = field(default_factory=dict)  # timings and cache hits (vary between runs)


def query_embedding_text(q: Query) -> str:
    """The query as the text embedder sees it: its text with each image replaced by its prompt."""
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


def _distribution(values: Sequence[float]) -> dict[str, Any]:
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(arr) == 0:
        return {"n": 0}
    qs = np.percentile(arr, [1, 5, 25, 50, 75, 95, 99])
    out = {"n": int(len(arr)), "min": float(arr.min()), "mean": float(arr.mean()), "max": float(arr.max())}
    out.update({f"p{p}": float(v) for p, v in zip((1, 5, 25, 50, 75, 95, 99), qs, strict=True)})
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def _r(x: float) -> float:
    return round(float(x), 6)


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


def filter_queries(queries: list[Query], corpus: list[Document], cfg: FilterConfig, *,
                   cache_dir: Path | None = None) -> FilterResult:
    """Score and filter generated queries against the corpus they will be searched in.

    ``cache_dir``: where embedding shards are cached (a re-run with the same texts encodes nothing).
    Each query's ``scores`` is replaced by this filter's scores (kept and rejected queries alike).
    Bad input (empty corpus, unknown positives, broken text, no images ...) gives rejects with reasons
    and messages in ``report["messages"]``, never an exception; only an inconsistent configuration
    (``min_query_images > max_query_images``, an unusable ``llm_judge``) raises ``ValueError``.
    """
    t_start = time.perf_counter()
    runtime: dict[str, Any] = {}
    messages: list[str] = []
    if not cfg.enabled:
        return FilterResult(list(queries), [], {FLAG_FALSE_NEGATIVE: []},
                            {"enabled": False, "queries_in": len(queries), "kept": len(queries), "rejected": 0,
                             "messages": ["filter disabled (filter.enabled = false): every query kept"]})
    if cfg.llm_judge is not None:
        from wikihow_tiir.filter.judge import check_judge_config

        check_judge_config(cfg.llm_judge)  # a configuration error, reported before minutes of work
    if cfg.min_query_images > cfg.max_query_images:
        raise ValueError(f"filter.min_query_images ({cfg.min_query_images}) > filter.max_query_images "
                         f"({cfg.max_query_images})")

    # Work in a canonical order (queries and documents by id; a stable sort keeps the first of two
    # equal ids first): embedding batches and matrix products then see the same inputs in the same
    # order however the caller ordered them, so every score is bit-for-bit independent of input order.
    input_order = {id(q): i for i, q in enumerate(queries)}
    queries = sorted(queries, key=lambda q: q.id)
    corpus = sorted(corpus, key=lambda d: d.id)
    n = len(queries)
    failed: list[list[str]] = [[] for _ in range(n)]
    details: list[dict[str, Any]] = [{} for _ in range(n)]
    for q in queries:
        q.scores = {}

    # ---- corpus index
    doc_row: dict[str, int] = {}
    for i, d in enumerate(corpus):
        if d.id in doc_row:
            messages.append(f"corpus document id {d.id!r} occurs more than once; the first is used")
            continue
        doc_row[d.id] = i
    if not corpus:
        messages.append(f"the corpus is empty: no query can find its positive document; "
                        f"all {n} queries are rejected as positive-missing")
    if n == 0:
        messages.append("no queries to filter")

    # ---- input checks
    seen: set[str] = set()
    for i, q in enumerate(queries):
        if q.id in seen:
            failed[i].append("duplicate-id")
        seen.add(q.id)
        try:
            q.content.check()
        except ValueError as exc:
            failed[i].append("malformed-sequence")
            details[i]["malformed-sequence"] = str(exc)
        for piece in [q.content.text, *q.image_prompts]:
            problem = text_problem(piece)
            if problem:
                failed[i].append("text-encoding")
                details[i]["text-encoding"] = problem
                break
        if q.positive_id not in doc_row:
            failed[i].append("positive-missing")
            details[i]["positive-missing"] = f"positive document {q.positive_id!r} is not in the corpus"

    # ---- images
    for i, q in enumerate(queries):
        n_img = q.content.n_images
        q.scores["images"] = float(n_img)
        if n_img < cfg.min_query_images:
            failed[i].append("too-few-images")
            details[i]["too-few-images"] = f"{n_img} images, at least {cfg.min_query_images} needed"
        elif n_img > cfg.max_query_images:
            failed[i].append("too-many-images")
            details[i]["too-many-images"] = f"{n_img} images, at most {cfg.max_query_images} allowed"
        q_hashes = [m.phash for m in q.content.image_meta if m is not None]
        within, bad = _min_pairwise(q_hashes)
        if within is not None:
            q.scores["query_image_min_distance"] = float(within)
            if within <= cfg.phash_max_distance:
                failed[i].append("query-image-near-copy")
        row = doc_row.get(q.positive_id)
        if row is not None:
            d_hashes = [m.phash for m in corpus[row].content.image_meta if m is not None]
            leak, _ = _min_pairwise(q_hashes, d_hashes)  # unusable hashes were counted just above
            if leak is not None:
                q.scores["image_leak_min_distance"] = float(leak)
                if leak <= cfg.phash_max_distance:
                    failed[i].append("image-leak")
        if bad:
            details[i]["unhashed_images"] = bad

    # ---- structure
    from wikihow_tiir.stats import count_tokens

    texts = [safe_text(q.content.text) for q in queries]
    tokens = count_tokens(texts)
    unsupported_langs: set[str] = set()
    t0 = time.perf_counter()
    for i, q in enumerate(queries):
        q.scores["text_tokens"] = float(tokens[i])
        if tokens[i] < cfg.min_text_tokens:
            failed[i].append("text-too-short")
        elif tokens[i] > cfg.max_text_tokens:
            failed[i].append("text-too-long")
        hole = None
        for piece in [texts[i], *q.image_prompts]:
            hole = find_placeholder(safe_text(piece))
            if hole:
                break
        if hole:
            failed[i].append("placeholder")
            details[i]["placeholder"] = f"leftover placeholder {hole!r} in the query text or an image prompt"
        if cfg.check_language:
            if not language_supported(q.lang):
                unsupported_langs.add(q.lang)
            elif texts[i].strip():
                score = language_score(texts[i], q.lang)
                if score is not None:
                    q.scores["language"] = _r(score)
                    if score < cfg.language_min:
                        failed[i].append("language-mismatch")
    runtime["language_s"] = round(time.perf_counter() - t0, 3)
    if unsupported_langs:
        messages.append(f"language not checked for languages without a detector: {sorted(unsupported_langs)}")

    # ---- lexical overlap with the positive
    for i, q in enumerate(queries):
        row = doc_row.get(q.positive_id)
        if row is None:
            continue
        ov = lexical_overlap(texts[i], safe_text(corpus[row].content.text), cfg.lexical_ngram)
        q.scores["lexical_overlap"] = _r(ov)
        if ov > cfg.lexical_overlap_max:
            failed[i].append("lexical-copy")

    # ---- embeddings (documents and queries), cached per shard
    t0 = time.perf_counter()
    emb_dir = Path(cache_dir) / "embeddings" if cache_dir is not None else None
    doc_vecs, doc_cache = embed_cached([safe_text(d.content.text) for d in corpus],
                                       batch_size=cfg.embed_batch_size, shard_size=cfg.embed_shard_size,
                                       cache_dir=emb_dir, device=cfg.embed_device)
    q_vecs, q_cache = embed_cached([query_embedding_text(q) for q in queries],
                                   batch_size=cfg.embed_batch_size, shard_size=cfg.embed_shard_size,
                                   cache_dir=emb_dir, device=cfg.embed_device)
    runtime["embed_s"] = round(time.perf_counter() - t0, 3)
    runtime["embedding_cache"] = {"documents": doc_cache, "queries": q_cache}

    # ---- relevance, easiness, answerability: exact search over the whole corpus
    t0 = time.perf_counter()
    has_pos = np.array([q.positive_id in doc_row for q in queries], dtype=bool)
    rows_with_pos = np.nonzero(has_pos)[0]
    article_code: dict[str, int] = {}
    doc_article = np.array([article_code.setdefault(d.article_id, len(article_code)) for d in corpus],
                           dtype=np.int64)
    query_article = np.array([article_code.setdefault(queries[i].article_id, len(article_code))
                              for i in rows_with_pos], dtype=np.int64)
    pos_index = np.array([doc_row[queries[i].positive_id] for i in rows_with_pos], dtype=np.int64)
    ps = positive_stats(q_vecs[rows_with_pos], doc_vecs, pos_index, query_article, doc_article,
                        block=cfg.query_block_size)
    runtime["search_s"] = round(time.perf_counter() - t0, 3)

    relevance = ps.positive_score
    cutoff = None
    if cfg.easiness_percentile is not None and len(relevance):
        # over the WHOLE query set at once: a per-batch percentile (NeMo-Curator's pitfall) would drop
        # the same share of every batch, however easy or hard that batch is
        cutoff = float(np.percentile(relevance.astype(np.float64), cfg.easiness_percentile))
    fn_competitor: dict[int, tuple[str, float]] = {}
    for k, i in enumerate(rows_with_pos):
        q = queries[i]
        rel = float(relevance[k])
        q.scores["relevance"] = _r(rel)
        q.scores["positive_rank"] = float(ps.rank[k])
        if rel < cfg.relevance_min:
            failed[i].append("low-relevance")
        if rel > cfg.easiness_max_similarity:
            failed[i].append("too-easy")
        elif cutoff is not None and rel > cutoff:
            failed[i].append("too-easy-percentile")
        if ps.rank[k] > cfg.answerability_top_k:
            failed[i].append("positive-not-in-top-k")
            details[i]["positive-not-in-top-k"] = (f"positive ranks {int(ps.rank[k])} of {len(corpus)}, "
                                                   f"top-{cfg.answerability_top_k} required")
        if ps.best_other_index[k] >= 0:
            gap = float(ps.best_other_score[k]) - rel
            q.scores["false_negative_gap"] = _r(gap)
            if gap > cfg.false_negative_margin:
                fn_competitor[i] = (corpus[int(ps.best_other_index[k])].id, gap)

    # ---- near-duplicates among the queries that passed everything else, first by id kept
    t0 = time.perf_counter()
    order = sorted(range(n), key=lambda i: (queries[i].id, i))
    candidates = np.array([not failed[i] for i in order], dtype=bool)
    max_cos, dup_of, keep = near_duplicates(q_vecs[order] if n else q_vecs, candidates,
                                            cfg.near_duplicate_cosine, block=cfg.query_block_size)
    for pos_, i in enumerate(order):
        if np.isfinite(max_cos[pos_]):
            queries[i].scores["near_duplicate"] = _r(max_cos[pos_])
        if candidates[pos_] and not keep[pos_]:
            failed[i].append("near-duplicate")
            details[i]["near-duplicate"] = f"near-copy of kept query {queries[order[dup_of[pos_]]].id}"
    runtime["near_duplicates_s"] = round(time.perf_counter() - t0, 3)

    # ---- optional LLM judge, on the survivors only
    judge_info: dict[str, Any] | None = None
    if cfg.llm_judge is not None:
        from wikihow_tiir.filter.judge import judge_answerability

        survivors = [i for i in range(n) if not failed[i]]
        t0 = time.perf_counter()
        verdicts = judge_answerability([queries[i] for i in survivors],
                                       [corpus[doc_row[queries[i].positive_id]] for i in survivors],
                                       cfg.llm_judge, cache_dir=cache_dir)
        runtime["judge_s"] = round(time.perf_counter() - t0, 3)
        judge_info = {"model": cfg.llm_judge.model, "base_url_set": cfg.llm_judge.base_url is not None,
                      "asked": len(survivors)}
        for i, v in zip(survivors, verdicts, strict=True):
            if v.error is not None:
                failed[i].append("judge-failed")
                details[i]["judge-failed"] = v.error
                continue
            queries[i].scores["judge"] = 1.0 if v.answerable else 0.0
            if not v.answerable:
                failed[i].append("judge-unanswerable")
                details[i]["judge-unanswerable"] = v.reason

    # ---- outcome
    kept: list[Query] = []
    rejects: list[Reject] = []
    flagged: dict[str, list[str]] = {FLAG_FALSE_NEGATIVE: []}
    flag_examples: list[dict[str, Any]] = []
    for i, q in enumerate(queries):
        if failed[i]:
            reasons = sorted(set(failed[i]), key=list(REASONS).index)
            extra: dict[str, Any] = {"scores": dict(q.scores), "failed": reasons,
                                     "positive_id": q.positive_id, "article_id": q.article_id}
            extra.update({k: v for k, v in details[i].items()})
            rejects.append(Reject(stage=STAGE, item_id=q.id, reason=reasons[0],
                                  detail=_explain(reasons[0], q, cfg, details[i], cutoff), extra=extra))
        else:
            kept.append(q)
            if i in fn_competitor:
                flagged[FLAG_FALSE_NEGATIVE].append(q.id)
                doc_id, gap = fn_competitor[i]
                flag_examples.append({"query": q.id, "positive": q.positive_id, "competitor": doc_id,
                                      "gap": _r(gap)})
    kept.sort(key=lambda q: input_order[id(q)])  # the caller's order back
    if n and not kept:
        messages.append(f"every one of the {n} queries was rejected; the splits will be empty")

    report = _report(queries, corpus, cfg, failed, rejects, kept, flagged, flag_examples, cutoff, messages,
                     judge_info)
    runtime["total_s"] = round(time.perf_counter() - t_start, 3)
    return FilterResult(kept=kept, rejects=rejects, flagged=flagged, report=report, runtime=runtime)


def _explain(reason: str, q: Query, cfg: FilterConfig, detail: dict[str, Any], cutoff: float | None) -> str:
    s = q.scores
    if reason in detail and isinstance(detail[reason], str):
        return detail[reason]
    texts = {
        "duplicate-id": f"query id {q.id!r} occurs more than once; the first is kept",
        "query-image-near-copy": (f"two query images are {s.get('query_image_min_distance')} pHash bits apart "
                                  f"(<= {cfg.phash_max_distance})"),
        "image-leak": (f"a query image is {s.get('image_leak_min_distance')} pHash bits from an image of its "
                       f"positive document (<= {cfg.phash_max_distance})"),
        "text-too-short": f"{s.get('text_tokens')} text tokens < {cfg.min_text_tokens}",
        "text-too-long": f"{s.get('text_tokens')} text tokens > {cfg.max_text_tokens}",
        "language-mismatch": (f"text does not read as the article's language {q.lang!r} "
                              f"(score {s.get('language')} < {cfg.language_min})"),
        "low-relevance": f"cosine to the positive {s.get('relevance')} < {cfg.relevance_min}",
        "too-easy": f"cosine to the positive {s.get('relevance')} > {cfg.easiness_max_similarity}",
        "too-easy-percentile": (f"cosine to the positive {s.get('relevance')} is above the "
                                f"{cfg.easiness_percentile}th percentile of the whole query set ({cutoff})"),
        "lexical-copy": (f"{s.get('lexical_overlap')} of the query's word {cfg.lexical_ngram}-grams occur in the "
                         f"positive (> {cfg.lexical_overlap_max})"),
    }
    return texts.get(reason, reason)


def _report(queries, corpus, cfg, failed, rejects, kept, flagged, flag_examples, cutoff, messages,
            judge_info) -> dict[str, Any]:
    by_reason: dict[str, list[str]] = {}
    for r in rejects:
        by_reason.setdefault(r.reason, []).append(r.item_id)
    failing: dict[str, int] = {}
    for f in failed:
        for reason in set(f):
            failing[reason] = failing.get(reason, 0) + 1

    def scores(key: str) -> list[float]:
        return [q.scores[key] for q in queries if key in q.scores]

    checks: dict[str, dict[str, Any]] = {
        "images": {"scores": {"images": _distribution(scores("images")),
                              "query_image_min_distance": _distribution(scores("query_image_min_distance")),
                              "image_leak_min_distance": _distribution(scores("image_leak_min_distance"))},
                   "thresholds": {"min_query_images": cfg.min_query_images,
                                  "max_query_images": cfg.max_query_images,
                                  "phash_max_distance": cfg.phash_max_distance}},
        "structure": {"scores": {"text_tokens": _distribution(scores("text_tokens")),
                                 "language": _distribution(scores("language"))},
                      "thresholds": {"min_text_tokens": cfg.min_text_tokens, "max_text_tokens": cfg.max_text_tokens,
                                     "check_language": cfg.check_language, "language_min": cfg.language_min},
                      "tokenizer": "all-MiniLM-L6-v2 WordPiece"},
        "relevance": {"scores": {"relevance": _distribution(scores("relevance"))},
                      "thresholds": {"relevance_min": cfg.relevance_min}},
        "easiness": {"scores": {"relevance": _distribution(scores("relevance")),
                                "lexical_overlap": _distribution(scores("lexical_overlap"))},
                     "thresholds": {"easiness_max_similarity": cfg.easiness_max_similarity,
                                    "easiness_percentile": cfg.easiness_percentile,
                                    "easiness_percentile_cutoff": None if cutoff is None else round(cutoff, 6),
                                    "lexical_overlap_max": cfg.lexical_overlap_max,
                                    "lexical_ngram": cfg.lexical_ngram}},
        "answerability": {"scores": {"positive_rank": _distribution(scores("positive_rank")),
                                     "false_negative_gap": _distribution(scores("false_negative_gap"))},
                          "thresholds": {"answerability_top_k": cfg.answerability_top_k,
                                         "false_negative_margin": cfg.false_negative_margin}},
        "near-duplicate": {"scores": {"near_duplicate": _distribution(scores("near_duplicate"))},
                           "thresholds": {"near_duplicate_cosine": cfg.near_duplicate_cosine}},
        "input": {"scores": {}, "thresholds": {}},
        "llm-judge": {"scores": {"judge": _distribution(scores("judge"))},
                      "thresholds": {"enabled": cfg.llm_judge is not None}, **({"judge": judge_info} if judge_info else {})},
    }
    for name in checks:
        names = [r for r, c in REASONS.items() if c == name]
        checks[name]["rejected"] = sum(len(by_reason.get(r, [])) for r in names)  # as the first reason
        checks[name]["failing"] = {r: failing.get(r, 0) for r in names}  # any reason, overlaps counted
    return {
        "queries_in": len(queries),
        "corpus_documents": len(corpus),
        "kept": len(kept),
        "rejected": len(rejects),
        # every reason, in order of precedence, zero counts included (the report documents the checks)
        "reasons": {r: {"count": len(by_reason.get(r, [])), "check": REASONS[r],
                        "examples": sorted(by_reason.get(r, []))[:EXAMPLES_PER_REASON]}
                    for r in REASONS},
        "flagged": {flag: {"count": len(ids), "examples": sorted(flag_examples, key=lambda e: e["query"])
                           [:EXAMPLES_PER_REASON] if flag == FLAG_FALSE_NEGATIVE else sorted(ids)[:5]}
                    for flag, ids in flagged.items()},
        "checks": checks,
        "messages": messages,
    }
