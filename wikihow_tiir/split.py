"""Train/test split by article, and the paper's statistics table for each query split.

An article's side is decided by a hash of ``(seed, article_id)`` alone, so it does not depend on
which other articles are in the build: growing a build never moves an article from train to test
(no leakage between dataset versions). No article is on both sides. The corpus is not split: it
keeps every document, most of them distractors without a query, as in the paper.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from wikihow_tiir.config import SplitConfig
from wikihow_tiir.model import Qrel, Query

SPLITS = ("train", "test")


def article_draw(article_id: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the seed and the article id (sha256, not Python's hash)."""
    digest = hashlib.sha256(f"{seed}\x00{article_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_queries(queries: list[Query], cfg: SplitConfig,
                  exclude_from_test: set[str] | frozenset[str] = frozenset(),
                  previous: Mapping[str, str] | None = None) -> dict[str, list[Query]]:
    """``{"train": [...], "test": [...]}`` by article; sets ``q.split``. Query order is kept.

    An article goes to test when its draw is below ``cfg.test_share``. An article that has a query in
    ``exclude_from_test`` (the filter's likely-false-negative flags) goes wholly to train, so the
    flagged query is never in test and the article is still on one side only. In a small build the
    hash can leave one side empty although there are two or more articles: then the article whose
    draw is closest to the line moves over, so a sample build still has both splits. A split that is
    still empty (a single article, ``test_share`` 0 or 1, no queries) is returned as an empty list:
    callers report it and write no file for it.

    ``previous`` (``{article_id: split}`` of the previous version of the dataset) is kept: an article
    that had queries there stays on its side whatever the rules above say, so no test query moves
    to train between versions (nor a train query to test); only new articles are drawn and moved.
    """
    previous = {a: s for a, s in (previous or {}).items() if s in SPLITS}
    draws: dict[str, float] = {}
    pinned_train: set[str] = set()
    for q in queries:
        draws.setdefault(q.article_id, article_draw(q.article_id, cfg.seed))
        if q.id in exclude_from_test:
            pinned_train.add(q.article_id)
    side = {a: previous.get(a) or ("test" if u < cfg.test_share and a not in pinned_train else "train")
            for a, u in draws.items()}
    free = [a for a in draws if a not in pinned_train and a not in previous]
    n_test = sum(s == "test" for s in side.values())
    if 0 < cfg.test_share and n_test == 0 and len(draws) >= 2 and free:
        side[min(free, key=lambda a: (draws[a], a))] = "test"
    elif cfg.test_share < 1 and n_test == len(draws) and len(draws) >= 2 and free:
        side[max(free, key=lambda a: (draws[a], a))] = "train"
    out: dict[str, list[Query]] = {"train": [], "test": []}
    for q in queries:
        q.split = side[q.article_id]
        out[q.split].append(q)
    return out


def split_qrels(splits: dict[str, list[Query]]) -> dict[str, list[Qrel]]:
    """One qrel per query: its positive document, score 1 (the paper has exactly one positive)."""
    return {name: [Qrel(query_id=q.id, corpus_id=q.positive_id, score=1) for q in qs]
            for name, qs in splits.items()}


def query_split_stats(queries: Iterable[Query]) -> dict[str, Any]:
    """The paper's table row for one query split.

    ``{"examples", "avg_images", "min_images", "max_images", "avg_text_tokens", "positives"}``; text
    tokens are all-MiniLM-L6-v2 WordPiece tokens of the query's text positions (no special tokens),
    counted as in :mod:`wikihow_tiir.stats`. ``positives`` is positives per query (1 here).
    """
    from wikihow_tiir.stats import count_tokens, table_row

    qs = list(queries)
    texts = [q.content.text.encode("utf-8", errors="replace").decode("utf-8") for q in qs]
    positives = 1 if qs else 0
    return table_row([q.content.n_images for q in qs], count_tokens(texts), positives)


def describe_splits(splits: dict[str, list[Query]]) -> dict[str, Any]:
    """For the manifest: per split the statistics row and its article count, plus messages about
    empty splits and a check that no article is on both sides."""
    out: dict[str, Any] = {"splits": {}, "messages": []}
    articles: dict[str, set[str]] = {}
    for name in SPLITS:
        qs = splits.get(name, [])
        articles[name] = {q.article_id for q in qs}
        row = query_split_stats(qs)
        row["articles"] = len(articles[name])
        out["splits"][name] = row
        if not qs:
            out["messages"].append(f"the {name} split is empty: no {name} queries/qrels files are written")
    both = sorted(articles_in_several_splits(articles))
    if both:  # split_queries never does this; a hand-made split might
        out["messages"].append(f"{len(both)} articles are on both sides, e.g. {both[:3]}")
    out["articles_on_both_sides"] = len(both)
    return out


def articles_in_several_splits(articles: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """The article leak check: ``{article_id: [split, ...]}`` for each article that has queries in more
    than one split (``articles`` maps a split name to the article ids of its queries), sorted by article.

    :func:`split_queries` never puts an article on two sides; a hand-made or edited dataset might, and
    then a model could be trained on the very article it is tested on. Run by ``describe_splits`` and
    by dataset validation (``wikihow-tiir validate``, every build's quick check, ``publish``).
    """
    sides: dict[str, list[str]] = {}
    for split in sorted(articles):
        for a in set(articles[split]):
            sides.setdefault(a, []).append(split)
    return {a: s for a, s in sorted(sides.items()) if len(s) > 1}
