"""The live crawl end to end against the loopback mirror: faults, refusals, images, resume."""

from __future__ import annotations

import _thread
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.servers.wikihow_mirror import FIXTURE_PAGES, Fault, RecordingServer
from wikihow_tiir.parse import parse_html
from wikihow_tiir.sources.archive import Archive
from wikihow_tiir.sources.http import CrawlSetupError
from wikihow_tiir.sources.live import Crawler, crawl

REPO = Path(__file__).resolve().parents[2]
JOB_HUNTING = "/%E5%B0%B1%E6%B4%BB%E3%81%AE%E6%BA%96%E5%82%99%E3%82%92%E3%81%99%E3%82%8B"  # 0 step images


def url_file(tmp_path: Path, mirror, paths: list[str]) -> Path:
    f = tmp_path / "urls.txt"
    f.write_text("".join(mirror.url(p) + "\n" for p in paths), encoding="utf-8")
    return f


def step_media(mirror, path: str):
    article = parse_html(mirror.pages[path], url=mirror.url(path))
    return [m for s in article.sections for st in s.steps for m in st.media]


def path_of(mirror, url: str) -> str:
    assert url.startswith(mirror.public)
    return url[len(mirror.public):]


def test_crawl_through_every_fault_ends_each_url_with_a_reason(tmp_path, mirror, crawl_cfg):
    zucchini = [m for m in step_media(mirror, "/Grill-Zucchini") if m.kind == "image"]
    fallback, opted_out, flaky = zucchini[0], zucchini[1], zucchini[2]
    mirror.faults[path_of(mirror, fallback.large_url)] = Fault("status", status=404, times=None)
    mirror.faults[path_of(mirror, opted_out.large_url)] = Fault("noai", times=None, header="noimageai")
    mirror.faults[path_of(mirror, flaky.large_url)] = Fault("status", status=503, times=1)
    stub = (FIXTURE_PAGES / "ja-cook-adobo-quality-review.html").read_bytes()
    mirror.extra_routes["/Cook-Adobo-Stub"] = (200, {"Content-Type": "text/html"}, stub)
    recover = {"429": Fault("429", retry_after="1"), "flaky": Fault("status", status=503, times=2),
               "slow": Fault("slow", delay=1.0), "cut": Fault("truncate"), "reset": Fault("reset")}
    for name, fault in recover.items():
        mirror.faults[f"/fault/{name}{JOB_HUNTING}"] = fault
    with RecordingServer("127.0.0.2") as foreign:
        failing = {
            "/Dead-Slow": (Fault("slow", delay=2.0, times=None), "timeout"),
            "/Missing-Article": (None, "http-404"),
            "/Gone-Article": (Fault("status", status=410, times=None), "http-410"),
            "/Foreign-Redirect": (Fault("redirect", times=None, location=foreign.origin + "/x"), "host-not-allowed"),
            "/Metadata-Redirect": (Fault("redirect", times=None, location="http://169.254.169.254/latest/"),
                                   "private-address"),
            "/Huge-Page": (Fault("huge", times=None, declared=False, size=4 * 1024 * 1024), "too-large"),
        }
        for path, (fault, _) in failing.items():
            if fault is not None:
                mirror.faults[path] = fault
        done_paths = ["/Grill-Zucchini", "/Marinate-Pork", "/Cook-Adobo-Stub"] + \
            [f"/fault/{n}{JOB_HUNTING}" for n in recover]
        skipped = {"/private-area/Secret": "robots-disallowed", "/Special:Randomizer": "not-an-article"}
        urls = url_file(tmp_path, mirror, done_paths + list(failing) + list(skipped))
        cfg = crawl_cfg(discovery="urls", url_file=urls, timeout_s=0.5, max_retries=2, max_page_bytes=1 << 20,
                        allowed_hosts=["www.wikihow.com", "169.254.169.254"])
        summary = crawl(cfg, tmp_path / "archive")
        assert foreign.hits == []  # the redirect to another host was refused before connecting

    pages = summary["pages"]
    assert summary["complete"] is True
    assert pages["done"] == len(done_paths) and pages["fetched"] == len(done_paths)
    assert pages["failed"] == {"host-not-allowed": 1, "http-404": 1, "http-410": 1, "private-address": 1,
                               "timeout": 1, "too-large": 1}
    assert pages["skipped"] == {"not-an-article": 1, "robots-disallowed": 1}
    assert pages["unparsed"] and sum(pages["unparsed"].values()) == 1  # the quality-review stub
    archive = Archive(tmp_path / "archive")
    for path in done_paths:
        rec = archive.get(mirror.url(path))
        assert rec.sha256 and rec.status == 200 and rec.fetched_at and rec.headers["content-type"]
    for path, (_, reason) in failing.items():
        assert archive.get(mirror.url(path)).error == reason
    for path, reason in skipped.items():
        assert archive.get(mirror.url(path)).error == reason
    assert [h for h in mirror.hits if "private-area" in h.path or "Special:" in h.path] == []
    assert {h.host for h in mirror.hits} == {"www.wikihow.com"}
    times = sorted(h.t for h in mirror.hits)
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 1 / 20.0

    # images: 728-px preferred; 404 -> 460-px fallback stored under both URLs; opt-out skipped
    images = summary["images"]
    assert images["skipped"] == {"x-robots-tag-opt-out": 1} and images["failed"] == {}
    assert images["fallbacks"] == 1 and images["done"] == images["total"] - 1
    requested = {h.path for h in mirror.hits}
    for m in zucchini:
        assert path_of(mirror, m.large_url) in requested
        small_requested = path_of(mirror, m.url) in requested
        assert small_requested == (m is fallback), m.url
    assert archive.get(fallback.large_url).sha256 == archive.get(fallback.url).sha256 != ""
    assert "http-404" in archive.get(fallback.large_url).headers["alias-reason"]
    assert archive.get(opted_out.large_url).error == "x-robots-tag-opt-out"
    assert archive.get_bytes(opted_out.url) is None
    for path in ("/Grill-Zucchini", "/Marinate-Pork"):
        for m in step_media(mirror, path):
            if m is opted_out or m.large_url == opted_out.large_url:
                continue
            data = archive.get_bytes(m.still_url)
            assert data and data == mirror.image_bytes(path_of(mirror, m.still_url))
            assert archive.get(m.still_url).license == m.license
            assert archive.get(m.still_url).page_url == mirror.url(path)
    assert any("All rights reserved" in archive.get(m.still_url).license for m in zucchini[3:])
    assert summary["bytes"] > 0 and summary["snapshot"]["archived_pages"] == len(done_paths)
    assert archive.get(opted_out.url).error == "x-robots-tag-opt-out"  # every size of it is marked

    # a re-run asks for nothing it already has or has decided about (robots.txt is re-read)
    mirror.reset_log()
    again = crawl(cfg.model_copy(update={"retry_failed": False}), tmp_path / "archive")
    assert {h.path for h in mirror.hits} <= {"/robots.txt"}
    assert again["pages"]["failed"] == pages["failed"] and again["images"]["skipped"] == images["skipped"]


