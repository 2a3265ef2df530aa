"""`wikihow-tiir crawl` against the mirror, by configuration only."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from wikihow_tiir.cli import app
from wikihow_tiir.sources.archive import Archive


def test_crawl_command_fills_an_archive_from_a_config_file(tmp_path, mirror):
    mirror.sitemap_pages = ["/Grill-Zucchini", "/Marinate-Pork"]
    config = tmp_path / "live.json"
    config.write_text(json.dumps({"source": {"crawl": {
        "origin_map": mirror.origin_map(), "allow_private_addresses": True, "requests_per_second": 50}}}))
    archive = tmp_path / "archive"
    result = CliRunner().invoke(app, ["crawl", "--config", str(config), "--archive", str(archive),
                                      "--contact", "tests@example.org", "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["discovery"]["method"] == "sitemap" and summary["pages"]["done"] == 2
    assert summary["images"]["done"] > 10 and summary["complete"]
    assert len(Archive(archive).pages()) == 2
    assert json.loads((archive / "crawl" / "summary.json").read_text())["pages"]["done"] == 2


def test_crawl_command_refuses_without_contact(tmp_path, mirror):
    result = CliRunner().invoke(app, ["crawl", "--archive", str(tmp_path / "a"), "--no-progress",
                                      "--set", f"source.crawl.origin_map={json.dumps(mirror.origin_map())}"])
    assert result.exit_code == 2
    assert "contact" in result.output
    assert mirror.hits == []


def test_crawl_command_reports_bad_settings(tmp_path):
    result = CliRunner().invoke(app, ["crawl", "--archive", str(tmp_path / "a"), "--contact", "x@example.org",
                                      "--discovery", "everything", "--no-progress"])
    assert result.exit_code == 2 and "discovery" in result.output
