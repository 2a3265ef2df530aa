"""The ``wikihow-tiir release`` command: the release flow (``flows/release.py``) run once, here.

Prefect loads only when the command runs (``wikihow-tiir --help`` stays light).
"""

from __future__ import annotations

import json

import typer


def release(
    repo_id: str = typer.Option(..., "--repo-id", help="Hub dataset repository, ORG/NAME."),
    output: str = typer.Option(..., "--output", "-o", help="Build folder (or fsspec URL, e.g. s3://bucket/builds/v2)."),
    profile: str = typer.Option("live", help="sample | live | vgsi"),
    config: str | None = typer.Option(None, "--config", "-c", help="YAML/JSON build config."),
    set_: list[str] = typer.Option([], "--set", help="Override any setting: --set source.crawl.contact=you@example.org"),
    previous: str = typer.Option("latest", help="The version this one follows: 'latest' (the repository's latest "
                                 "tag), a folder, a URL, ORG/NAME@vX.Y.Z, or 'none'."),
    version: str | None = typer.Option(None, help="X.Y.Z; default: the next one by what changed."),
    approve: bool = typer.Option(False, "--approve", help="Publish without waiting for the human audit."),
    audit_wait: float = typer.Option(0.0, "--audit-wait", help="Seconds to wait for `wikihow-tiir audit --apply`."),
    crawl: bool = typer.Option(True, help="Crawl first (live profile)."),
    incremental: bool = typer.Option(True, help="Crawl only what changed since the archive's last crawl."),
    private: bool = typer.Option(False, "--private", help="Create the repository as private."),
) -> None:
    """Crawl, build against the previous version, validate, wait for the audit (or --approve), publish.

    Needs the Hub (HF_HUB_OFFLINE=0) and a token (HF_TOKEN or `hf auth login`)."""
    from flows.release import release as release_flow

    result = release_flow(repo_id=repo_id, output=output, profile=profile, config=config, overrides=list(set_),
                          previous=None if previous == "none" else previous, version=version, approve=approve,
                          audit_wait_s=audit_wait, crawl=crawl, incremental=incremental, private=private)
    typer.echo(json.dumps(result, indent=2, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    app.command()(release)
