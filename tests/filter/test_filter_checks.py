"""filter_queries end to end on small hand-written corpora: every reason, scores, report, bad input."""

from __future__ import annotations

import random

import numpy as np
import pytest
from filter_helpers import (
    QUERY_TEXTS,
    SHARED_CACHE,
    make_corpus,
    make_doc,
    make_queries,
    make_query,
    phash_of,
)

from wikihow_tiir.config import FilterConfig
from wikihow_tiir.filter import FLAGS, REASONS, apply_split_rules
from wikihow_tiir.filter import filter_queries as _filter_queries
from wikihow_tiir.model import Document, ImageMeta, Query


def filter_queries(queries, corpus, cfg, cache_dir=SHARED_CACHE):
    return _filter_queries(queries, corpus, cfg, cache_dir=cache_dir)


SCORE_KEYS = {"images", "query_image_min_distance", "image_leak_min_distance", "text_tokens", "language",
              "goal_leak", "title_leak", "step_copy_tokens", "lexical_overlap", "relevance", "full_rank",
              "text_only_rank", "text_only_margin", "false_negative_gap", "near_duplicate"}


NO_LEAK_CHECKS = {"leak_min_phrase_words": 1000, "leak_min_phrase_cjk_chars": 1000, "step_copy_max_words": 1000,
                  "step_copy_max_cjk_chars": 1000}


def reasons_of(result) -> dict[str, str]:
    return {r.item_id: r.reason for r in result.rejects}


def test_good_queries_are_kept_with_every_score(corpus, queries):
    result = filter_queries(queries, corpus, FilterConfig())
    assert [q.id for q in result.kept] == [q.id for q in queries]
    assert result.rejects == []
    assert set(result.flagged) == set(FLAGS) and result.flagged["likely-false-negative"] == []
    for q in result.kept:
        assert SCORE_KEYS <= set(q.scores), q.id
        assert q.scores["relevance"] > FilterConfig().relevance_min
        assert q.scores["full_rank"] <= 2
        assert q.scores["goal_leak"] < 1 and q.scores["step_copy_tokens"] < FilterConfig().step_copy_max_words
        assert q.scores["language"] > 0.9  # the Japanese query too: script-based language id
    rep = result.report
    assert rep["queries_in"] == rep["kept"] == len(queries)
    assert rep["rejected"] == 0
    assert list(rep["reasons"]) == list(REASONS)  # every reason is listed, with zero counts here
    assert all(v["count"] == 0 and v["examples"] == [] for v in rep["reasons"].values())
    assert rep["checks"]["relevance"]["scores"]["relevance"]["n"] == len(queries)
    assert rep["checks"]["relevance"]["thresholds"] == {"relevance_min": FilterConfig().relevance_min}


def _bad_queries(corpus: list[Document]) -> dict[str, Query]:
    rims_doc = next(d for d in corpus if d.id == "wh-rims-s1")
    doc_hash = rims_doc.content.image_meta[rims_doc.content.image_positions()[0]].phash
    near = f"{int(doc_hash, 16) ^ 0b101:016x}"  # 2 bits away
    copied = rims_doc.content.text.split("\n")
    bad = {
        "too-few-images": make_query("zucchini", "q-zero-images", n_images=0, prompts=[]),
        "too-many-images": make_query("toilet", "q-five-images", n_images=5),
        "query-image-near-copy": make_query("tomatoes", "q-same-images",
                                            image_hashes=[phash_of(77), phash_of(77)]),
        "image-leak": make_query("rims", "q-leak", image_hashes=[near, phash_of(78)]),
        "text-too-short": make_query("letter", "q-short", texts=["Cover letter help?"]),
        "placeholder": make_query("zucchini", "q-placeholder",
                                  texts=[QUERY_TEXTS["zucchini"][0] + " [img]", *QUERY_TEXTS["zucchini"][1:]]),
        "language-mismatch": make_query("foundation", "q-ja-in-english",
                                        texts=["My skin gets dry and flaky whenever I put on makeup in the morning.",
                                               "The foundation never sits smoothly on my face.",
                                               "How should I prepare my skin before applying it?"]),
        "low-relevance": make_query("letter", "q-off-topic", texts=QUERY_TEXTS["toilet"],
                                    prompts=["a toilet", "a plunger"]),
        "goal-leak": make_query("rims", "q-copy", texts=copied, prompts=copied[:2]),
        "title-leak": make_query("rims", "q-title", texts=["I have been washing the rims of my car every weekend "
                                                           "but the brown dust comes back.", *QUERY_TEXTS["rims"][1:]]),
        "step-copy": make_query("toilet", "q-step-copy", texts=[QUERY_TEXTS["toilet"][0],
                                                                "Should I push and pull the plunger firmly ten times?",
                                                                QUERY_TEXTS["toilet"][2]]),
        "text-encoding": make_query("tomatoes", "q-surrogate",
                                    texts=["I want to plant tomatoes \udcff in my garden this spring.",
                                           *QUERY_TEXTS["tomatoes"][1:]]),
        "positive-missing": make_query("zucchini", "q-no-positive"),
    }
    bad["positive-missing"].positive_id = "wh-nowhere-s1"
    return bad


