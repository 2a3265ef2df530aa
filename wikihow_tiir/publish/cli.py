"""Commands of the publishing area: ``validate``, ``card``, ``export``, ``import``, ``publish``."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def validate(
    dataset: Path = typer.Argument(..., help="A built dataset folder."),
    no_load: bool = typer.Option(False, "--no-load", help="Skip the load_dataset read-back (faster)."),
) -> None:
    """Check a built dataset (card, manifest hashes, ids, qrels, images, load_dataset read-back)."""
    from wikihow_tiir.publish.validate import validate_dataset

    problems = validate_dataset(dataset, check_load=not no_load)
    if problems:
        typer.echo(f"{dataset}: {len(problems)} problem(s)", err=True)
        for p in problems:
            typer.echo(f"  - {p}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{dataset}: valid")


def card(
    dataset: Path = typer.Argument(..., exists=True, file_okay=False, help="A built dataset folder."),
    write: bool = typer.Option(False, "--write", help="Write README.md instead of printing it."),
) -> None:
    """Render the dataset card from manifest.json."""
    from wikihow_tiir.io import atomic_write_text
    from wikihow_tiir.layout import card_path, manifest_path
    from wikihow_tiir.publish.card import render_card

    try:
        manifest = json.loads(manifest_path(dataset).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _fail(f"{manifest_path(dataset)}: {exc}")
    text = render_card(manifest)
    if write:
        atomic_write_text(card_path(dataset), text)
        typer.echo(f"wrote {card_path(dataset)}")
    else:
        typer.echo(text, nl=False)


def export(
    dataset: Path = typer.Argument(..., exists=True, file_okay=False, help="A built dataset folder."),
    layout: str = typer.Option("paper", help="Target layout; 'paper' = the vec-ai/wikiHow-TIIR repository's."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder to write."),
    split: str = typer.Option("test", help="Which query split to export."),
) -> None:
    """Export a built dataset to the paper repository's layout (docs/queries/qrels.jsonl + images)."""
    from wikihow_tiir.publish.paper_layout import write_paper_layout

    if layout != "paper":
        _fail(f"unknown layout {layout!r}; only 'paper' is supported")
    try:
        summary = write_paper_layout(dataset, output, split=split)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))


def import_(
    source: Path = typer.Argument(..., exists=True, file_okay=False,
                                  help="A folder in the paper's layout (docs.jsonl ...), or a clone with data/."),
    output: Path = typer.Option(..., "--output", "-o", help="Dataset folder to write (our layout)."),
    split: str = typer.Option("test", help="Split name to give the imported queries."),
) -> None:
    """Import the paper repository's layout (e.g. the vec-ai/wikiHow-TIIR release) into our layout."""
    from wikihow_tiir.publish.paper_layout import import_paper_layout

    try:
        summary = import_paper_layout(source, output, split=split)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))


def publish(
    dataset: Path = typer.Argument(..., help="A built dataset folder."),
    repo_id: str = typer.Option(..., "--repo-id", help="Hub dataset repository, ORG/NAME."),
    version: str = typer.Option(..., "--version", help="Release version X.Y.Z (tagged vX.Y.Z)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the plan; no network."),
    private: bool = typer.Option(False, "--private", help="Create the repository as private."),
) -> None:
    """Validate, upload (resumable) and tag a dataset version on the Hugging Face Hub.

    The token comes from HF_TOKEN or `hf auth login`; it is never printed.
    """
    from wikihow_tiir.publish.hub import PublishError, publish_dataset

    try:
        result = publish_dataset(dataset, repo_id, version, dry_run=dry_run, private=private)
    except PublishError as exc:
        _fail(str(exc), code=1)
    if dry_run:
        typer.echo(f"DRY RUN: nothing sent. Would publish {result['repo_id']} {result['tag']} "
                   f"(commit message {result['commit_message']!r}):")
        for f in result["files"]:
            typer.echo(f"  {f['path']:<60} {_human(f['bytes']):>10}")
        typer.echo(f"  {len(result['files'])} files, {_human(result['total_bytes'])} in all\n")
        typer.echo("----- dataset card (README.md) -----")
        typer.echo(result["card"], nl=False)
        return
    typer.echo(f"published {result['repo_id']} {result['tag']} at commit {result['commit']}")
    typer.echo(f"pin it with: {result['load']}")


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(card)
    app.command()(export)
    app.command(name="import")(import_)
    app.command()(publish)
