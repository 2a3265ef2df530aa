"""The live crawl: discover article URLs, fetch pages and their step images politely, archive all.

``crawl(cfg, archive_dir)`` fills an archive (see :mod:`wikihow_tiir.sources.archive`) that the
build then reads exactly like the bundled one. The archive index *is* the crawl state: every URL
the crawl touched has a record - with a body (done), or with ``error`` set to the reason (failed,
or skipped by robots.txt / an opt-out header). A re-run therefore resumes: pages already stored
are re-parsed from the archive instead of refetched, final failures are not retried, transient
ones (5xx, timeouts ...) are retried when ``retry_failed``. The discovered URL list is kept in
``<archive>/crawl/discovery.json`` so a resumed crawl does not re-read the sitemaps either.

Step images: for each step the 728-px ``large_url`` is fetched first, then the 460-px ``url``, then
the video ``poster_url``; the body is stored once (content-addressed) and every candidate URL gets a
record pointing to it, so ``Archive.get_bytes`` answers for whichever URL the parser reports.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from wikihow_tiir.config import CrawlConfig
from wikihow_tiir.io import atomic_write_json, sha256_file, stable_hash
from wikihow_tiir.model import Article, Media
from wikihow_tiir.sources.archive import Archive, ArchiveRecord
from wikihow_tiir.sources.discovery import (
    Discovered,
    DiscoveryError,
    from_categories,
    from_sitemap,
    from_url_file,
)
from wikihow_tiir.sources.http import TRANSIENT_REASONS, FetchResult, PoliteClient, now_iso, user_agent

STATE_DIR = "crawl"
# outcomes that are a decision (ours or the site's), not a failure
SKIP_REASONS = frozenset({"robots-disallowed", "x-robots-tag-opt-out", "not-an-article"})


def _bucket(reason: str) -> str:
    return "skipped" if reason in SKIP_REASONS else "failed"


class _Stats:
    """Thread-safe counters for the summary and the progress line."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.c: Counter[str] = Counter()

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.c[key] += n

    def by_prefix(self, prefix: str) -> dict[str, int]:
        with self.lock:
            return {k[len(prefix):]: v for k, v in sorted(self.c.items()) if k.startswith(prefix)}