def test_every_reason_is_recorded_with_scores_and_examples(corpus, queries):
    bad = _bad_queries(corpus)
    result = filter_queries(queries + list(bad.values()), corpus, FilterConfig())
    got = reasons_of(result)
    for reason, q in bad.items():
        assert reason in REASONS
        assert got.get(q.id) == reason, (q.id, got.get(q.id), [r.extra["failed"] for r in result.rejects
                                                                 if r.item_id == q.id])
    assert {q.id for q in result.kept} == {q.id for q in queries}
    for r in result.rejects:
        assert r.stage == "filter"
        assert r.detail and r.reason in r.extra["failed"]
        assert r.extra["scores"]["images"] >= 0  # every reject carries the scores measured on it
        assert r.extra["failed"][0] == r.reason
    rep = result.report
    for reason, q in bad.items():
        assert rep["reasons"][reason]["count"] == 1
        assert rep["reasons"][reason]["examples"] == [q.id]
        assert rep["checks"][REASONS[reason]]["failing"][reason] >= 1
    assert rep["rejected"] == len(bad) and rep["kept"] == len(queries)
    copy = next(r for r in result.rejects if r.item_id == "q-copy")
    assert copy.extra["scores"]["lexical_overlap"] == 1.0
    # the pasted document also gives its title away and is caught by the cosine and n-gram ceilings
    assert {"title-leak", "too-easy", "lexical-copy"} <= set(copy.extra["failed"])
    assert copy.extra["scores"]["goal_leak"] == 1.0 and copy.extra["scores"]["title_leak"] == 1.0
    step = next(r for r in result.rejects if r.item_id == "q-step-copy")
    assert step.extra["scores"]["step_copy_tokens"] == 8 and "8 consecutive tokens" in step.detail
    placeholder = next(r for r in result.rejects if r.item_id == "q-placeholder")
    assert "'[img]'" in placeholder.detail


def test_lexical_copy_alone(corpus, queries):
    doc = next(d for d in corpus if d.id == "wh-letter-s1").content.text.split("\n")
    pasted = make_query("letter", "q-pasted", texts=doc[1:], prompts=["a desk", "a pen"])
    cfg = FilterConfig(easiness_max_similarity=1.0, **NO_LEAK_CHECKS)
    result = filter_queries(queries + [pasted], corpus, cfg)
    assert reasons_of(result) == {"q-pasted": "lexical-copy"}
    assert pasted.scores["lexical_overlap"] > cfg.lexical_overlap_max


def test_replacement_character_and_malformed_and_duplicate_ids(corpus, queries):
    fffd = make_query("letter", "q-fffd", texts=["I need a cover letter \ufffd for a marketing job application.",
                                                 *QUERY_TEXTS["letter"][1:]])
    broken = make_query("rims", "q-broken")
    broken.content.texts.append("dangling")  # lists of unequal length
    dup = make_query("zucchini")  # same id as the good zucchini query
    result = filter_queries(queries + [fffd, broken, dup], corpus, FilterConfig())
    got = [(r.item_id, r.reason) for r in result.rejects]
    assert ("q-fffd", "text-encoding") in got
    assert ("q-broken", "malformed-sequence") in got
    assert ("q-zucchini", "duplicate-id") in got
    assert sum(q.id == "q-zucchini" for q in result.kept) == 1


