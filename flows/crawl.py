"""The scheduled crawl (a Prefect flow a maintainer deploys, see ``prefect.yaml``): fill the live
profile's archive with what changed on wikiHow since its last crawl.

Incremental by default: the sitemap's ``lastmod`` of each article is compared with the day the
archive's last crawl started (``<archive>/crawl/summary.json``), so only new and changed articles
are fetched (``source.crawl.changed_since``; the crawler also re-fetches an archived page whose
``lastmod`` is newer than its copy). The archive may be an fsspec URL: it is crawled in a local copy
and uploaded (:mod:`wikihow_tiir.remote`).

Importing this module loads Prefect (with the offline defaults of ``flows.build_dataset`` set first):
Prefect's deployments import it to find the flow; the ``wikihow-tiir`` command only when it runs one.
"""

from __future__ import annotations

import json
from typing import Any

from flows.build_dataset import use_offline_defaults

use_offline_defaults()

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from wikihow_tiir import remote  # noqa: E402
from wikihow_tiir.config import BuildConfig, load_config  # noqa: E402


def last_crawl_started(archive: Any) -> str | None:
    """The day (``YYYY-MM-DD``) the archive's last crawl started, or None (no crawl recorded yet)."""
    from pathlib import Path

    from wikihow_tiir.sources.live import STATE_DIR

    rel = f"{STATE_DIR}/summary.json"
    try:
        if remote.is_remote(archive):
            raw = remote.RemoteFolder(str(archive)).read_bytes(rel)
        else:
            raw = (Path(archive) / rel).read_bytes()
        started = json.loads(raw.decode("utf-8")).get("started_at")
    except (OSError, ValueError, AttributeError):
        return None
    return str(started)[:10] if started else None


def crawl_config(profile: str = "live", config: str | None = None, overrides: list[str] | None = None,
                 archive: str | None = None, incremental: bool = True) -> BuildConfig:
    """The crawl's settings: the profile, config file and ``--set`` overrides, then (``incremental``) the
    sitemap cut-off from the archive's last crawl unless ``source.crawl.changed_since`` is set."""
    items = list(overrides or [])
    if archive:
        items.append(f"source.archive={json.dumps(str(archive))}")
    cfg = load_config(config, profile=profile, overrides=items)
    if incremental and cfg.source.crawl.changed_since is None:
        since = last_crawl_started(cfg.source.archive)
        if since:
            cfg.source.crawl.changed_since = since
    return cfg


# a crawl resumes where it stopped (the archive is its state), so a retry is safe
@task(name="crawl", task_run_name="crawl-{archive}", retries=2, retry_delay_seconds=60, cache_policy=NO_CACHE)
def crawl_task(cfg_json: dict[str, Any], archive: str) -> dict[str, Any]:
    from wikihow_tiir.build import acquire
    from wikihow_tiir.sources.live import crawl_problem

    cfg = BuildConfig.model_validate(cfg_json)
    if cfg.source.kind != "live":
        return {}
    summary = acquire(cfg)
    problem = crawl_problem(summary)
    if problem:
        from wikihow_tiir.build import BuildError

        raise BuildError(problem, "crawl-failed")
    return summary


def crawl_artifact(summary: dict[str, Any], since: str | None) -> None:
    from prefect.artifacts import create_markdown_artifact

    totals = summary.get("totals") or {}
    pages, images = totals.get("pages") or {}, totals.get("images") or {}
    create_markdown_artifact(key="crawl", description="The crawl's totals", markdown="\n".join([
        "# Crawl", "",
        f"- changed since: {since or '(everything: first crawl)'}",
        f"- discovered: {(summary.get('discovery') or {}).get('urls', 0)} URLs",
        f"- pages: {pages.get('done', 0)} done, {pages.get('failed', 0)} failed, {pages.get('skipped', 0)} skipped",
        f"- images: {images.get('done', 0)} done, {images.get('failed', 0)} failed, {images.get('skipped', 0)} skipped",
        f"- archived pages: {(summary.get('snapshot') or {}).get('archived_pages', 0)}"]))


@flow(name="crawl", flow_run_name="crawl-{profile}", log_prints=True)
def crawl(profile: str = "live", config: str | None = None, overrides: list[str] | None = None,
          archive: str | None = None, incremental: bool = True) -> dict[str, Any]:
    """Crawl the profile's archive (``archive``: another folder or URL); ``incremental``: only articles whose
    sitemap ``lastmod`` is newer than the archive's last crawl."""
    cfg = crawl_config(profile, config, overrides, archive, incremental)
    since = cfg.source.crawl.changed_since
    summary = crawl_task(cfg.model_dump(mode="json"), remote.describe(cfg.source.archive))
    if summary:
        crawl_artifact(summary, since)
    return {"archive": remote.describe(cfg.source.archive), "changed_since": since,
            "complete": summary.get("complete"), "totals": summary.get("totals")}