class Crawler:
    def __init__(self, cfg: CrawlConfig, archive: Archive):
        self.cfg = cfg
        self.archive = archive
        self.client = PoliteClient(cfg, on_robots=lambda res: self._store_aux(res, "robots"))
        self.stats = _Stats()
        self._claim_lock = threading.Lock()
        self._claimed: set[str] = set()  # image URLs some worker is handling (dedup by URL)
        self._sha_seen: dict[str, str] = {}  # sha256 -> first URL (dedup by content)
        self._stop = threading.Event()  # set on Ctrl-C: workers finish the request in hand and leave

    # ------------------------------------------------------------------ discovery
    def _discovery_fingerprint(self) -> str:
        cfg = self.cfg
        url_file_hash = sha256_file(cfg.url_file) if cfg.url_file and Path(cfg.url_file).is_file() else ""
        return stable_hash(cfg.discovery, cfg.base_url, cfg.sitemap_url, cfg.api_url, cfg.categories,
                           cfg.category_depth, cfg.max_categories, str(cfg.url_file or ""), url_file_hash,
                           cfg.max_articles, cfg.changed_since)

    def discover(self) -> tuple[list[Discovered], list[tuple[str, str]], bool]:
        """(urls, refused (url, reason), reused) - reusing a finished discovery with the same settings."""
        path = self.archive.root / STATE_DIR / "discovery.json"
        fingerprint = self._discovery_fingerprint()
        if path.is_file() and not self.cfg.rediscover:
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("fingerprint") == fingerprint and saved.get("complete"):
                urls = [Discovered(**d) for d in saved["urls"]]
                return urls, [tuple(r) for r in saved.get("refused", [])], True
        refused: list[tuple[str, str]] = []
        if self.cfg.discovery == "sitemap":
            urls = from_sitemap(self.client, self.cfg, on_fetch=self._store_aux)
        elif self.cfg.discovery == "category":
            urls = from_categories(self.client, self.cfg, on_fetch=self._store_aux)
        else:
            if self.cfg.url_file is None:
                raise DiscoveryError("discovery 'urls' needs source.crawl.url_file (one URL per line)")
            urls, refused = from_url_file(Path(self.cfg.url_file), self.cfg)
        atomic_write_json(path, {"fingerprint": fingerprint, "complete": True, "discovered_at": now_iso(),
                                 "method": self.cfg.discovery, "urls": [d.to_dict() for d in urls],
                                 "refused": [list(r) for r in refused]})
        return urls, refused, False

    # ------------------------------------------------------------------ archive writing
    def _store_aux(self, res: FetchResult, kind: str) -> None:
        """Sitemaps, API answers and robots.txt go into the archive too (re-readable, auditable)."""
        self.archive.put(res.url, res.body if res.ok else None, kind, status=res.status,
                         fetched_at=res.fetched_at, content_type=res.content_type,
                         headers=res.headers, origin="live", error=res.error)

    def _store(self, url: str, res: FetchResult, kind: str, **meta: Any) -> ArchiveRecord | None:
        if res.error == "cancelled":  # the crawl is stopping: nothing was learnt about this URL
            return None
        headers = dict(res.headers)
        if res.final_url and res.final_url != url:
            headers["final-url"] = res.final_url
        if not res.ok:
            old = self.archive.get(url)
            if old is not None and old.sha256:  # never replace a good copy by a failed refetch
                return None
            return self.archive.put(url, None, kind, status=res.status, fetched_at=res.fetched_at,
                                    headers=headers, origin="live", error=res.error, **meta)
        return self.archive.put(url, res.body, kind, status=res.status, fetched_at=res.fetched_at,
                                content_type=res.content_type, headers=headers, origin="live", **meta)

    # ------------------------------------------------------------------ pages
    def _page_body(self, d: Discovered) -> bytes | None:
        rec = self.archive.get(d.url)
        if rec is not None and rec.sha256 and 200 <= rec.status < 300:
            stale = d.lastmod and rec.fetched_at and d.lastmod[:10] > rec.fetched_at[:10]
            if not stale:
                self.stats.add("pages.from_archive")
                self.stats.add("pages.done")
                return self.archive.read(rec)
        elif rec is not None and rec.error and not (self.cfg.retry_failed and rec.error in TRANSIENT_REASONS):
            self.stats.add(f"pages.{_bucket(rec.error)}.{rec.error}")  # decided in an earlier run
            return None
        res = self.client.fetch(d.url)
        self._store(d.url, res, "page")
        if not res.ok:
            self.stats.add(f"pages.{_bucket(res.error)}.{res.error}")
            return None
        self.stats.add("pages.fetched")
        self.stats.add("pages.done")
        return res.body

    def page(self, d: Discovered) -> None:
        if self._stop.is_set():
            return
        body = self._page_body(d)
        if body is None or not self.cfg.fetch_images:
            return
        from wikihow_tiir.parse import ParseError, parse_html

        try:
            article = parse_html(body, url=d.url)
        except ParseError as exc:  # the page stays archived; it just yields no images
            self.stats.add(f"pages.unparsed.{exc.reason}")
            return
        except Exception:  # a parser bug must not stop the crawl: the page is archived, re-parse later
            self.stats.add("pages.unparsed.parser-error")
            return
        for media in _step_media(article):
            if self._stop.is_set():
                return
            self.image(media, d.url)

    # ------------------------------------------------------------------ images
    def image(self, media: Media, page_url: str) -> None:
        candidates = _candidates(media)
        if not candidates:
            return
        with self._claim_lock:
            if any(u in self._claimed for u in candidates):
                self.stats.add("images.duplicate_url")
                return
            self._claimed.update(candidates)
        self.stats.add("images.total")
        meta = {"license": media.license, "page_url": page_url}
        # already archived (an earlier run, or another page)? make sure every alias exists
        for url in candidates:
            rec = self.archive.get(url)
            if rec is not None and rec.sha256:
                self._aliases(candidates, url, rec, meta)
                self.stats.add("images.from_archive")
                self.stats.add("images.done")
                return
        previous = [self.archive.get(u) for u in candidates]
        if all(r is not None and r.error and not (self.cfg.retry_failed and r.error in TRANSIENT_REASONS)
               for r in previous):
            reason = previous[0].error  # type: ignore[union-attr]
            self.stats.add(f"images.{_bucket(reason)}.{reason}")
            return
        failures: list[tuple[str, FetchResult]] = []
        for url in candidates:
            res = self.client.fetch(url, image=True)
            if res.ok and not res.content_type.lower().startswith("image/"):
                res.error, res.detail = "not-an-image", f"Content-Type {res.content_type!r}"
                res.body = None
            if res.ok:
                rec = self._store(url, res, "image", **meta)
                assert rec is not None
                sha = rec.sha256
                with self._claim_lock:
                    first = self._sha_seen.setdefault(sha, url)
                if first != url:
                    self.stats.add("images.duplicate_content")
                self._aliases(candidates, url, rec, meta, failures)
                self.stats.add("images.fetched")
                self.stats.add("images.done")
                if failures:
                    self.stats.add("images.fallbacks")
                return
            failures.append((url, res))
            if res.error in SKIP_REASONS:  # an opt-out covers every size of the picture: do not go round it
                break
        for url, res in failures:
            self._store(url, res, "image", **meta)
        reason = failures[0][1].error
        if reason in SKIP_REASONS:  # the other sizes are covered by the same opt-out: note it, never fetch
            for url in candidates[len(failures):]:
                self.archive.put(url, None, "image", status=0, fetched_at=failures[-1][1].fetched_at,
                                 headers={"opt-out-via": failures[-1][0]}, origin="live", error=reason, **meta)
        self.stats.add(f"images.{_bucket(reason)}.{reason}")

    def _aliases(self, candidates: list[str], url: str, rec: ArchiveRecord, meta: dict[str, Any],
                 failures: list[tuple[str, FetchResult]] | None = None) -> None:
        why = {u: r.error for u, r in failures or []}
        for alias in candidates:
            if alias == url:
                continue
            old = self.archive.get(alias)
            if old is not None and old.sha256 == rec.sha256:
                continue
            headers = {"alias-of": url}
            if alias in why:
                headers["alias-reason"] = f"preferred URL failed: {why[alias]}"
            body = self.archive.read(rec)
            self.archive.put(alias, body, "image", status=rec.status, fetched_at=rec.fetched_at,
                             content_type=rec.content_type, headers=headers, origin=f"alias-of:{url}", **meta)
            self.stats.add("images.aliases")

    # ------------------------------------------------------------------ run
    def progress_line(self, total: int) -> str:
        c = self.stats.c
        pages_failed = sum(v for k, v in c.items() if k.startswith("pages.failed."))
        pages_skipped = sum(v for k, v in c.items() if k.startswith("pages.skipped."))
        img_bad = sum(v for k, v in c.items() if k.startswith(("images.failed.", "images.skipped.")))
        return (f"pages {c['pages.done'] + pages_failed + pages_skipped}/{total} "
                f"(done {c['pages.done']}, failed {pages_failed}, skipped {pages_skipped}) | "
                f"images {c['images.done']} (failed/skipped {img_bad}) | "
                f"{self.client.rate():.2f} req/s | retries {self.client.stats['retries']}")

    def run(self, progress: bool = False) -> dict[str, Any]:
        started, t0 = now_iso(), time.monotonic()
        urls, refused, reused = self.discover()
        for url, reason in refused:
            if url not in self.archive:
                self.archive.put(url, None, "page", status=0, fetched_at=now_iso(), origin="live", error=reason)
            self.stats.add(f"pages.skipped.{reason}")
        stop = threading.Event()
        reporter = None
        if progress:
            reporter = threading.Thread(target=_report, args=(self, len(urls) + len(refused), stop), daemon=True)
            reporter.start()
        pool = ThreadPoolExecutor(max_workers=self.cfg.max_concurrency, thread_name_prefix="crawl")
        try:
            pending = {pool.submit(self.page, d) for d in urls}
            while pending:  # wait in slices so that Ctrl-C is seen at once, not after the last page
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()  # a worker's bug surfaces here
        except BaseException:  # Ctrl-C or a bug: stop soon, keep what is archived (a re-run resumes)
            self._stop.set()
            self.client.cancel()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            stop.set()
            if reporter is not None:
                reporter.join()
            self.archive.compact()
            self.client.close()
        return self.summary(urls, refused, reused, started, time.monotonic() - t0)

    def summary(self, urls: list[Discovered], refused: list[tuple[str, str]], reused: bool,
                started: str, duration: float) -> dict[str, Any]:
        s = self.stats
        pages = {"discovered": len(urls) + len(refused), "done": s.c["pages.done"],
                 "fetched": s.c["pages.fetched"], "from_archive": s.c["pages.from_archive"],
                 "failed": s.by_prefix("pages.failed."), "skipped": s.by_prefix("pages.skipped."),
                 "unparsed": s.by_prefix("pages.unparsed.")}
        ended = pages["done"] + sum(pages["failed"].values()) + sum(pages["skipped"].values())
        images = {k: s.c[f"images.{k}"] for k in ("total", "done", "fetched", "from_archive", "aliases",
                                                   "fallbacks", "duplicate_url", "duplicate_content")}
        images["failed"] = s.by_prefix("images.failed.")
        images["skipped"] = s.by_prefix("images.skipped.")
        totals = {"pages": _totals(pages), "images": _totals(images)}
        # what a re-run fetches again (retry_failed): the failures a later try may cure
        totals["retryable"] = sum(n for part in (pages, images) for reason, n in part["failed"].items()
                                  if reason in TRANSIENT_REASONS)
        complete = ended == pages["discovered"]
        page_recs = [r for r in self.archive.records("page") if r.sha256]
        fetched = sorted(r.fetched_at for r in page_recs if r.fetched_at)
        lastmods = sorted(d.lastmod for d in urls if d.lastmod)
        http = dict(sorted(self.client.stats.items()))
        summary = {
            "source": "live", "base_url": self.cfg.base_url, "user_agent": self.client.user_agent,
            "discovery": {"method": self.cfg.discovery, "reused": reused, "urls": len(urls),
                          "refused": dict(Counter(r for _, r in refused))},
            "started_at": started, "finished_at": now_iso(), "duration_s": round(duration, 3),
            # complete: every discovered URL ended (done, failed or skipped); ok: and none failed
            "complete": complete, "ok": complete and not totals["pages"]["failed"] and not totals["images"]["failed"],
            "totals": totals, "pages": pages, "images": images,
            "http": http, "bytes": http.get("bytes", 0),
            "snapshot": {"first_fetched_at": fetched[0] if fetched else None,
                         "last_fetched_at": fetched[-1] if fetched else None,
                         "lastmod_min": lastmods[0] if lastmods else None,
                         "lastmod_max": lastmods[-1] if lastmods else None,
                         "archived_pages": len(page_recs)},
            "politeness": {"requests_per_second": self.cfg.requests_per_second,
                           "max_concurrency": self.cfg.max_concurrency,
                           "respect_robots": self.cfg.respect_robots,
                           "skip_noai_images": self.cfg.skip_noai_images,
                           "allowed_hosts": list(self.cfg.allowed_hosts)},
        }
        atomic_write_json(self.archive.root / STATE_DIR / "summary.json", summary)
        return summary