def test_near_duplicates_keep_the_first_by_id(corpus, queries):
    twin_a = make_query("rims", "q-rims-b")
    twin_b = make_query("rims", "q-rims-a")  # same text as q-rims and q-rims-b
    result = filter_queries([twin_a, *queries, twin_b], corpus, FilterConfig())
    assert "q-rims" in {q.id for q in result.kept}  # "q-rims" < "q-rims-a" < "q-rims-b"
    dups = {r.item_id: r for r in result.rejects}
    assert set(dups) == {"q-rims-a", "q-rims-b"}
    assert all(r.reason == "near-duplicate" for r in dups.values())
    assert "q-rims" in dups["q-rims-a"].detail
    assert dups["q-rims-a"].extra["scores"]["near_duplicate"] >= 0.999


def test_near_duplicate_of_a_rejected_query_is_kept(corpus):
    # the lower id fails the image check; its twin must not be dropped in its favour
    first = make_query("rims", "q-a", n_images=0, prompts=[])
    second = make_query("rims", "q-b")
    result = filter_queries([first, second], corpus, FilterConfig())
    assert [q.id for q in result.kept] == ["q-b"]
    assert reasons_of(result) == {"q-a": "too-few-images"}


def test_positive_outside_top_k_is_a_flag_never_a_test_split_rule(corpus, queries):
    cfg = FilterConfig(answerability_top_k=1, text_sufficient_action="flag")
    result = filter_queries(queries, corpus, cfg)
    ranks = {q.id: q.scores["full_rank"] for q in queries}
    expected = {qid for qid, rank in ranks.items() if rank > 1}
    assert expected  # the toilet query's positive is beaten by the article's other method
    assert result.rejects == []  # a text embedder's failure never removes a query by default
    assert set(result.flagged["positive-not-in-top-k"]) == expected
    assert result.report["flagged"]["positive-not-in-top-k"]["count"] == len(expected)
    splits = {"train": [q for q in result.kept if q.id in expected], "test": [q for q in result.kept
                                                                              if q.id not in expected]}
    same, none = apply_split_rules(splits, result, cfg)
    assert none == [] and same == splits
    # "reject-train": the rule applies to the train split only
    strict = cfg.model_copy(update={"answerability_action": "reject-train"})
    result = filter_queries(queries, corpus, strict)
    both = {"train": list(result.kept), "test": list(result.kept)}
    out, rejects = apply_split_rules(both, result, strict)
    assert {q.id for q in out["test"]} == {q.id for q in result.kept}
    assert {q.id for q in out["train"]} == {q.id for q in result.kept} - expected
    assert {(r.item_id, r.reason, r.extra["split"]) for r in rejects} == {(q, "positive-not-in-top-k", "train")
                                                                          for q in expected}


def test_other_article_above_the_positive_is_flagged_not_rejected(corpus, queries):
    mislabelled = make_query("tomatoes", "q-mislabelled")
    mislabelled.positive_id = "wh-zucchini-s1"  # a tomato question whose "positive" is about zucchini
    mislabelled.article_id = "zucchini"
    cfg = FilterConfig(relevance_min=-1.0, answerability_top_k=50)
    result = filter_queries(queries + [mislabelled], corpus, cfg)
    assert "q-mislabelled" in {q.id for q in result.kept}
    assert result.flagged["likely-false-negative"] == ["q-mislabelled"]
    ex = result.report["flagged"]["likely-false-negative"]["examples"][0]
    assert ex["competitor"] == "wh-tomatoes-s1" and ex["gap"] > cfg.false_negative_margin
    assert mislabelled.scores["false_negative_gap"] > cfg.false_negative_margin


