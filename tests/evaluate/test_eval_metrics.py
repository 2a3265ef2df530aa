"""Our metrics agree with pytrec_eval, ir_measures and ranx on randomized runs, and handle the pitfalls."""

from __future__ import annotations

import random

import ir_measures
import numpy as np
import pytest
import pytrec_eval
from ir_measures import RR, R, nDCG

from wikihow_tiir.retrieval.metrics import (
    MetricsInputError,
    compute_metrics,
    evaluate_run,
    metric_names,
    ranked,
)

TOL = 1e-9


def random_case(seed: int, n_queries: int = 60, n_docs: int = 300, graded: bool = True, ties: bool = True):
    """Qrels and a run with the usual troubles: missing queries, ties, unjudged and zero-grade docs."""
    rng = random.Random(seed)
    docs = [f"d{i:04d}" for i in range(n_docs)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for i in range(n_queries):
        q = f"q{i:03d}"
        judged = rng.sample(docs, rng.randint(1, 6))
        qrels[q] = {d: (rng.randint(0, 3) if graded else rng.randint(0, 1)) for d in judged}
        if not any(qrels[q].values()):
            qrels[q][judged[0]] = 1
        if rng.random() < 0.15:  # missing from the run
            continue
        retrieved = rng.sample(docs, rng.randint(1, 120))
        retrieved += [d for d in judged if rng.random() < 0.6]
        if ties:
            run[q] = {d: float(rng.randint(0, 25)) / 5 for d in retrieved}
        else:
            run[q] = {d: rng.random() for d in retrieved}
    run["not-in-qrels"] = {"d0001": 1.0}
    return qrels, run


def trec_order(scores: dict[str, float]) -> list[str]:
    # trec_eval: score descending, then docno descending (written independently of `ranked`)
    return sorted(scores, key=lambda d: (-scores[d], tuple(-ord(c) for c in d)))


def pytrec_reference(qrels, run) -> dict[str, float]:
    """pytrec_eval per query, with queries missing from the run counted as 0 (it skips them)."""
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"recall.1,5,20,100", "ndcg_cut.5,10,20"})
    per = ev.evaluate(run)
    out = {}
    for k in (1, 5, 20, 100):
        out[f"recall_at_{k}"] = sum(per.get(q, {}).get(f"recall_{k}", 0.0) for q in qrels) / len(qrels)
    for k in (5, 10, 20):
        out[f"ndcg_at_{k}"] = sum(per.get(q, {}).get(f"ndcg_cut_{k}", 0.0) for q in qrels) / len(qrels)
    for k in (5, 10, 20):  # recip_rank has no cut-off: truncate the run (a fresh evaluator each time: pytrec_eval #22)
        cut = {q: {d: s[d] for d in trec_order(s)[:k]} for q, s in run.items()}
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
        out[f"mrr_at_{k}"] = sum(rr.get(q, {}).get("recip_rank", 0.0) for q in qrels) / len(qrels)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_pytrec_eval(seed):
    qrels, run = random_case(seed, graded=seed % 2 == 0, ties=seed < 4)
    ours = compute_metrics(qrels, run)
    ref = pytrec_reference(qrels, run)
    assert set(ours) == set(ref) == set(metric_names())
    for m in ref:
        assert ours[m] == pytest.approx(ref[m], abs=TOL), m


@pytest.mark.parametrize(("seed", "provider", "ties"), [(100, "pytrec_eval", True), (101, "pytrec_eval", True),
                                                     (102, None, False), (103, None, False)])
def test_agrees_with_ir_measures(seed, provider, ties):
    # ir_measures' default provider for RR@k is the MS MARCO script, whose order among tied scores
    # differs from trec_eval's; with ties we ask for its pytrec_eval provider by name, which ignores
    # RR's cut-off (and drops one of two RR@k), so there RR is checked against pytrec_eval above.
    qrels, run = random_case(seed, ties=ties)
    measures = [R @ 1, R @ 5, R @ 20, R @ 100, RR @ 5, RR @ 10, RR @ 20, nDCG @ 5, nDCG @ 10, nDCG @ 20]
    if provider == "pytrec_eval":
        measures = [m for m in measures if not str(m).startswith("RR")]
    calc = ir_measures.providers.registry[provider] if provider else ir_measures
    per_query: dict[str, dict[str, float]] = {}
    for m in calc.iter_calc(measures, qrels, run):
        per_query.setdefault(m.query_id, {})[str(m.measure)] = m.value
    ours = evaluate_run(qrels, run)
    names = {str(m): f"{ {'R': 'recall', 'RR': 'mrr', 'nDCG': 'ndcg'}[str(m).split('@')[0]]}_at_{str(m).split('@')[1]}"
             for m in measures}
    for name, ours_name in names.items():
        ref = sum(per_query.get(q, {}).get(name, 0.0) for q in qrels) / len(qrels)
        assert ours.aggregate[ours_name] == pytest.approx(ref, abs=TOL), name
    # and query by query, where ir_measures reports the query
    for q, values in per_query.items():
        for name, v in values.items():
            assert ours.per_query[q][names[name]] == pytest.approx(v, abs=TOL), (q, name)


