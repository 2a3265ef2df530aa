"""The bundled build is a benchmark, not a keyword lookup (the benchmark-validity targets).

On `make build-dataset`'s dataset: no query states its positive's goal or section title; BM25 finds
the positive first for fewer than 80 % of the kept queries; the pictures carry information the text
lacks (MiniLM ranks the positive better from text + image prompts than from the text alone); and the
manifest and card hold the difficulty table and name who wrote the queries and where the pictures
came from.
"""

from __future__ import annotations

import json

import numpy as np

from wikihow_tiir.evaluate.baselines import build_model
from wikihow_tiir.evaluate.runner import score_model
from wikihow_tiir.layout import split_files
from wikihow_tiir.model import document_from_row, query_from_row
from wikihow_tiir.retrieval.dataset import load_split
from wikihow_tiir.retrieval.metrics import evaluate_run
from wikihow_tiir.storage import read_rows
from wikihow_tiir.tokens import contains_run, goal_core, phrase_tokens, tokens


def _queries(build):
    out = []
    for split in ("train", "test"):
        out += [query_from_row(r, split) for r in read_rows(split_files(build, "queries", split))]
    return out


def test_no_query_names_its_positives_goal_or_section_title(bundled_build):
    docs = {d.id: d for d in (document_from_row(r) for r in read_rows(split_files(bundled_build, "corpus", "corpus")))}
    queries = _queries(bundled_build)
    assert len(queries) >= 30
    for q in queries:
        d = docs[q.positive_id]
        text = tokens(q.content.text)
        assert not contains_run(text, tokens(goal_core(d.goal))), (q.id, d.goal)
        if d.section_title:
            assert not contains_run(text, phrase_tokens(d.section_title)), (q.id, d.section_title)
        assert q.provenance["generator"] == "offline-extractive-v2"


def test_bm25_does_not_solve_it_and_the_pictures_carry_information(bundled_build):
    r1 = []
    for split in ("train", "test"):
        ev = load_split(bundled_build, split)
        run = score_model(build_model("bm25"), ev)
        scores = evaluate_run(ev.qrels, run, recall_at=(1,), mrr_at=(), ndcg_at=())
        r1 += [m["recall_at_1"] for m in scores.per_query.values()]
    assert np.mean(r1) < 0.8, np.mean(r1)
    s = [q.scores for q in _queries(bundled_build)]
    text_rr = np.mean([1 / x["text_only_rank"] for x in s])
    full_rr = np.mean([1 / x["full_rank"] for x in s])
    assert full_rr > text_rr, (full_rr, text_rr)


def test_manifest_and_card_state_the_difficulty_and_who_made_the_queries(bundled_build):
    manifest = json.loads((bundled_build / "manifest.json").read_text(encoding="utf-8"))
    diff = manifest["difficulty"]
    assert diff["corpus_documents"] == 44
    test = diff["splits"]["test"]
    assert set(test["models"]) == {"bm25", "minilm", "minilm-prompts"}
    assert test["models"]["minilm-prompts"]["recall_at_1"] >= test["models"]["minilm"]["recall_at_1"]
    all_ = diff["splits"]["all"]
    assert all_["queries"] == sum(manifest["filter"]["splits"][s]["queries"] for s in ("train", "test"))
    # the difficulty figures are the evaluation code's own numbers
    ev = load_split(bundled_build, "test")
    run = score_model(build_model("bm25"), ev)
    agg = evaluate_run(ev.qrels, run).aggregate
    assert round(agg["ndcg_at_10"], 6) == test["models"]["bm25"]["ndcg_at_10"]
    card = (bundled_build / "README.md").read_text(encoding="utf-8")
    assert "## How hard is it" in card and "44 documents" in card and "155,262 documents" in card
    assert "offline-extractive-v2" in card and "borrowed from OTHER articles" in card
    assert "query images are generated" not in card
    assert "## What shaped the splits" in card and "text-sufficient" in card
    report = manifest["filter"]["report"]
    assert report["split_rules"] == {"text-sufficient": "reject-test", "positive-not-in-top-k": "flag",
                                     "likely-false-negative": "flag"}
    assert report["picture_necessity"]["mean_reciprocal_rank_full"] > \
        report["picture_necessity"]["mean_reciprocal_rank_text_only"]
    html = (bundled_build / "report" / "index.html").read_text(encoding="utf-8")
    assert "How hard is it" in html