def test_easiness_percentile_is_over_the_whole_set_not_per_block(corpus):
    queries = make_queries()
    rng = random.Random(3)
    extra = []
    for k in range(12):  # more queries: some copy parts of the document, most paraphrase
        art = rng.choice(list(QUERY_TEXTS))
        texts = list(QUERY_TEXTS[art])
        rng.shuffle(texts)
        extra.append(make_query(art, f"q-extra-{k:02d}", texts=texts[: rng.randint(2, 3)] + [f"Thanks {k}!"],
                                image_hashes=[phash_of(3000 + 2 * k), phash_of(3001 + 2 * k)]))
    allq = queries + extra
    base = FilterConfig(easiness_percentile=50, near_duplicate_cosine=1.0, min_text_tokens=1)
    whole = filter_queries(allq, corpus, base)
    rel = np.array([q.scores["relevance"] for q in allq])
    cutoff = np.percentile(rel, 50)
    assert whole.report["checks"]["easiness"]["thresholds"]["easiness_percentile_cutoff"] == pytest.approx(cutoff,
                                                                                                       abs=1e-6)
    easy = {r.item_id for r in whole.rejects if r.reason == "too-easy-percentile"}
    assert easy == {q.id for q in allq if q.scores["relevance"] > cutoff + 1e-9}
    # tiny blocks and shards must not change anything (a per-batch percentile would)
    small = filter_queries(make_queries() + extra, corpus,
                           base.model_copy(update={"query_block_size": 2, "embed_shard_size": 3}))
    assert {r.item_id for r in small.rejects if r.reason == "too-easy-percentile"} == easy


def test_deterministic_and_independent_of_input_order(corpus):
    a = filter_queries(make_queries() + [make_query("rims", "q-rims-twin")], corpus, FilterConfig())
    shuffled = make_queries() + [make_query("rims", "q-rims-twin")]
    random.Random(7).shuffle(shuffled)
    b = filter_queries(shuffled, list(reversed(make_corpus())), FilterConfig())
    assert a.report == b.report
    assert sorted((q.id, sorted(q.scores.items())) for q in a.kept) == \
        sorted((q.id, sorted(q.scores.items())) for q in b.kept)


def test_embedding_cache_makes_a_rerun_encode_nothing(tmp_path, corpus):
    first = filter_queries(make_queries(), corpus, FilterConfig(), cache_dir=tmp_path)
    assert first.runtime["embedding_cache"]["documents"]["encoded_texts"] == len(corpus)
    again = filter_queries(make_queries(), make_corpus(), FilterConfig(), cache_dir=tmp_path)
    cache = again.runtime["embedding_cache"]
    assert cache["documents"]["encoded_texts"] == 0 and cache["queries"]["encoded_texts"] == 0
    assert [q.scores for q in first.kept] == [q.scores for q in again.kept]
    assert list((tmp_path / "embeddings").glob("*.npy"))


def test_empty_corpus_rejects_everything_with_a_message(queries):
    result = filter_queries(queries, [], FilterConfig())
    assert result.kept == []
    assert {r.reason for r in result.rejects} == {"positive-missing"}
    msgs = " ".join(result.report["messages"])
    assert "corpus is empty" in msgs and "every one of the 6 queries was rejected" in msgs


def test_no_queries_and_single_document(corpus):
    empty = filter_queries([], corpus, FilterConfig())
    assert empty.kept == [] and empty.rejects == []
    assert "no queries to filter" in empty.report["messages"]
    one_doc = [make_doc("zucchini", 1)]  # an article with one method, alone in the corpus
    result = filter_queries([make_query("zucchini")], one_doc, FilterConfig())
    assert [q.id for q in result.kept] == ["q-zucchini"]
    q = result.kept[0]
    assert q.scores["full_rank"] == 1.0 and q.scores["text_only_rank"] == 1.0
    assert "false_negative_gap" not in q.scores  # no other article to compare with
    assert "text_only_margin" not in q.scores and result.flagged["text-sufficient"] == []  # no competitor
    assert "near_duplicate" not in q.scores  # no other query


def test_images_without_hashes_are_counted_not_compared(corpus):
    q = make_query("rims", "q-unhashed", image_hashes=["", "not-a-hash"])
    result = filter_queries([q], corpus, FilterConfig())
    assert [k.id for k in result.kept] == ["q-unhashed"]
    assert "query_image_min_distance" not in q.scores