def test_agrees_with_ranx_without_ties():
    from ranx import Qrels, Run, evaluate

    qrels, run = random_case(7, ties=False)
    run.pop("not-in-qrels")
    # ranx needs every qrels query in the run: give the missing ones an irrelevant document
    full_run = {q: run.get(q) or {"nothing-relevant": 0.0} for q in qrels}
    ref = evaluate(Qrels(qrels), Run(full_run),
                   ["recall@1", "recall@5", "recall@20", "recall@100", "mrr@5", "mrr@10", "mrr@20",
                    "ndcg@5", "ndcg@10", "ndcg@20"])
    ours = compute_metrics(qrels, run)
    for name, v in ref.items():
        metric, k = name.split("@")
        assert ours[f"{metric}_at_{k}"] == pytest.approx(v, abs=TOL), name


def test_missing_queries_score_zero_and_count():
    qrels = {"a": {"d1": 1}, "b": {"d2": 1}}
    run = {"a": {"d1": 2.0, "d9": 1.0}}
    res = evaluate_run(qrels, run)
    assert res.n_missing_from_run == 1
    assert res.per_query["b"]["ndcg_at_10"] == 0.0
    assert res.aggregate["recall_at_1"] == 0.5  # pytrec_eval alone would say 1.0


def test_identical_query_and_doc_ids_are_kept():
    # the paper's layout gives a positive document its query's id; BEIR would drop it silently
    qrels = {"x": {"x": 1}}
    run = {"x": {"x": 0.9, "y": 0.1}}
    assert compute_metrics(qrels, run)["mrr_at_5"] == 1.0


def test_ties_broken_by_doc_id_descending():
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 1.0, "b": 1.0, "c": 1.0}}
    assert ranked(run["q"]) == ["c", "b", "a"]
    assert compute_metrics(qrels, run)["mrr_at_5"] == pytest.approx(1 / 3)


def test_graded_ndcg_by_hand():
    qrels = {"q": {"c": 2, "d": 1}}
    run = {"q": {"e": 0.9, "d": 0.5, "c": 0.5}}
    dcg = 1 / np.log2(3) + 2 / np.log2(4)
    idcg = 2 + 1 / np.log2(3)
    assert compute_metrics(qrels, run)["ndcg_at_5"] == pytest.approx(dcg / idcg, abs=TOL)


def test_query_without_relevant_documents_scores_zero():
    qrels = {"q": {"d": 0}, "r": {}, "s": {"x": 1}}
    run = {"q": {"d": 1.0}, "r": {"d": 1.0}, "s": {"x": 1.0}}
    m = compute_metrics(qrels, run)
    assert m["recall_at_1"] == pytest.approx(1 / 3)
    assert m["ndcg_at_10"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("qrels", "run", "needle"),
    [
        ({}, {"q": {"d": 1.0}}, "qrels are empty"),
        ({"q1": {"d": -1}}, {}, "q1"),
        ({"q1": {"d": 1.5}}, {}, "q1"),
        ({"q1": {"d": 1}}, {"q1": {"d": float("nan")}}, "('q1', 'd')"),
        ({"q1": {"d": 1}}, {"q1": {"d": "0.5"}}, "('q1', 'd')"),
        ({"q1": {"d": 1}}, {"q1": {"d": 0.3, "e": float("inf")}}, "('q1', 'e')"),
    ],
)
def test_bad_input_names_the_ids(qrels, run, needle):
    with pytest.raises(MetricsInputError) as err:
        compute_metrics(qrels, run)
    assert needle in str(err.value)


def test_bad_cutoff_rejected():
    with pytest.raises(MetricsInputError, match="positive integers"):
        compute_metrics({"q": {"d": 1}}, {}, recall_at=(0,))


def test_empty_judgment_set_does_not_disturb_other_queries():
    # pytrec_eval #49: an empty qrels entry can corrupt later queries' scores. Ours: it scores 0
    # and every other query keeps the score pytrec_eval gives it without the empty entry.
    qrels, run = random_case(42, graded=True, ties=True)
    clean = pytrec_reference(qrels, run)
    with_empty = dict(qrels)
    with_empty["q-empty"] = {}
    run = dict(run)
    run["q-empty"] = {"d0001": 3.0}
    ours = evaluate_run(with_empty, run)
    assert all(v == 0.0 for v in ours.per_query["q-empty"].values())
    n = len(qrels)
    for metric, value in clean.items():
        assert ours.aggregate[metric] * (n + 1) / n == pytest.approx(value, abs=TOL), metric
