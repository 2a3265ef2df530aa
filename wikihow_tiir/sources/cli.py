"""`wikihow-tiir crawl`: fill an archive from wikiHow without building the dataset."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def crawl(
        archive: Path | None = typer.Option(None, "--archive", "-a",
                                            help="Archive folder to fill (default: source.archive of the config)."),
        config: Path | None = typer.Option(None, "--config", "-c", exists=True, help="YAML/JSON build config."),
        profile: str = typer.Option("live", help="Config profile whose defaults to start from."),
        discovery: str | None = typer.Option(None, help="sitemap | category | urls"),
        url_file: Path | None = typer.Option(None, help="For --discovery urls: one article URL per line."),
        category: list[str] = typer.Option([], "--category", help="For --discovery category (repeatable)."),
        contact: str | None = typer.Option(None, help="E-mail or URL for the User-Agent (required)."),
        max_articles: int | None = typer.Option(None, help="Stop discovery after this many articles."),
        changed_since: str | None = typer.Option(None, help="Sitemap: only articles with a newer lastmod."),
        rate: float | None = typer.Option(None, help="Requests per second per host (default 1)."),
        no_images: bool = typer.Option(False, help="Fetch pages only."),
        set_: list[str] = typer.Option([], "--set", help="Any setting: --set source.crawl.max_retries=3"),
        progress: bool = typer.Option(True, help="Show pages, images, failures and the current rate."),
    ) -> None:
        """Crawl wikiHow politely into an archive (resumable: re-run the same command to continue).

        Prints the summary (JSON) on stdout. Exits 2 with one ``error:`` line when URLs were found but
        not one page could be archived; some failed URLs only give ``"ok": false`` and a warning.
        """
        from wikihow_tiir.config import load_config
        from wikihow_tiir.sources.discovery import DiscoveryError
        from wikihow_tiir.sources.http import CrawlSetupError
        from wikihow_tiir.sources.live import crawl as run_crawl
        from wikihow_tiir.sources.live import crawl_problem

        overrides = list(set_)
        for key, value in (("discovery", discovery), ("url_file", url_file), ("contact", contact),
                           ("max_articles", max_articles), ("changed_since", changed_since),
                           ("requests_per_second", rate)):
            if value is not None:
                text = json.dumps(str(value)) if isinstance(value, (str, Path)) else json.dumps(value)
                overrides.append(f"source.crawl.{key}={text}")
        if category:
            overrides.append(f"source.crawl.categories={json.dumps(category)}")
        if no_images:
            overrides.append("source.crawl.fetch_images=false")
        try:
            cfg = load_config(config, profile=profile, overrides=overrides)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            _fail(str(exc))
        target = archive or cfg.source.archive
        try:
            summary = run_crawl(cfg.source.crawl, target, progress=progress)
        except (CrawlSetupError, DiscoveryError) as exc:
            _fail(str(exc))
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        where = Path(target) / "crawl" / "summary.json"
        problem = crawl_problem(summary)
        if problem:
            _fail(f"{problem}; see {where}")
        if not summary["ok"]:
            t = summary["totals"]
            typer.secho(f"warning: {t['pages']['failed']} page(s) and {t['images']['failed']} image(s) failed "
                        f"({t['retryable']} may succeed on a re-run); see {where}", fg=typer.colors.YELLOW, err=True)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)
