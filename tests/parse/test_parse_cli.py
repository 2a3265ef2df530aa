"""`wikihow-tiir parse PAGE.html` prints the Article as JSON; a stub page exits with a reason."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from wikihow_tiir.cli import app

HTML = Path(__file__).resolve().parents[1] / "fixtures" / "wikihow_html"


def test_parse_command_prints_article_json():
    result = CliRunner().invoke(app, ["parse", str(HTML / "grill-zucchini.html"), "--indent", "0"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"id", "url", "lang", "title", "goal", "categories", "sections"} <= set(data)
    assert data["id"] == "4346099" and data["lang"] == "en"
    section = data["sections"][0]
    assert {"index", "kind", "title", "steps"} <= set(section)
    step = section["steps"][0]
    assert {"index", "summary", "detail", "media"} <= set(step)
    media = step["media"][0]
    assert {"kind", "url", "large_url", "poster_url", "license"} <= set(media)
    assert [len(s["steps"]) for s in data["sections"]] == [6, 7, 4]
    kinds = {m["kind"] for s in data["sections"] for st in s["steps"] for m in st["media"]}
    assert kinds == {"image", "video"}


def test_parse_command_reports_the_reason():
    result = CliRunner().invoke(app, ["parse", str(HTML / "ja-cook-adobo-quality-review.html")])
    assert result.exit_code == 2
    assert "no-steps" in result.output