def test_disabled_filter_keeps_everything(corpus, queries):
    result = filter_queries(queries, corpus, FilterConfig(enabled=False))
    assert len(result.kept) == len(queries) and result.rejects == []
    assert result.report["enabled"] is False


def test_invalid_thresholds_are_refused_with_clear_messages(corpus, queries):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="easiness_percentile"):
        FilterConfig(easiness_percentile=0)  # NeMo's 0.7-vs-70 scale pitfall: we take 0-100, > 0
    with pytest.raises(ValueError, match="min_query_images"):
        filter_queries(queries, corpus, FilterConfig(min_query_images=5, max_query_images=4))


def test_query_image_hashes_from_metadata_objects_are_used():
    # a query's images are compared with the positive's images: same hash = leak
    doc = make_doc("zucchini", 1)
    img = doc.content.image_meta[doc.content.image_positions()[1]]
    q = make_query("zucchini", image_hashes=[img.phash, phash_of(9)])
    assert isinstance(q.content.image_meta[1], ImageMeta)
    result = filter_queries([q], [doc], FilterConfig())
    assert reasons_of(result) == {"q-zucchini": "image-leak"}
    assert result.rejects[0].extra["scores"]["image_leak_min_distance"] == 0.0



def test_too_easy_alone(corpus, queries):
    rims = next(d for d in corpus if d.id == "wh-rims-s1").content.text.split("\n")
    pasted = make_query("rims", "q-copy", texts=rims, prompts=rims[2:4])
    result = filter_queries(queries + [pasted], corpus, FilterConfig(**NO_LEAK_CHECKS))
    assert reasons_of(result) == {"q-copy": "too-easy"}
    assert pasted.scores["relevance"] > FilterConfig().easiness_max_similarity


def test_leaks_are_normalized_case_punctuation_how_to_and_qualifiers(corpus):
    doc = next(d for d in corpus if d.id == "wh-zucchini-s1")
    doc.goal = "How to Grill Zucchini (Easy Summer Recipe)"
    texts = ["Honestly, I want to GRILL — zucchini! — tonight for my family.", *QUERY_TEXTS["zucchini"][1:]]
    q = make_query("zucchini", "q-goal", texts=texts)
    result = filter_queries([q], corpus, FilterConfig())
    assert reasons_of(result) == {"q-goal": "goal-leak"}
    assert q.scores["goal_leak"] == 1.0
    assert "Grill Zucchini" in result.rejects[0].detail
    # half the goal is a figure, not a leak
    half = make_query("zucchini", "q-half", texts=["I want to grill something green tonight.", *QUERY_TEXTS["zucchini"][1:]])
    result = filter_queries([half], corpus, FilterConfig(text_sufficient_action="flag"))
    assert reasons_of(result) == {} and half.scores["goal_leak"] == 0.5


def test_cjk_leaks_are_measured_by_characters(corpus):
    # goal "ファンデーションを塗る方法": the goal core is "ファンデーションを塗る" (without "方法")
    texts = ["毎朝ファンデーションを塗るのですが、肌がかさかさしてうまくいきません。", *QUERY_TEXTS["foundation"][1:]]
    q = make_query("foundation", "q-ja-goal", texts=texts)
    result = filter_queries([q], corpus, FilterConfig())
    assert reasons_of(result) == {"q-ja-goal": "goal-leak"}
    copy = make_query("foundation", "q-ja-copy", texts=["化粧下地を顔全体に薄く伸ばすのですが、うまくいきません。",
                                                       *QUERY_TEXTS["foundation"][1:]])
    result = filter_queries([copy], corpus, FilterConfig())
    assert reasons_of(result) == {"q-ja-copy": "step-copy"}
    assert copy.scores["step_copy_tokens"] >= FilterConfig().step_copy_max_cjk_chars


def test_a_one_word_title_leaks_unless_the_minimum_phrase_is_raised(corpus):
    doc = next(d for d in corpus if d.id == "wh-letter-s1")
    doc.section_title = "Drafting"
    doc.content.texts[1] = "Drafting"
    q = make_query("letter", "q-drafting", texts=["I am drafting an introduction for a marketing job posting.",
                                                  *QUERY_TEXTS["letter"][1:]])
    result = filter_queries([q], corpus, FilterConfig(text_sufficient_action="flag"))
    assert reasons_of(result) == {"q-drafting": "title-leak"}
    result = filter_queries([q], corpus, FilterConfig(text_sufficient_action="flag", leak_min_phrase_words=2))
    assert q.scores["title_leak"] == 1.0  # measured ...
    assert reasons_of(result) == {}  # ... but a one-word title is not a leak for this corpus