def test_crawled_archive_reparses_offline_and_rerun_fetches_nothing(tmp_path, mirror, crawl_cfg):
    urls = url_file(tmp_path, mirror, ["/Grill-Zucchini", "/Marinate-Pork"])
    cfg = crawl_cfg(discovery="urls", url_file=urls, requests_per_second=50.0)
    first = crawl(cfg, tmp_path / "archive")
    assert first["pages"]["fetched"] == 2 and first["images"]["fetched"] > 10
    mirror.reset_log()
    second = crawl(cfg, tmp_path / "archive")
    assert mirror.hits == []  # nothing refetched (not even robots.txt: no request needs it), discovery reused
    assert second["discovery"]["reused"] and second["pages"]["from_archive"] == 2
    assert second["images"]["from_archive"] == first["images"]["done"]
    mirror.stop()  # offline from here on
    archive = Archive(tmp_path / "archive")
    articles = [parse_html(body, url=rec.url) for rec, body in archive.iter_pages()]
    assert sorted(a.title for a in articles) == ["How to Grill Zucchini", "How to Marinate Pork"]
    for a in articles:
        for s in a.sections:
            for st in s.steps:
                for m in st.media:
                    assert archive.get_bytes(m.still_url), m.still_url
    index = (tmp_path / "archive" / "index.jsonl").read_text().splitlines()
    assert index == sorted(index, key=lambda line: json.loads(line)["url"])  # compacted, sorted


