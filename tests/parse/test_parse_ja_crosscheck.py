"""The ja pages against a third-party extraction of the very same HTML (wikihow_data/SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wikihow_tiir.parse import ParseError, parse_html
from wikihow_tiir.parse.text import norm

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
JSON_DIR = FIXTURES / "wikihow_data" / "ja_katsumata_scraper_json"
PAGES = sorted(p.stem for p in JSON_DIR.glob("*.json"))


def test_all_six_ja_extractions_present():
    assert len(PAGES) == 6


@pytest.mark.parametrize("name", PAGES)
def test_same_steps_and_bold_lines(name):
    data = json.loads((JSON_DIR / f"{name}.json").read_text(encoding="utf-8"))
    raw = (FIXTURES / "wikihow_html" / f"{name}.html").read_bytes()
    if not data["contents"]:  # the quality-review stub: the extraction is empty as well
        with pytest.raises(ParseError) as info:
            parse_html(raw)
        assert info.value.reason == "no-steps"
        return
    article = parse_html(raw)
    assert [len(p["part_contents"]) for p in data["contents"]] == [len(s.steps) for s in article.sections]
    for part, section in zip(data["contents"], article.sections, strict=True):
        if part["part_title"] and part["part_title"] != "ステップ":
            assert norm(part["part_title"]) == section.title
        for theirs, ours in zip(part["part_contents"], section.steps, strict=True):
            assert norm(theirs["bold_line"]) == norm(ours.summary)
            # the bold line never stays in the detail, and the detail starts where theirs does
            head = norm(theirs["article"])[:12]
            if head:
                assert norm(ours.detail.replace("\n", " ")).startswith(head)
