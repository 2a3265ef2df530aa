"""`wikihow-tiir audit DATASET --output review.html` / `--apply audit.jsonl`."""

from __future__ import annotations

from pathlib import Path

import typer


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    @app.command()
    def audit(
        dataset: Path = typer.Argument(..., help="A built dataset folder."),
        output: Path | None = typer.Option(None, "--output", "-o",
                                           help="Write the review page (self-contained HTML) here."),
        apply: list[Path] = typer.Option([], "--apply",
                                         help="Apply a decision file exported from the page (repeatable)."),
        offset: int = typer.Option(0, help="Review page: the first test pair to show (pairs are sorted by id)."),
        limit: int = typer.Option(250, help="Review page: how many pairs to show."),
    ) -> None:
        """Human audit of the test split: a review page to keep/drop each pair, and applying the decisions."""
        from wikihow_tiir.audit import AuditError, apply_audit, audit_sentence, write_review_page

        if (output is None) == (not apply):
            _fail("give either --output review.html (write the review page) or --apply audit.jsonl "
                  "(apply decisions), not both")
        try:
            if output is not None:
                if output.is_dir():
                    _fail(f"{output} is a folder; --output takes the page's file name, e.g. review.html")
                page = write_review_page(dataset, output, offset=offset, limit=limit)
                typer.echo(f"wrote {page['output']}: pairs {page['first']}-{page['last']} of {page['test_pairs']} "
                           f"test pairs (dataset {page['dataset']})")
                if page["last"] < page["test_pairs"]:
                    typer.echo(f"next slice: wikihow-tiir audit {dataset} --output review-2.html "
                               f"--offset {page['last']} --limit {limit}")
                return
            summary = apply_audit(dataset, apply)
        except AuditError as exc:
            _fail(str(exc))
        typer.echo(audit_sentence(summary))
        dec = summary["decisions"]
        reasons = ", ".join(f"{n} {r}" for r, n in summary["reasons"].items()) or "none"
        typer.echo(f"decisions: {dec.get('keep', 0)} keep, {dec.get('drop', 0)} drop (reasons: {reasons}); "
                   f"reviewers: {', '.join(summary['reviewers']) or '-'}")
        if summary["stale"]:
            typer.echo(f"{summary['stale']} stale decision(s) (on pairs this build no longer has) are kept aside "
                       "in audit/stale.jsonl")
        if not summary["card_updated"]:
            typer.echo("README.md is maintained by hand (no generated marker): add the audit sentence yourself")
        typer.echo("updated: " + ", ".join(summary["written"]))