def test_pictures_rank_the_positive_better_than_the_text_alone(corpus):
    # wheels in general (text) + what polishing looks like (pictures): only the pictures say which method
    texts = ["I spent Saturday cleaning my car wheels with a hose and a brush.",
             "They are clean now but they still look a bit flat.", "What should I do next?"]
    q = make_query("rims", "q-polish", texts=texts, prompts=["metal polish rubbed over a rim in circles",
                                                             "a buffed rim that shines"])
    q.positive_id = "wh-rims-s2"
    result = filter_queries([q], corpus, FilterConfig())
    assert [k.id for k in result.kept] == ["q-polish"]
    assert q.scores["full_rank"] == 1.0
    assert q.scores["text_only_rank"] > q.scores["full_rank"]
    assert result.flagged["text-sufficient"] == []
    pn = result.report["picture_necessity"]
    assert pn["n"] == 1 and pn["pictures_help"] == 1
    assert pn["mean_reciprocal_rank_full"] > pn["mean_reciprocal_rank_text_only"]


def test_text_sufficient_queries_leave_the_test_split_and_stay_flagged_in_train(corpus, queries):
    result = filter_queries(queries, corpus, FilterConfig())
    sufficient = set(result.flagged["text-sufficient"])
    assert sufficient and sufficient < {q.id for q in result.kept}
    for q in result.kept:
        is_flagged = (q.scores["text_only_rank"] == 1
                      and q.scores["text_only_margin"] >= FilterConfig().text_sufficient_margin)
        assert (q.id in sufficient) == is_flagged
    splits = {"train": [q for q in result.kept if q.article_id in ("zucchini", "rims")],
              "test": [q for q in result.kept if q.article_id not in ("zucchini", "rims")]}
    out, rejects = apply_split_rules(splits, result, FilterConfig())
    assert out["train"] == splits["train"]  # flagged in train, never removed there
    assert {q.id for q in out["test"]} == {q.id for q in splits["test"]} - sufficient
    removed = {q.id for q in splits["test"]} & sufficient
    assert removed and {r.item_id for r in rejects} == removed
    assert all(r.reason == "text-sufficient" and r.stage == "filter" and r.extra["split"] == "test" for r in rejects)
    assert result.report["reasons"]["text-sufficient"]["count"] == len(removed)
    # "reject": rejected by the filter itself; "flag": only reported
    strict = filter_queries(make_queries(), corpus, FilterConfig(text_sufficient_action="reject"))
    assert {r.item_id for r in strict.rejects if r.reason == "text-sufficient"} == sufficient
    lax = FilterConfig(text_sufficient_action="flag")
    result = filter_queries(make_queries(), corpus, lax)
    assert apply_split_rules(splits, result, lax)[1] == []


def test_the_registry_documents_every_reason_score_and_setting():
    from wikihow_tiir.filter import CHECKS, SCORE_SETTINGS

    fields = set(FilterConfig.model_fields)
    names = [c.name for c in CHECKS]
    assert len(names) == len(set(names))
    for c in CHECKS:
        assert c.doc and set(c.settings) <= fields | {"easiness_percentile_cutoff"}, c.name
        for score, settings in c.scores.items():  # settings, or a cut-off the check computes from one
            assert set(settings) <= fields | {"easiness_percentile_cutoff"}, (c.name, score)
    assert set(REASONS.values()) <= set(names) and set(FLAGS.values()) <= set(names)
    assert SCORE_SETTINGS["query_image_min_distance"] == ("phash_max_distance",)
    assert SCORE_SETTINGS["full_rank"] == ("answerability_top_k",)
    # the report lists every check with its thresholds
    assert list(REASONS)[:4] == ["duplicate-id", "malformed-sequence", "text-encoding", "positive-missing"]