def _totals(part: dict[str, Any]) -> dict[str, int]:
    return {"done": part["done"], "failed": sum(part["failed"].values()), "skipped": sum(part["skipped"].values())}


def crawl_problem(summary: dict[str, Any]) -> str | None:
    """The one-line reason a crawl must count as failed, or None.

    The rule: URLs were discovered but not one page could be archived (none done, in this run or an
    earlier one), so nothing can be built from the crawl. A crawl that archived some pages is a
    partial success (``ok`` false, the reasons in the summary; a re-run retries the transient ones);
    a discovery that found nothing (e.g. nothing changed since ``changed_since``) is not a failure.
    """
    pages = summary["pages"]
    if pages["done"] or not pages["discovered"]:
        return None
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted({**pages["failed"], **pages["skipped"]}.items()))
    totals = summary["totals"]["pages"]
    return (f"no page could be archived: of {pages['discovered']} discovered, {totals['failed']} failed and "
            f"{totals['skipped']} skipped ({reasons})")


def _report(crawler: Crawler, total: int, stop: threading.Event) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    if console.is_terminal:
        with console.status(crawler.progress_line(total)) as status:
            while not stop.wait(0.5):
                status.update(crawler.progress_line(total))
    else:  # logs: one line every 10 s
        while not stop.wait(10.0):
            console.print(crawler.progress_line(total), highlight=False, soft_wrap=True)
    console.print(crawler.progress_line(total), highlight=False, soft_wrap=True)


def _step_media(article: Article) -> list[Media]:
    return [m for section in article.sections for step in section.steps for m in step.media]


def _candidates(media: Media) -> list[str]:
    """Preferred first: 728-px image, 460-px image, video still. Never the video clip itself."""
    urls = [media.large_url, media.url if media.kind == "image" else None, media.poster_url]
    out: list[str] = []
    for u in urls:
        if u and u not in out:
            out.append(u)
    return out


def crawl(cfg: CrawlConfig, archive_dir: Path, progress: bool = False) -> dict[str, Any]:
    """Fill ``archive_dir`` from the live site; return the crawl summary (also in crawl/summary.json).

    Raises :class:`~wikihow_tiir.sources.http.CrawlSetupError` when the configuration is not fit
    for a live crawl (no contact address) and :class:`DiscoveryError` when no complete URL list
    can be made; individual URLs never raise, they end as done / failed / skipped with a reason.
    """
    user_agent(cfg)  # refuse before touching the network
    archive = Archive(archive_dir, create=True)
    return Crawler(cfg, archive).run(progress=progress)


