"""The `wikihow-tiir` command. Options are parsed here; the work happens in the stages.

Each feature area registers its own commands from `<area>/cli.py` (`register(app)`), so the
command set grows without everyone editing this file. Heavy imports stay inside commands.

An expected failure of any command (a :class:`wikihow_tiir.errors.WikihowTiirError`, an invalid
config, a missing input file: :func:`wikihow_tiir.errors.expected_error_message`) is printed as one
``error: ...`` line with exit status 2; a traceback means a bug (``--debug`` shows it for any error).
"""

from __future__ import annotations

import functools
import importlib
import json
import warnings
from pathlib import Path

import click
import typer
from typer.core import TyperGroup


class _Commands(TyperGroup):
    """Runs a command; turns an expected failure into one ``error:`` line (exit 2) instead of a traceback."""

    def invoke(self, ctx: click.Context):
        with warnings.catch_warnings():  # restores the hook afterwards (the app may run in-process: tests)
            warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            if _debug(ctx):
                raise
            typer.secho("error: interrupted", fg=typer.colors.RED, err=True)
            raise typer.Exit(130) from None
        except Exception as exc:
            from wikihow_tiir.errors import expected_error_message

            message = None if _debug(ctx) else expected_error_message(exc)
            if message is None:
                raise  # a bug (or --debug): the traceback is wanted
            typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
            raise typer.Exit(getattr(exc, "exit_code", 2)) from None


def _show_warning(show, message, category, filename, lineno, file=None, line=None) -> None:
    """A retired setting is one ``warning:`` line; any other warning is shown as Python shows it."""
    from wikihow_tiir.errors import RetiredSettingWarning

    if issubclass(category, RetiredSettingWarning):
        typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)
    else:
        show(message, category, filename, lineno, file, line)


def _debug(ctx: click.Context) -> bool:
    return bool((ctx.find_root().obj or {}).get("debug"))


app = typer.Typer(add_completion=False, no_args_is_help=True, cls=_Commands,
                  help="Build the wikiHow-TIIR benchmark and score retrieval models on it.")


@app.callback()
def _options(ctx: typer.Context,
             debug: bool = typer.Option(False, "--debug", help="Show the full traceback of any error "
                                        "(for bug reports); without it an expected failure is one line.")) -> None:
    ctx.obj = {**(ctx.obj or {}), "debug": debug}

_AREAS = (
    "wikihow_tiir.sources.cli",     # crawl
    "wikihow_tiir.generate.cli",    # generate
    "wikihow_tiir.publish.cli",     # publish, validate, export, import
    "wikihow_tiir.evaluate.cli",    # evaluate
    "wikihow_tiir.mme.cli",         # mme train
    "wikihow_tiir.report.cli",      # report
    "wikihow_tiir.audit.cli",       # audit
    "flows.cli",                    # release
)


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@app.command()
def parse(
    page: Path = typer.Argument(..., exists=True, dir_okay=False, help="A saved wikiHow HTML page."),
    url: str | None = typer.Option(None, help="The page's URL (resolves relative links; default: its canonical link)."),
    indent: int = typer.Option(2, help="JSON indentation (0 for one line)."),
) -> None:
    """Parse one wikiHow page and print the Article as JSON."""
    from wikihow_tiir.parse import ParseError, parse_html

    try:
        article = parse_html(page.read_bytes(), url=url)
    except ParseError as exc:
        _fail(f"{page}: not parsed ({exc.reason}): {exc}")
    typer.echo(json.dumps(article.to_dict(), ensure_ascii=False, indent=indent or None))


@app.command()
def build(
    output: str = typer.Option("data/builds/sample", "--output", "-o",
                               help="Build folder, or an fsspec URL (s3://bucket/builds/v1)."),
    config: Path | None = typer.Option(None, "--config", "-c", exists=True, help="YAML/JSON build config."),
    profile: str = typer.Option("sample", help="sample | live | vgsi"),
    source: str | None = typer.Option(None, help="archive | live | vgsi (overrides the profile)."),
    archive: str | None = typer.Option(None, help="Archive folder or fsspec URL to read (source=archive) or "
                                       "fill (live)."),
    pages_per_shard: int | None = typer.Option(None, help="Pages per work shard."),
    rows_per_file: int | None = typer.Option(None, help="Rows per Parquet file."),
    runner: str | None = typer.Option(None, help="thread | dask"),
    workers: int | None = typer.Option(None, help="Worker count for the task runner."),
    dask_address: str | None = typer.Option(None, help="Existing Dask scheduler, e.g. tcp://host:8786."),
    set_: list[str] = typer.Option([], "--set", help="Override any setting: --set filter.relevance_min=0.3"),
    no_queries: bool = typer.Option(False, help="Stop after the corpus."),
    no_scorer: bool = typer.Option(False, help="Skip the reference scorer (no scorer/ folder, no leaderboard)."),
    force: bool = typer.Option(False, "--force", help="Build into a non-empty folder that is not a wikihow-tiir "
                               "build (its README.md is replaced by the card; other files are left alone)."),
    previous: str | None = typer.Option(None, "--previous", help="The previous version (a folder, URL or "
                                        "ORG/NAME@vX.Y.Z): articles keep their split; the manifest and card "
                                        "say what changed."),
) -> None:
    """Build the dataset (a Prefect flow): corpus, queries, qrels, card, manifest, report.

    Resumable: after Ctrl-C (or a crash) the same command redoes only the unfinished shards and ends
    with the same bytes as an uninterrupted build."""
    from wikihow_tiir import interrupt
    from wikihow_tiir.config import load_config

    # before anything else: Ctrl-C and SIGTERM stop the build within seconds, even when the shell started
    # us with SIGINT ignored (a background job)
    resume = (f"interrupted: finished shards are kept in {output}/work; run the same command again to resume "
              "(it redoes only the unfinished shards)")
    interrupt.install(resume)

    overrides = list(set_)
    for key, value in (("source.kind", source), ("source.archive", archive),
                       ("source.pages_per_shard", pages_per_shard), ("output.rows_per_file", rows_per_file),
                       ("runner.kind", runner), ("runner.workers", workers),
                       ("runner.dask_address", dask_address)):
        if value is not None:
            overrides.append(f"{key}={json.dumps(str(value)) if isinstance(value, Path | str) else value}")
    if no_queries:
        overrides.append("generate.enabled=false")
    if no_scorer:
        overrides.append("scorer.enabled=false")
    try:
        cfg = load_config(config, profile=profile, overrides=overrides)  # a ConfigError is one line
        from flows.build_dataset import build_dataset  # the `flows` package is installed beside this one

        result = build_dataset(cfg, output, force=force, previous=previous)
    except KeyboardInterrupt:
        interrupt.report()
        raise typer.Exit(interrupt.exit_code()) from None
    typer.echo(json.dumps(result, indent=2, ensure_ascii=False))


@app.command()
def stats(dataset: Path = typer.Argument(..., exists=True, file_okay=False, help="A built dataset folder.")) -> None:
    """Print the paper's statistics table for a built dataset."""
    from wikihow_tiir.stats import dataset_stats, render_stats_table

    typer.echo(render_stats_table(dataset_stats(dataset)))


def _register_areas() -> None:
    for name in _AREAS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # area not present in this checkout
                continue
            raise
        module.register(app)


_register_areas()

if __name__ == "__main__":
    app()
