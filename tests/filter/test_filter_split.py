"""Train/test split by article, qrels and the statistics table."""

from __future__ import annotations

from filter_helpers import make_queries, make_query

from wikihow_tiir.config import SplitConfig
from wikihow_tiir.model import Document, Interleaved, Query
from wikihow_tiir.split import (
    article_draw,
    articles_in_several_splits,
    describe_splits,
    query_split_stats,
    split_qrels,
    split_queries,
)


def many_queries(n_articles: int, per_article: int = 2) -> list[Query]:
    out = []
    for a in range(n_articles):
        for k in range(per_article):
            out.append(Query(id=f"q{a}-{k}", positive_id=Document.make_id(f"a{a}", k + 1), article_id=f"a{a}",
                             lang="en"))
    return out


def test_articles_never_straddle_and_share_is_respected():
    qs = many_queries(2000)
    splits = split_queries(qs, SplitConfig(test_share=0.1, seed=13))
    train_articles = {q.article_id for q in splits["train"]}
    test_articles = {q.article_id for q in splits["test"]}
    assert not train_articles & test_articles
    assert len(splits["train"]) + len(splits["test"]) == len(qs)
    assert 0.08 < len(test_articles) / 2000 < 0.12
    assert all(q.split == "test" for q in splits["test"]) and all(q.split == "train" for q in splits["train"])
    assert describe_splits(splits)["articles_on_both_sides"] == 0


def test_deterministic_seeded_and_stable_when_the_build_grows():
    cfg = SplitConfig(test_share=0.3, seed=5)
    a = {q.id: q.split for q in sum(split_queries(many_queries(300), cfg).values(), [])}
    b = {q.id: q.split for q in sum(split_queries(list(reversed(many_queries(300))), cfg).values(), [])}
    assert a == b
    grown = {q.id: q.split for q in sum(split_queries(many_queries(600), cfg).values(), [])}
    assert all(grown[qid] == side for qid, side in a.items())  # no article changes side
    other_seed = {q.id: q.split for q in sum(split_queries(many_queries(300), SplitConfig(test_share=0.3, seed=6))
                                             .values(), [])}
    assert other_seed != a
    assert article_draw("a1", 5) == article_draw("a1", 5) != article_draw("a1", 6)


def test_excluded_queries_take_their_whole_article_to_train():
    qs = many_queries(200)
    base = split_queries(qs, SplitConfig(test_share=0.5))
    victim = base["test"][0]
    qs = many_queries(200)
    splits = split_queries(qs, SplitConfig(test_share=0.5), exclude_from_test={victim.id})
    assert victim.id in {q.id for q in splits["train"]}
    assert victim.article_id not in {q.article_id for q in splits["test"]}


def test_small_builds_still_get_both_splits_when_possible():
    qs = make_queries()  # six articles
    for seed in range(20):
        splits = split_queries(make_queries(), SplitConfig(test_share=0.2, seed=seed))
        assert splits["train"] and splits["test"], seed
    splits = split_queries(qs, SplitConfig(test_share=0.95, seed=1))
    assert splits["train"] and splits["test"]


def test_empty_splits_are_reported_not_broken():
    one_article = [make_query("rims", "q1"), make_query("rims", "q2")]
    splits = split_queries(one_article, SplitConfig(test_share=0.2))
    assert sum(len(v) for v in splits.values()) == 2
    assert {len(splits["train"]), len(splits["test"])} == {0, 2}
    desc = describe_splits(splits)
    empty = "test" if not splits["test"] else "train"
    assert any(f"the {empty} split is empty" in m for m in desc["messages"])
    assert desc["splits"][empty] == {"examples": 0, "avg_images": 0.0, "min_images": 0, "max_images": 0,
                                     "avg_text_tokens": 0.0, "positives": 0, "articles": 0}
    assert split_queries([], SplitConfig()) == {"train": [], "test": []}
    none_in_test = split_queries(make_queries(), SplitConfig(test_share=0.0))
    assert none_in_test["test"] == [] and len(none_in_test["train"]) == 6
    all_in_test = split_queries(make_queries(), SplitConfig(test_share=1.0))
    assert all_in_test["train"] == [] and len(all_in_test["test"]) == 6


def test_qrels_and_stats_table():
    qs = [make_query("rims", n_images=2), make_query("toilet", n_images=3),
          make_query("zucchini", n_images=4)]
    splits = {"train": qs, "test": []}
    qrels = split_qrels(splits)
    assert [(r.query_id, r.corpus_id, r.score) for r in qrels["train"]] == [
        ("q-rims", "wh-rims-s1", 1), ("q-toilet", "wh-toilet-s1", 1), ("q-zucchini", "wh-zucchini-s1", 1)]
    assert qrels["test"] == []
    row = query_split_stats(qs)
    assert row["examples"] == 3 and row["positives"] == 1
    assert (row["avg_images"], row["min_images"], row["max_images"]) == (3.0, 2, 4)
    assert 30 < row["avg_text_tokens"] < 80  # WordPiece tokens of three ~45-word queries
    odd = Query(id="x", positive_id="d", article_id="a", lang="en",
                content=Interleaved(texts=["bad \udcff text"], images=[None], image_meta=[None]))
    assert query_split_stats([odd])["avg_text_tokens"] > 0  # non-UTF-8 text is counted, not a crash


def test_describe_splits_reports_an_article_on_both_sides():
    hand_made = {"train": [make_query("rims", "q1")], "test": [make_query("rims", "q2")]}
    desc = describe_splits(hand_made)
    assert desc["articles_on_both_sides"] == 1
    assert any("on both sides" in m and "rims" in m for m in desc["messages"])


def test_articles_in_several_splits_is_the_leak_check():
    assert articles_in_several_splits({"train": ["a", "b", "b"], "test": ["c"], "validation": []}) == {}
    assert articles_in_several_splits({"train": ["b", "a"], "test": ["a", "c"], "validation": ["b", "a"]}) == \
        {"a": ["test", "train", "validation"], "b": ["train", "validation"]}
    # what split_queries hands out never leaks, whatever the seed
    for seed in range(5):
        splits = split_queries(many_queries(40), SplitConfig(test_share=0.3, seed=seed))
        assert articles_in_several_splits({s: [q.article_id for q in qs] for s, qs in splits.items()}) == {}
