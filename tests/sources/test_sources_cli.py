"""`wikihow-tiir crawl` against the mirror, by configuration only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tests.servers.wikihow_mirror import Fault
from wikihow_tiir.cli import app
from wikihow_tiir.sources.archive import Archive

REPO = Path(__file__).resolve().parents[2]


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


def run_crawl_cli(tmp_path: Path, mirror, paths: list[str], *extra: str) -> subprocess.CompletedProcess:
    """The real `wikihow-tiir crawl` in a subprocess (pages only), against the mirror."""
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(mirror.url(p) + "\n" for p in paths), encoding="utf-8")
    config = tmp_path / "live.json"
    config.write_text(json.dumps({"source": {"crawl": {
        "origin_map": mirror.origin_map(), "allow_private_addresses": True, "requests_per_second": 50,
        "max_retries": 0}}}))
    args = ["crawl", "--config", str(config), "--archive", str(tmp_path / "archive"), "--discovery", "urls",
            "--url-file", str(urls), "--contact", "tests@example.org", "--no-images", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "wikihow_tiir.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_crawl_command_fails_with_one_error_line_when_no_page_could_be_archived(tmp_path, mirror):
    mirror.faults["/Gone-Article"] = Fault("status", status=410, times=None)
    out = run_crawl_cli(tmp_path, mirror, ["/Missing-Article", "/Gone-Article", "/Special:Randomizer"])
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: no page could be archived: of 3 discovered, 2 failed and 1 skipped "
                      f"(http-404 1, http-410 1, not-an-article 1); "
                      f"see {tmp_path / 'archive' / 'crawl' / 'summary.json'}"]
    summary = json.loads(out.stdout)
    assert summary["complete"] is True and summary["ok"] is False
    assert summary["totals"] == {"pages": {"done": 0, "failed": 2, "skipped": 1},
                                 "images": {"done": 0, "failed": 0, "skipped": 0}, "retryable": 0}


def test_crawl_command_with_some_failures_says_so_and_exits_0(tmp_path, mirror):
    mirror.faults["/Grill-Fish"] = Fault("status", status=503, times=None)
    out = run_crawl_cli(tmp_path, mirror, ["/Grill-Zucchini", "/Missing-Article", "/Grill-Fish"], "--progress")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stdout + out.stderr and "error:" not in out.stderr
    summary = json.loads(out.stdout)
    assert summary["complete"] is True and summary["ok"] is False
    assert summary["totals"]["pages"] == {"done": 1, "failed": 2, "skipped": 0}
    assert summary["totals"]["retryable"] == 1  # the 503; the 404 is final
    assert [line for line in out.stderr.splitlines() if line.startswith("warning:")] == [
        f"warning: 2 page(s) and 0 image(s) failed (1 may succeed on a re-run); "
        f"see {tmp_path / 'archive' / 'crawl' / 'summary.json'}"]
    # the re-run gets the page that was unavailable: nothing failed any more but the 404
    del mirror.faults["/Grill-Fish"]
    again = json.loads(run_crawl_cli(tmp_path, mirror, ["/Grill-Zucchini", "/Grill-Fish"]).stdout)
    assert again["ok"] is True and again["totals"]["pages"] == {"done": 2, "failed": 0, "skipped": 0}


def test_crawl_command_that_finds_nothing_new_is_not_a_failure(tmp_path, mirror):
    out = run_crawl_cli(tmp_path, mirror, [])
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["ok"] is True and summary["pages"]["discovered"] == 0
