"""Retrieval metrics from explicit qrels and a run: Recall@k, MRR@k, nDCG@k. Pure; no dataset knowledge.

Definitions (trec_eval's, so numbers agree with `pytrec-eval-terrier`, `ir-measures` and `ranx`):

* a document is *relevant* when its qrel grade is >= 1; unjudged documents have grade 0;
* the run of a query is ranked by score descending, ties by document id descending (trec_eval's order);
* Recall@k = relevant documents in the top k / relevant documents in the qrels;
* MRR@k = 1 / rank of the first relevant document in the top k (0 when none);
* nDCG@k = DCG@k / ideal DCG@k with gain = grade and discount log2(rank + 1) (graded relevance);
* the average is over **every query in the qrels**: a query missing from the run, or with no
  relevant document retrieved, scores 0 (trec_eval, and so pytrec_eval, averages only over the
  queries present in the run, which inflates scores when a model drops queries). A query whose qrels
  hold no relevant document scores 0 on every metric, as in trec_eval.

Query and document ids are independent namespaces: a document whose id equals the query id is
ranked like any other (BEIR's ``ignore_identical_ids`` default silently drops it; the paper's own
layout gives a positive document its query's id).

Speed: runs are never sorted. The rank of each retrieved relevant document is the number of
documents of its query scored higher (one vectorized pass over all scores), plus tied documents
with a greater id; every metric is then computed for all queries at once on a (n_queries, max_k)
grade matrix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from wikihow_tiir.errors import WikihowTiirError

RECALL_AT = (1, 5, 20, 100)
MRR_AT = (5, 10, 20)
NDCG_AT = (5, 10, 20)
# the columns of the paper's Table 2, in its order
PAPER_METRICS = ("recall_at_5", "mrr_at_5", "mrr_at_10", "ndcg_at_5", "ndcg_at_10")
MAIN_METRIC = "ndcg_at_10"

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]


class MetricsInputError(WikihowTiirError, ValueError):
    """Qrels or a run that cannot be scored without giving a wrong number."""

    reason = "bad-metrics-input"


@dataclass(slots=True)
class RunScores:
    """Metrics of one run: ``aggregate`` (means) and ``per_query`` (query id -> metric -> value)."""

    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]
    query_ids: list[str] = field(default_factory=list)
    n_missing_from_run: int = 0  # qrels queries the run has no ranking for (scored 0)


def ranked(scores: Mapping[str, float]) -> list[str]:
    """Document ids by score descending, ties by document id descending (trec_eval's order)."""
    return [d for d, _ in sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]


def metric_names(recall_at: Iterable[int] = RECALL_AT, mrr_at: Iterable[int] = MRR_AT,
                 ndcg_at: Iterable[int] = NDCG_AT) -> list[str]:
    return ([f"recall_at_{k}" for k in recall_at] + [f"mrr_at_{k}" for k in mrr_at]
            + [f"ndcg_at_{k}" for k in ndcg_at])


def _check_qrels(qrels: Qrels, ks: list[int]) -> None:
    if not qrels:
        raise MetricsInputError("the qrels are empty: there is nothing to average over")
    bad_k = [k for k in ks if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1]
    if bad_k:
        raise MetricsInputError(f"cut-offs must be positive integers, got {bad_k}")
    bad = sorted(q for q, judged in qrels.items()
                 if any(isinstance(g, bool) or not isinstance(g, int | np.integer) or g < 0 for g in judged.values()))
    if bad:
        raise MetricsInputError(f"qrels grades must be non-negative integers; queries {bad[:10]} "
                                f"({len(bad)} in all) have others")


def _bad_scores(run: Run, query_ids: Iterable[str]) -> list[tuple[str, str]]:
    """(query, doc) of the first non-finite or non-numeric score of each query (slow; only on error)."""
    bad = []
    for q in query_ids:
        for d, s in run[q].items():
            if isinstance(s, bool) or not isinstance(s, float | int | np.floating | np.integer) or not math.isfinite(s):
                bad.append((q, d))
                break
    return bad


def _flat_scores(run: Run, present: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """All scores of the present queries in one float64 array, and each query's start offset."""
    lengths = np.fromiter((len(run[q]) for q in present), dtype=np.int64, count=len(present))
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64) if len(present) else lengths
    # numpy would silently turn "0.5", True or None into numbers; check the types first (cheap)
    types = set(map(type, chain.from_iterable(run[q].values() for q in present)))
    ok = all(issubclass(t, float | int | np.floating | np.integer) and t is not bool for t in types)
    if ok:
        values = np.fromiter(chain.from_iterable(run[q].values() for q in present), dtype=np.float64,
                             count=int(lengths.sum()))
        ok = bool(np.isfinite(values).all())
    if not ok:
        bad = _bad_scores(run, present)
        if bad:
            raise MetricsInputError(f"run scores must be finite numbers; (query, doc) {bad[:10]} "
                                    f"({len(bad)} queries in all) are not")
    return values, starts


def evaluate_run(qrels: Qrels, run: Run, recall_at: Iterable[int] = RECALL_AT, mrr_at: Iterable[int] = MRR_AT,
                 ndcg_at: Iterable[int] = NDCG_AT) -> RunScores:
    """All metrics of ``run`` against ``qrels``, averaged over every qrels query (see the module doc)."""
    recall_at, mrr_at, ndcg_at = list(recall_at), list(mrr_at), list(ndcg_at)
    ks = recall_at + mrr_at + ndcg_at
    _check_qrels(qrels, ks)
    depth = max(ks) if ks else 1
    query_ids = sorted(qrels)
    n = len(query_ids)
    present = [q for q in query_ids if run.get(q)]
    values, starts = _flat_scores(run, present)
    row_of = {q: i for i, q in enumerate(query_ids)}

    ideal = np.zeros((n, depth), dtype=np.float64)  # grades of the qrels, best first
    n_relevant = np.zeros(n, dtype=np.float64)
    for i, q in enumerate(query_ids):
        grades = sorted((g for g in qrels[q].values() if g > 0), reverse=True)
        n_relevant[i] = len(grades)
        top = grades[:depth]
        ideal[i, :len(top)] = top

    # The rank of each retrieved relevant document, without sorting whole runs: the number of
    # documents of its query scored higher (vectorized), plus tied ones with a greater id (rare).
    p_row, p_grade, p_flat, p_start, p_len, p_doc = [], [], [], [], [], []
    for start, q in zip(starts.tolist(), present, strict=True):
        scores = run[q]
        positives = [(d, g) for d, g in qrels[q].items() if g > 0 and d in scores]
        if positives:
            keys = list(scores)
            for d, g in positives:
                p_row.append(row_of[q])
                p_grade.append(g)
                p_flat.append(start + keys.index(d))
                p_start.append(start)
                p_len.append(len(keys))
                p_doc.append(d)
    gains = np.zeros((n, depth), dtype=np.float64)  # grade of the document at each rank
    if p_row:
        lens = np.asarray(p_len, dtype=np.int64)
        offsets = np.concatenate(([0], np.cumsum(lens)[:-1]))
        total = int(lens.sum())
        idx = np.arange(total, dtype=np.int64) + np.repeat(np.asarray(p_start, dtype=np.int64) - offsets, lens)
        own = values[np.asarray(p_flat, dtype=np.int64)]
        expanded = np.repeat(own, lens)
        higher = np.add.reduceat(values[idx] > expanded, offsets)
        tied = np.add.reduceat(values[idx] == expanded, offsets) - 1
        rank = higher.astype(np.int64)
        for j in np.flatnonzero(tied):  # trec_eval order among equal scores: doc id descending
            q, d, s = query_ids[p_row[j]], p_doc[j], own[j]
            rank[j] += sum(1 for e, v in run[q].items() if v == s and e > d)
        keep = rank < depth
        gains[np.asarray(p_row)[keep], rank[keep]] = np.asarray(p_grade, dtype=np.float64)[keep]

    relevant = gains > 0
    hits = np.cumsum(relevant, axis=1)  # relevant documents within the top (j + 1)
    # rank of the first relevant document (depth + 1 when none within the depth)
    first = np.where(relevant.any(axis=1), relevant.argmax(axis=1) + 1, depth + 1)
    discount = 1.0 / np.log2(np.arange(2, depth + 2, dtype=np.float64))
    dcg = np.cumsum(gains * discount, axis=1)
    idcg = np.cumsum(ideal * discount, axis=1)

    columns: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in recall_at:
            columns[f"recall_at_{k}"] = np.where(n_relevant > 0, hits[:, min(k, depth) - 1] / n_relevant, 0.0)
        for k in mrr_at:
            columns[f"mrr_at_{k}"] = np.where(first <= k, 1.0 / first, 0.0)
        for k in ndcg_at:
            j = min(k, depth) - 1
            columns[f"ndcg_at_{k}"] = np.where(idcg[:, j] > 0, dcg[:, j] / idcg[:, j], 0.0)

    names = list(columns)
    matrix = np.stack([columns[m] for m in names], axis=1) if names else np.zeros((n, 0))
    aggregate = {m: float(v) for m, v in zip(names, matrix.mean(axis=0), strict=True)}
    per_query = {q: dict(zip(names, row, strict=True)) for q, row in zip(query_ids, matrix.tolist(), strict=True)}
    return RunScores(aggregate=aggregate, per_query=per_query, query_ids=query_ids,
                     n_missing_from_run=n - len(present))


def compute_metrics(qrels: Qrels, run: Run, recall_at: Iterable[int] = RECALL_AT, mrr_at: Iterable[int] = MRR_AT,
                    ndcg_at: Iterable[int] = NDCG_AT) -> dict[str, float]:
    """Mean metrics over every qrels query: ``{"recall_at_5": ..., "mrr_at_10": ..., "ndcg_at_10": ...}``."""
    return evaluate_run(qrels, run, recall_at, mrr_at, ndcg_at).aggregate