def test_killed_crawl_resumes_fetching_only_what_is_missing(tmp_path, mirror, crawl_cfg):
    paths = ["/Grill-Zucchini", "/Grill-Fish", "/Marinate-Pork", "/Cook-Lamb-Steaks"]
    urls = url_file(tmp_path, mirror, paths)
    cfg = crawl_cfg(discovery="urls", url_file=urls, requests_per_second=20.0, max_concurrency=2)
    script = ("import json, sys; from pathlib import Path; from wikihow_tiir.config import CrawlConfig; "
              "from wikihow_tiir.sources.live import crawl; "
              "crawl(CrawlConfig.model_validate_json(sys.argv[1]), Path(sys.argv[2]))")
    proc = subprocess.Popen([sys.executable, "-c", script, cfg.model_dump_json(), str(tmp_path / "archive")],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 60
        while len(mirror.hits_for("/images")) < 12 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "the crawl finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    archive = Archive(tmp_path / "archive")
    have = {r.url for r in archive.records() if r.sha256 and r.kind in ("page", "image")}
    assert have and any(r.kind == "page" for r in archive.records())
    mirror.reset_log()
    summary = crawl(cfg.model_copy(update={"requests_per_second": 50.0}), tmp_path / "archive")
    refetched = {mirror.url(h.path) for h in mirror.hits} & have
    assert refetched == set()  # robots.txt is read again (rules may change), content is not
    assert any(h.path.startswith("/images") for h in mirror.hits)  # and the missing part was fetched
    assert summary["complete"] and summary["pages"]["done"] == 4
    assert summary["pages"]["from_archive"] >= 1 and summary["images"]["from_archive"] >= 1
    assert summary["discovery"]["reused"] is True
    final = Archive(tmp_path / "archive")
    for path in paths:
        for m in step_media(mirror, path):
            assert final.get_bytes(m.still_url), m.still_url


def test_incremental_crawl_refetches_only_changed_articles(tmp_path, mirror, crawl_cfg):
    mirror.sitemap_pages = ["/Grill-Zucchini", "/Grill-Fish", "/Marinate-Pork"]
    cfg = crawl_cfg(requests_per_second=50.0, fetch_images=False)
    first = crawl(cfg, tmp_path / "archive")
    assert first["pages"]["fetched"] == 3 and first["snapshot"]["lastmod_max"] == "2020-08-21"
    mirror.lastmod["/Grill-Fish"] = "2099-01-01"
    mirror.reset_log()
    second = crawl(cfg.model_copy(update={"changed_since": "2021-01-01"}), tmp_path / "archive")
    pages_hit = [h.path for h in mirror.hits if not h.path.endswith((".xml", ".txt"))]
    assert pages_hit == ["/Grill-Fish"]
    assert second["pages"]["fetched"] == 1 and second["discovery"]["urls"] == 1


def test_transient_failures_are_retried_on_the_next_run_final_ones_are_not(tmp_path, mirror, crawl_cfg):
    mirror.faults["/Grill-Fish"] = Fault("status", status=503, times=None)
    mirror.faults["/Gone-Article"] = Fault("status", status=410, times=None)
    urls = url_file(tmp_path, mirror, ["/Grill-Fish", "/Gone-Article"])
    cfg = crawl_cfg(discovery="urls", url_file=urls, max_retries=0, fetch_images=False, requests_per_second=50.0)
    first = crawl(cfg, tmp_path / "archive")
    assert first["pages"]["failed"] == {"http-410": 1, "server-error": 1}
    del mirror.faults["/Grill-Fish"]
    mirror.reset_log()
    second = crawl(cfg, tmp_path / "archive")
    assert [h.path for h in mirror.hits if h.path != "/robots.txt"] == ["/Grill-Fish"]
    assert second["pages"]["done"] == 1 and second["pages"]["failed"] == {"http-410": 1}


def test_live_crawl_refuses_to_start_without_contact(tmp_path, mirror, crawl_cfg):
    with pytest.raises(CrawlSetupError, match="contact"):
        crawl(crawl_cfg(contact=None), tmp_path / "archive")
    assert mirror.hits == [] and not (tmp_path / "archive").exists()


def test_progress_shows_pages_images_failures_and_rate(tmp_path, mirror, crawl_cfg, capsys):
    mirror.faults["/Gone-Article"] = Fault("status", status=410, times=None)
    urls = url_file(tmp_path, mirror, ["/Marinate-Pork", "/Gone-Article"])
    crawl(crawl_cfg(discovery="urls", url_file=urls, requests_per_second=50.0), tmp_path / "a", progress=True)
    err = capsys.readouterr().err
    assert re.search(r"pages 2/2 \(done 1, failed 1, skipped 0\) \| images \d+ \(failed/skipped 0\) \| "
                     r"\d+\.\d\d req/s", err), err


def test_crawled_archive_builds_documents_with_every_step_picture(tmp_path, mirror, crawl_cfg):
    """What the build does after a live crawl: pages from the archive, pictures by the parser's URLs."""
    from wikihow_tiir.config import load_config
    from wikihow_tiir.corpus import PageInput, documents_from_articles, parse_pages

    urls = url_file(tmp_path, mirror, ["/Grill-Zucchini", "/Marinate-Pork"])
    crawl(crawl_cfg(discovery="urls", url_file=urls, requests_per_second=50.0), tmp_path / "archive")
    mirror.stop()
    archive = Archive(tmp_path / "archive")
    pages = [PageInput(rec.url, body, rec.fetched_at, rec.sha256, "live") for rec, body in archive.iter_pages()]
    articles, rejects = parse_pages(pages)
    assert rejects == [] and len(articles) == 2
    shard = documents_from_articles(articles, archive, load_config(profile="live"))
    assert len(shard.documents) >= 4
    assert [r for r in shard.rejects if r.stage == "images"] == []  # no picture missing or refused
    assert all(m.license for d in shard.documents if d.article_id == articles[0].id
               for m in d.content.image_meta if m and "Step-1-" in m.source_url)


def test_ctrl_c_during_a_429_pause_stops_at_once_and_the_rerun_resumes(tmp_path, mirror, crawl_cfg):
    mirror.faults["/Grill-Zucchini"] = Fault("429", times=None, retry_after="60")
    urls = url_file(tmp_path, mirror, ["/Grill-Zucchini", "/Grill-Fish", "/Marinate-Pork"])
    cfg = crawl_cfg(discovery="urls", url_file=urls, max_backoff_s=120.0, fetch_images=False)
    # A launcher without a terminal (`make test &` from a script) starts pytest with SIGINT ignored, and
    # then neither Ctrl-C nor _thread.interrupt_main() does anything: install Python's default handler
    # for this test, so the interrupt arrives however the suite was started.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            crawl(cfg, tmp_path / "archive")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 10  # not the 60 s the host is paused for
    archive = Archive(tmp_path / "archive")
    assert not [r for r in archive.records() if r.error == "cancelled"]
    del mirror.faults["/Grill-Zucchini"]
    summary = crawl(cfg.model_copy(update={"requests_per_second": 50.0}), tmp_path / "archive")
    assert summary["complete"] and summary["pages"]["done"] == 3


def run_bounded(cfg, archive_dir: Path, bound: float) -> tuple[dict | None, float]:
    """Run a crawl in a thread: (summary, seconds), or (None, seconds) when it had not ended after ``bound``
    seconds - then it is stopped, so that no thread is left waiting on a paused host after the test."""
    crawler = Crawler(cfg, Archive(archive_dir, create=True))
    out: dict = {}
    t = threading.Thread(target=lambda: out.setdefault("summary", crawler.run()), daemon=True)
    started = time.monotonic()
    t.start()
    t.join(bound)
    took = time.monotonic() - started
    if t.is_alive():
        crawler._stop.set()
        crawler.client.cancel()
        t.join(60)
        return None, took
    return out["summary"], took


def test_huge_retry_after_ends_the_url_rate_limited_and_the_crawl_in_bounded_time(tmp_path, mirror, crawl_cfg):
    paths = ["/Grill-Zucchini", "/Grill-Fish", "/Marinate-Pork"]
    urls = url_file(tmp_path, mirror, paths)
    cfg = crawl_cfg(discovery="urls", url_file=urls, fetch_images=False, max_backoff_s=2.0, max_concurrency=2)
    normal, t_normal = run_bounded(cfg, tmp_path / "normal", 120.0)
    assert normal is not None and normal["ok"]
    mirror.reset_log()
    mirror.faults["/Grill-Zucchini"] = Fault("429", times=None, retry_after="100000")
    bound = 3 * (cfg.max_backoff_s + t_normal) + 5  # expected: max_backoff_s + the normal crawl time
    summary, took = run_bounded(cfg, tmp_path / "archive", bound)
    assert summary is not None, f"the crawl had not ended after {took:.0f}s"
    assert summary["complete"] and summary["ok"] is False
    assert summary["pages"]["failed"] == {"rate-limited": 1} and summary["pages"]["done"] == 2
    assert summary["totals"]["retryable"] == 1
    archive = Archive(tmp_path / "archive")
    assert archive.get(mirror.url("/Grill-Zucchini")).error == "rate-limited"
    assert all(archive.get(mirror.url(p)).sha256 for p in paths[1:])
    assert len(mirror.hits_for("/Grill-Zucchini")) == 1  # asked once, not retried


def test_host_wide_persistent_429_ends_every_url_rate_limited(tmp_path, mirror, crawl_cfg):
    paths = ["/Grill-Zucchini", "/Grill-Fish", "/Marinate-Pork", "/Cook-Lamb-Steaks", "/Make-Ube-Halaya"]
    for path in paths:
        mirror.faults[path] = Fault("429", times=None, retry_after="86400")
    cfg = crawl_cfg(discovery="urls", url_file=url_file(tmp_path, mirror, paths), max_backoff_s=2.0)
    summary, took = run_bounded(cfg, tmp_path / "archive", 40.0)  # expected: one 2 s pause
    assert summary is not None, f"the crawl had not ended after {took:.0f}s"
    assert summary["complete"] and summary["pages"]["failed"] == {"rate-limited": len(paths)}
    archive = Archive(tmp_path / "archive")
    assert [archive.get(mirror.url(p)).error for p in paths] == ["rate-limited"] * len(paths)
    assert len([h for h in mirror.hits if h.path in paths]) == 2
    assert summary["http"]["hosts-closed-429"] == 1


def test_dripping_and_cut_bodies_end_as_timeout_and_truncated_then_the_rerun_gets_them(tmp_path, mirror,
                                                                                      crawl_cfg):
    media = [m for m in step_media(mirror, "/Grill-Zucchini") if m.kind == "image"]
    mirror.faults["/Grill-Fish"] = Fault("drip", times=None, interval=0.05, give_up_after=30.0)
    mirror.faults["/Marinate-Pork"] = Fault("truncate", times=None, framing="close")
    mirror.faults[path_of(mirror, media[0].large_url)] = Fault("truncate", times=None, framing="close")
    mirror.faults[path_of(mirror, media[0].url)] = Fault("truncate", times=None, framing="close")
    paths = ["/Grill-Zucchini", "/Grill-Fish", "/Marinate-Pork"]
    cfg = crawl_cfg(discovery="urls", url_file=url_file(tmp_path, mirror, paths), timeout_s=0.5, max_retries=1,
                    requests_per_second=50.0)
    summary, took = run_bounded(cfg, tmp_path / "archive", 60.0)  # expected: about 2 x 2 s for the drip
    assert summary is not None, f"the crawl had not ended after {took:.0f}s"
    assert summary["pages"]["failed"] == {"timeout": 1, "truncated": 1} and summary["pages"]["done"] == 1
    assert summary["images"]["failed"] == {"truncated": 1}
    archive = Archive(tmp_path / "archive")
    assert archive.get(mirror.url("/Grill-Fish")).error == "timeout"
    assert archive.get(mirror.url("/Marinate-Pork")).error == "truncated"
    assert archive.get(media[0].large_url).error == archive.get(media[0].url).error == "truncated"
    assert archive.get_bytes(mirror.url("/Marinate-Pork")) is None and archive.get_bytes(media[0].url) is None
    mirror.faults.clear()
    again = crawl(cfg, tmp_path / "archive")
    assert again["ok"] and again["pages"]["done"] == 3
    assert Archive(tmp_path / "archive").get_bytes(mirror.url("/Marinate-Pork")) == mirror.pages["/Marinate-Pork"]
    assert Archive(tmp_path / "archive").get_bytes(media[0].large_url) == mirror.image_bytes(
        path_of(mirror, media[0].large_url))
