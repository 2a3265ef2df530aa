"""Query filter: every check scores every query; a query fails with the first failing check's reason.

``filter_queries(queries, corpus, cfg, cache_dir=...)`` runs the checks of ``checks.py`` (one small
function each, one registry) over the WHOLE query set at once, in this order of precedence:

===============  ============================================================  ===============================
check            score (``Query.scores`` key)                                  reject reason(s) / flag(s)
===============  ============================================================  ===============================
input            -                                                             duplicate-id, malformed-sequence,
                                                                               text-encoding, positive-missing
images           ``images``, ``query_image_min_distance``,                     too-few-images, too-many-images,
                 ``image_leak_min_distance`` (pHash Hamming bits)              query-image-near-copy, image-leak
structure        ``text_tokens`` (MiniLM WordPiece), ``language``              text-too-short, text-too-long,
                                                                               placeholder, language-mismatch
leak             ``goal_leak`` / ``title_leak`` (share of the phrase found     goal-leak, title-leak, step-copy
                 verbatim in the text), ``step_copy_tokens`` (longest run
                 of one step text copied)
relevance        ``relevance``: cosine(query text + image prompts, positive)   low-relevance
easiness         ``relevance`` again (ceiling / whole-set percentile),         too-easy, too-easy-percentile,
                 ``lexical_overlap`` (share of query word 3-grams in doc)      lexical-copy
pictures         ``text_only_rank``, ``full_rank`` (positive's rank in the     flag or reject: text-sufficient
                 whole corpus from the text alone / text + image prompts),
                 ``text_only_margin``
answerability    ``full_rank``, ``false_negative_gap``                         flags: positive-not-in-top-k,
                                                                               likely-false-negative
near-duplicate   ``near_duplicate``: max cosine to another query               near-duplicate
llm-judge (opt.) ``judge`` (1 answerable / 0 not)                              judge-unanswerable, judge-failed
===============  ============================================================  ===============================

Scores are computed for every query so that rejects carry all of them; near-duplicates are
resolved only among queries that passed every other check, and the optional LLM judge is asked
only about the survivors. Everything runs in a canonical order (queries and documents by id), so
the result does not depend on the order of the input.

**What shapes the test split.** No rule selects test queries by a text retriever's success: the
MiniLM rank rules (``positive-not-in-top-k``, ``likely-false-negative``) are flags for review by
default (``answerability_action`` / ``false_negative_action`` apply them to train only), and the
picture-necessity rule works the other way round: a query whose text alone already ranks its
positive first by ``text_sufficient_margin`` is ``text-sufficient`` and, by default, is rejected
from the test split (flagged in train; :func:`apply_split_rules`). Where an LLM judge is configured,
answerability is the judge's call.

Calibration of the defaults in ``FilterConfig``, on the bundled build (``make build-dataset``: 44
documents of 17 articles, 20 pages; queries from the offline generator; MiniLM cosines).
``CALIBRATION`` holds the figures for programs.

* ``relevance_min = 0.30``: query vs documents of OTHER articles, all pairs: p50 0.05, p90 0.26,
  p95 0.33; the floor sits above 90 % of unrelated pairs and well below the weakest positive (text +
  image prompts). It is a sanity floor on the query with what its pictures show, not a rank rule.
* ``easiness_max_similarity = 0.95``: a query that pastes its document scores 0.97-1.0.
  ``easiness_percentile`` is off: a relative rule always drops a share, and belongs to LLM-written
  sets where the top tail is known to be copied (NeMo-Curator keeps <= p70).
* ``lexical_overlap_max = 0.6`` (word 3-grams, CJK characters): a pasted document scores 1.0.
* leaks: a goal or section title found whole in the text is a leak, even a one-word title ("Fillets"
  against "Whole Fish" names the method); ``leak_min_phrase_words`` raises the bar where a corpus
  has generic one-word titles. ``step_copy_max_words = 8`` (12 CJK characters): the offline v1
  generator pasted whole step summaries (8-14 words); a paraphrase shares runs of 2-4 words ("the
  rims", "with a soft brush"); offline v2 queries: 1 / 2 / 5 / 8 (min / p50 / p95 / max).
* ``text_sufficient_margin = 0.15``: the text-only margin (positive's cosine minus the next document's)
  of the offline v2 queries runs -0.13 / -0.09 / 0.02 / 0.13 / 0.25 (min / p5 / p50 / p95 / max);
  0.15 sits above p95: a text that clears it cannot miss its positive whatever the pictures show,
  while sibling methods of one article (sharing the goal's vocabulary) stay within ~0.1 of each other.
  2 of 44 bundled queries are text-sufficient (both fell in train: flagged).
* ``answerability_top_k = 20``: the paper's R@20 cut-off; ``false_negative_margin = 0.05``: above
  cosine noise between paraphrases.
* ``near_duplicate_cosine = 0.97``; ``phash_max_distance = 6`` bits (re-encoded copies of one picture
  are within ~4 bits); ``min_text_tokens = 20`` / ``max_text_tokens = 400`` (MiniLM WordPiece; the
  paper's queries average 105); ``language_min = 0.5``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wikihow_tiir.config import FilterConfig
from wikihow_tiir.filter.checks import (
    CHECKS,
    FLAGS,
    REASONS,
    SCORE_SETTINGS,
    FilterContext,
    document_embedding_text,
    query_embedding_text,
)
from wikihow_tiir.model import Document, Query, Reject

__all__ = ["FilterResult", "filter_queries", "apply_split_rules", "query_embedding_text",
           "document_embedding_text", "REASONS", "FLAGS", "SCORE_SETTINGS", "CALIBRATION", "CHECKS"]

STAGE = "filter"
EXAMPLES_PER_REASON = 5
FLAG_FALSE_NEGATIVE = "likely-false-negative"
FLAG_TEXT_SUFFICIENT = "text-sufficient"
FLAG_NOT_IN_TOP_K = "positive-not-in-top-k"

# The distributions the defaults came from (bundled build; see the module docstring).
CALIBRATION: dict[str, Any] = {
    "build": "data/builds/sample (make build-dataset), 44 documents / 17 articles, offline-extractive-v2 queries",
    "other_article_cosine": {"p50": 0.05, "p90": 0.26, "p95": 0.33, "p99": 0.45, "max": 0.55},
    "text_only_margin": {"min": -0.131, "p5": -0.093, "p50": 0.016, "p95": 0.129, "max": 0.253},
    "step_copy_tokens": {"min": 1, "p50": 2, "p95": 5, "max": 8},
    "relevance": {"min": 0.40, "p5": 0.47, "p50": 0.68, "p95": 0.84, "max": 0.86},
    "near_duplicate": {"p5": 0.56, "p50": 0.72, "p95": 0.84, "max": 0.85},
    "text_tokens": {"min": 65, "p50": 113.5, "p95": 164, "max": 190},
    "language": {"own_language": 1.0, "other_language": 0.0},
}


@dataclass
class FilterResult:
    kept: list[Query]
    rejects: list[Reject]
    flagged: dict[str, list[str]]  # flag -> query ids (kept queries only)
    report: dict[str, Any]  # deterministic: thresholds, score distributions, counts, examples
    runtime: dict[str, Any] = field(default_factory=dict)  # timings and cache hits (vary between runs)


def _distribution(values: Sequence[float]) -> dict[str, Any]:
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(arr) == 0:
        return {"n": 0}
    qs = np.percentile(arr, [1, 5, 25, 50, 75, 95, 99])
    out = {"n": int(len(arr)), "min": float(arr.min()), "mean": float(arr.mean()), "max": float(arr.max())}
    out.update({f"p{p}": float(v) for p, v in zip((1, 5, 25, 50, 75, 95, 99), qs, strict=True)})
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


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
    if not cfg.enabled:
        return FilterResult(list(queries), [], {},
                            {"enabled": False, "queries_in": len(queries), "kept": len(queries), "rejected": 0,
                             "messages": ["filter disabled (filter.enabled = false): every query kept"]})
    if cfg.llm_judge is not None:
        from wikihow_tiir.filter.judge import check_judge_config

        check_judge_config(cfg.llm_judge)  # a configuration error, reported before minutes of work
    if cfg.min_query_images > cfg.max_query_images:
        raise ValueError(f"filter.min_query_images ({cfg.min_query_images}) > filter.max_query_images "
                         f"({cfg.max_query_images})")

    input_order = {id(q): i for i, q in enumerate(queries)}
    ctx = FilterContext.build(queries, corpus, cfg, cache_dir)
    if not corpus:
        ctx.messages.append(f"the corpus is empty: no query can find its positive document; "
                            f"all {ctx.n} queries are rejected as positive-missing")
    if ctx.n == 0:
        ctx.messages.append("no queries to filter")
    for phase in ("all", "survivors"):
        for chk in CHECKS:
            if chk.phase != phase:
                continue
            t0 = time.perf_counter()
            chk.fn(ctx)
            ctx.runtime.setdefault("checks_s", {})[chk.name] = round(time.perf_counter() - t0, 3)

    kept: list[Query] = []
    rejects: list[Reject] = []
    for i, q in enumerate(ctx.queries):
        if ctx.failed[i]:
            reasons = sorted(set(ctx.failed[i]), key=list(REASONS).index)
            extra: dict[str, Any] = {"scores": dict(q.scores), "failed": reasons,
                                     "positive_id": q.positive_id, "article_id": q.article_id}
            extra.update(ctx.details[i])
            detail = ctx.details[i].get(reasons[0])
            rejects.append(Reject(stage=STAGE, item_id=q.id, reason=reasons[0],
                                  detail=detail if isinstance(detail, str) else reasons[0], extra=extra))
        else:
            kept.append(q)
    # flags are about kept queries only
    flagged: dict[str, list[str]] = {f: sorted(ctx.queries[i].id for i in ctx.flags.get(f, {}) if not ctx.failed[i])
                                     for f in FLAGS}
    kept.sort(key=lambda q: input_order[id(q)])  # the caller's order back
    if ctx.n and not kept:
        ctx.messages.append(f"every one of the {ctx.n} queries was rejected; the splits will be empty")
    report = _report(ctx, rejects, kept)
    ctx.runtime["total_s"] = round(time.perf_counter() - t_start, 3)
    return FilterResult(kept=kept, rejects=rejects, flagged=flagged, report=report, runtime=ctx.runtime)


def _report(ctx: FilterContext, rejects: list[Reject], kept: list[Query]) -> dict[str, Any]:
    cfg = ctx.cfg
    by_reason: dict[str, list[str]] = {}
    for r in rejects:
        by_reason.setdefault(r.reason, []).append(r.item_id)
    failing: dict[str, int] = {}
    for f in ctx.failed:
        for reason in set(f):
            failing[reason] = failing.get(reason, 0) + 1
    settings = cfg.model_dump(mode="json")

    def scores(key: str) -> list[float]:
        return [q.scores[key] for q in ctx.queries if key in q.scores]

    checks: dict[str, dict[str, Any]] = {}
    for chk in CHECKS:
        entry: dict[str, Any] = {
            "doc": chk.doc,
            "scores": {k: _distribution(scores(k)) for k in chk.scores},
            # the check's settings (a computed cut-off such as the easiness percentile's is added below)
            "thresholds": {s: settings[s] for s in chk.settings if s in settings and s != "llm_judge"},
            "rejected": sum(len(by_reason.get(r, [])) for r in chk.reasons),  # as the first reason
            "failing": {r: failing.get(r, 0) for r in chk.reasons},  # any reason, overlaps counted
        }
        if chk.name == "easiness":
            entry["thresholds"]["easiness_percentile_cutoff"] = ctx.extra.get("easiness_percentile_cutoff")
        if chk.name == "llm-judge":
            entry["thresholds"] = {"enabled": cfg.llm_judge is not None}
            if "judge" in ctx.extra:
                entry["judge"] = ctx.extra["judge"]
        checks[chk.name] = entry
    kept_ids = {q.id for q in kept}

    def flag_entry(flag: str) -> dict[str, Any]:
        hits = sorted(((ctx.queries[i].id, info) for i, info in ctx.flags.get(flag, {}).items()
                       if ctx.queries[i].id in kept_ids), key=lambda t: t[0])
        if flag == FLAG_FALSE_NEGATIVE:
            examples: list[Any] = [info for _, info in hits[:EXAMPLES_PER_REASON]]
        else:
            examples = [qid for qid, _ in hits[:EXAMPLES_PER_REASON]]
        return {"count": len(hits), "check": FLAGS[flag], "examples": examples}

    return {
        "queries_in": ctx.n,
        "corpus_documents": len(ctx.corpus),
        "kept": len(kept),
        "rejected": len(rejects),
        # every reason, in order of precedence, zero counts included (the report documents the checks)
        "reasons": {r: {"count": len(by_reason.get(r, [])), "check": REASONS[r],
                        "examples": sorted(by_reason.get(r, []))[:EXAMPLES_PER_REASON]}
                    for r in REASONS},
        "flagged": {flag: flag_entry(flag) for flag in FLAGS},
        "picture_necessity": _picture_necessity(kept),
        "checks": checks,
        "split_rules": split_rule_settings(cfg),
        "messages": ctx.messages,
    }


def _picture_necessity(kept: Sequence[Query]) -> dict[str, Any]:
    """Do the pictures carry information? Mean reciprocal rank of the positive from the text alone vs
    text + image prompts, over the kept queries (1 = always first)."""
    pairs = [(q.scores["text_only_rank"], q.scores["full_rank"]) for q in kept
             if "text_only_rank" in q.scores and "full_rank" in q.scores]
    if not pairs:
        return {"n": 0}
    text_rr = float(np.mean([1.0 / t for t, _ in pairs]))
    full_rr = float(np.mean([1.0 / f for _, f in pairs]))
    return {"n": len(pairs), "mean_reciprocal_rank_text_only": round(text_rr, 4),
            "mean_reciprocal_rank_full": round(full_rr, 4),
            "pictures_help": sum(f < t for t, f in pairs), "pictures_hurt": sum(f > t for t, f in pairs),
            "text_only_rank_1": sum(t == 1 for t, _ in pairs)}


def split_rule_settings(cfg: FilterConfig) -> dict[str, str]:
    """Which flag decides what in which split (stated in the manifest and on the card)."""
    return {FLAG_TEXT_SUFFICIENT: cfg.text_sufficient_action, FLAG_NOT_IN_TOP_K: cfg.answerability_action,
            FLAG_FALSE_NEGATIVE: cfg.false_negative_action}


def exclude_from_test(result: FilterResult, cfg: FilterConfig) -> set[str]:
    """Queries whose article the split must put in train (``false_negative_action = "train-only"``)."""
    if cfg.false_negative_action == "train-only":
        return set(result.flagged.get(FLAG_FALSE_NEGATIVE, []))
    return set()


def apply_split_rules(splits: dict[str, list[Query]], result: FilterResult,
                      cfg: FilterConfig) -> tuple[dict[str, list[Query]], list[Reject]]:
    """The split-dependent rules, after the split by article: ``text-sufficient`` queries leave the
    test split (``text_sufficient_action = "reject-test"``), queries flagged ``positive-not-in-top-k``
    leave train (``answerability_action = "reject-train"``). Returns the new splits and a reject (stage
    ``filter``) for every query removed; updates ``result.report`` (counts and examples)."""
    rules = []
    if cfg.text_sufficient_action == "reject-test":
        rules.append(("test", FLAG_TEXT_SUFFICIENT, "rejected from the test split: the text alone ranks the "
                                                    "positive first by a wide margin"))
    if cfg.answerability_action == "reject-train":
        rules.append(("train", FLAG_NOT_IN_TOP_K, "rejected from the train split: the positive ranks below "
                                                  f"top-{cfg.answerability_top_k} for the text embedder"))
    out = {name: list(qs) for name, qs in splits.items()}
    rejects: list[Reject] = []
    for split, flag, why in rules:
        ids = set(result.flagged.get(flag, []))
        removed = [q for q in out.get(split, []) if q.id in ids]
        out[split] = [q for q in out.get(split, []) if q.id not in ids]
        for q in removed:
            rejects.append(Reject(stage=STAGE, item_id=q.id, reason=flag, detail=why,
                                  extra={"scores": dict(q.scores), "failed": [flag], "split": split,
                                         "positive_id": q.positive_id, "article_id": q.article_id}))
        if removed:
            rep = result.report
            entry = rep["reasons"].setdefault(flag, {"count": 0, "check": FLAGS[flag], "examples": []})
            entry["count"] += len(removed)
            entry["examples"] = sorted(entry["examples"] + [q.id for q in removed])[:EXAMPLES_PER_REASON]
            rep.setdefault("split_rejected", {})[f"{split}:{flag}"] = len(removed)
            rep["kept"] -= len(removed)
            rep["rejected"] += len(removed)
    return out, rejects
