"""The report's score plots draw the thresholds that bound each score, named one by one."""

from __future__ import annotations

import re

from wikihow_tiir.config import FilterConfig
from wikihow_tiir.filter import filter_queries
from wikihow_tiir.model import Query
from wikihow_tiir.report import SCORE_THRESHOLDS, _plots, threshold_lines

SETTINGS = FilterConfig().model_dump(mode="json")


def _legends(svgs: list[str]) -> dict[str, set[str]]:
    """plot title -> the legend labels drawn in it (matplotlib keeps each text as an SVG comment)."""
    out = {}
    for svg in svgs:
        title = re.search(r"<!-- filter score: (\w+) -->", svg)
        if title:
            out[title.group(1)] = set(re.findall(r"<!-- (\w+ = [-\d.]+) -->", svg))
    return out


def test_every_score_of_the_filter_has_its_thresholds_named():
    checks = filter_queries([], [], FilterConfig()).report["checks"]
    scores = {s for c in checks.values() for s in c["scores"]}
    assert set(SCORE_THRESHOLDS) == scores
    for score, settings in SCORE_THRESHOLDS.items():
        # each named setting is one the filter itself lists for a check that computes this score
        declared = {t for c in checks.values() if score in c["scores"] for t in c["thresholds"]}
        assert set(settings) <= declared, score


def test_each_plot_draws_its_own_thresholds_only():
    queries = [Query(id=f"q{i}", positive_id="d", article_id="a", lang="en",
                     scores={"query_image_min_distance": 18.0 + i, "full_rank": 1.0 + i % 3,
                             "image_leak_min_distance": 20.0 + i, "lexical_overlap": 0.1 + i / 100,
                             "relevance": 0.6 + i / 100, "judge": 1.0})
               for i in range(8)]
    thresholds = {**SETTINGS, "easiness_percentile_cutoff": None}
    legends = _legends(_plots([], queries, thresholds))
    # first-word matching put query_block_size = 1024 (and the query image counts) on this axis
    assert legends["query_image_min_distance"] == {"phash_max_distance = 6"}
    assert legends["image_leak_min_distance"] == {"phash_max_distance = 6"}
    assert legends["full_rank"] == {"answerability_top_k = 20"}  # had none
    assert legends["lexical_overlap"] == {"lexical_overlap_max = 0.6"}  # not lexical_ngram = 3
    assert legends["relevance"] == {"relevance_min = 0.3", "easiness_max_similarity = 0.95"}
    assert legends["judge"] == set()


def test_threshold_lines_leave_out_settings_that_are_off():
    assert threshold_lines("relevance", {**SETTINGS, "easiness_percentile_cutoff": 0.83}) == [
        ("relevance_min", 0.3), ("easiness_max_similarity", 0.95), ("easiness_percentile_cutoff", 0.83)]
    assert threshold_lines("relevance", {"relevance_min": None, "easiness_max_similarity": True}) == []
    assert threshold_lines("a-score-from-elsewhere", SETTINGS) == []
