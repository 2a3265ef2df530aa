"""`wikihow-tiir report DATASET`."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def report(dataset: Path = typer.Argument(..., exists=True, file_okay=False, help="A built dataset folder."),
               eval_dir: Path | None = typer.Option(None, "--eval", help="The output folder of `wikihow-tiir "
                                                    "evaluate` to include (default: DATASET/eval).")) -> None:
        """(Re)generate the self-contained HTML build report: DATASET/report/index.html."""
        from wikihow_tiir.report import write_report

        try:
            path = write_report(dataset, eval_dir)
        except FileNotFoundError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from exc
        typer.echo(str(path))
