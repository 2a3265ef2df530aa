"""The scheduled crawl (incremental from the archive's last crawl, against the loopback wikiHow mirror and
a Prefect server started by the tests) and the release flow's human-audit gate."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> `servers.wikihow_mirror`

from flows_helpers import ROOT, artifacts, base_env, prefect_client  # noqa: E402
from servers.wikihow_mirror import WikihowMirror  # noqa: E402

from wikihow_tiir import layout  # noqa: E402

RUN_CRAWL = ("import json, sys\nfrom flows.crawl import crawl\n"
             "print('RESULT ' + json.dumps(crawl(config=sys.argv[1], archive=sys.argv[2])))\n")


def _crawl(env: dict[str, str], config: Path, archive: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", RUN_CRAWL, str(config), str(archive)], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.split("RESULT ", 1)[1])


def test_the_crawl_flow_fetches_only_what_changed_since_the_archive_s_last_crawl(prefect_server, tmp_path):
    env = base_env(prefect_server["home"], prefect_server["url"])
    with WikihowMirror() as mirror:
        config = tmp_path / "crawl.json"
        config.write_text(json.dumps({"source": {"crawl": {
            "contact": "tests@example.org", "origin_map": mirror.origin_map(), "allow_private_addresses": True,
            "requests_per_second": 50.0, "timeout_s": 2.0, "max_retries": 2, "backoff_base_s": 0.05,
            "max_backoff_s": 5.0, "pause_on_429_s": 1.0, "fetch_images": False}}}))
        archive = tmp_path / "archive"
        first = _crawl(env, config, archive)
        assert first["changed_since"] is None and first["totals"]["pages"]["done"] > 1  # a first crawl: all
        started = json.loads((archive / "crawl" / "summary.json").read_text())["started_at"][:10]
        mirror.lastmod["/Grill-Fish"] = "2099-01-01"
        mirror.reset_log()
        second = _crawl(env, config, archive)
    assert second["changed_since"] == started
    assert [h.path for h in mirror.hits if not h.path.endswith((".xml", ".txt"))] == ["/Grill-Fish"]
    with prefect_client(prefect_server["url"]) as client:
        runs = [fr for fr in client.read_flow_runs() if fr.name == "crawl-live"]
        texts = sorted(artifacts(client, [fr.id])["crawl"].data for fr in runs)  # one "crawl" artifact a run
    assert len(texts) == 2 and "changed since: (everything: first crawl)" in texts[0], texts
    assert f"changed since: {started}" in texts[1] and "pages: 1 done" in texts[1], texts


def test_crawl_settings_start_after_the_last_crawl_unless_told_otherwise(tmp_path):
    from flows.crawl import crawl_config

    archive = tmp_path / "archive"
    assert crawl_config("live", archive=str(archive)).source.crawl.changed_since is None  # nothing crawled yet
    (archive / "crawl").mkdir(parents=True)
    (archive / "crawl" / "summary.json").write_text(json.dumps({"started_at": "2026-03-04T05:06:07Z"}))
    assert str(crawl_config("live", archive=str(archive)).source.crawl.changed_since) == "2026-03-04"
    assert crawl_config("live", archive=str(archive), incremental=False).source.crawl.changed_since is None
    told = crawl_config("live", archive=str(archive), overrides=["source.crawl.changed_since=2025-01-02"])
    assert str(told.source.crawl.changed_since) == "2025-01-02"


def test_the_audit_gate_passes_with_approve_or_the_audit_s_decisions_and_stops_otherwise(tmp_path):
    from flows.release import ReleaseError, audit_gate

    folder = tmp_path / "build"
    folder.mkdir()
    assert audit_gate.fn(str(folder), True, 0.0).startswith("approved")
    with pytest.raises(ReleaseError) as err:
        audit_gate.fn(str(folder), False, 0.0)
    assert err.value.reason == "not-approved" and f"wikihow-tiir audit {folder} --apply" in str(err.value)
    applied = folder / layout.AUDIT_APPLIED

    def decide() -> None:
        time.sleep(0.2)
        applied.parent.mkdir(parents=True, exist_ok=True)
        applied.write_text("{}\n")

    t = threading.Thread(target=decide)
    t.start()
    try:  # it waits for the decisions (a generous bound: it returns as soon as they are there)
        assert audit_gate.fn(str(folder), False, 600.0, poll_s=0.05).startswith("audited")
    finally:
        t.join()


def test_steps_that_can_be_repeated_are_retried_and_publishing_never_is():
    from flows.crawl import crawl_task
    from flows.release import previous_task, publish_task, validate_task, version_task

    assert publish_task.retries == 0  # a retry after the tag was made would publish twice
    for repeatable in (crawl_task, previous_task, validate_task, version_task):
        assert repeatable.retries >= 1, repeatable.name
