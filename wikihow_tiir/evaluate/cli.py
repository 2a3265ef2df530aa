"""``wikihow-tiir evaluate``: score models on a split and print the comparison table."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def evaluate(
        dataset: str = typer.Option(..., "--dataset", "-d",
                                    help="Dataset folder, or a Hub id ORG/NAME or ORG/NAME@REVISION."),
        model: list[str] = typer.Option(
            [], "--model", "-m",
            help="bm25 | minilm | minilm-captions | fusion-effnet | clip:NAME | mme (the scorer released with the "
                 "dataset) | mme:PATH (repeat for several)."),
        output: Path = typer.Option(..., "--output", "-o", help="Folder for runs, metrics and comparison.md."),
        split: str = typer.Option("test", help="Query split to score."),
        layout: str = typer.Option("ours", help="ours (Parquet configs) | paper (docs.jsonl, queries.jsonl ...)."),
        k: int = typer.Option(100, help="Documents retrieved per query."),
        batch_size: int = typer.Option(32, help="Items per encoding batch."),
        fusion: str = typer.Option("sum", help="clip:* vector fusion: sum | concat | product."),
        fusion_norm: str = typer.Option("before", help="clip:* L2-normalize text/image parts before or after fusing."),
        fusion_images: str = typer.Option("mean", help="clip:* several images: mean of vectors | merged image."),
        captions: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                             help="JSON {image sha256: caption} for minilm-captions."),
        mme_n: int | None = typer.Option(None, help="MME: N x N visual tokens per image (default: a released "
                                                    "scorer's best N, else the paper's N=3 or the nearest the "
                                                    "checkpoint allows)."),
        mme_sweep: bool = typer.Option(False, help="MME: also score every N (table + plot)."),
        faiss: bool = typer.Option(False, help="Search with FAISS (faiss-cpu) instead of the exact blocked search."),
        device: str = typer.Option("cpu", help="torch device for neural models."),
        threads: int | None = typer.Option(None, help="torch CPU threads (default: torch's choice; 1 is often "
                                                      "faster on a busy shared machine)."),
    ) -> None:
        """Score retrieval models on wikiHow-TIIR: TREC runs, MTEB-shaped metrics, comparison table."""
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        from wikihow_tiir.evaluate.baselines import ModelOptions
        from wikihow_tiir.evaluate.clip import ModelUnavailableError
        from wikihow_tiir.evaluate.dataset import DatasetError
        from wikihow_tiir.evaluate.metrics import MetricsInputError
        from wikihow_tiir.evaluate.runner import evaluate_models
        from wikihow_tiir.evaluate.search import EmbeddingError
        from wikihow_tiir.mme.model import CheckpointError
        from wikihow_tiir.mme.scorer import ScorerError

        if faiss:  # fail before any model has encoded anything
            try:
                import faiss as _faiss  # noqa: F401
            except ImportError:
                typer.secho("error: --faiss needs faiss: pip install 'wikihow-tiir[faiss]' (or faiss-cpu)",
                            fg=typer.colors.RED, err=True)
                raise typer.Exit(2) from None
        try:
            opts = ModelOptions(fusion=fusion, fusion_norm=fusion_norm, fusion_images=fusion_images,
                                captions=json.loads(captions.read_text(encoding="utf-8")) if captions else None,
                                mme_n=mme_n, device=device)
            summary = evaluate_models(dataset, model, split=split, output=output, layout=layout, k=k,
                                      batch_size=batch_size, options=opts, use_faiss=faiss, mme_sweep=mme_sweep)
        except (DatasetError, EmbeddingError, MetricsInputError, ModelUnavailableError, ScorerError,
                CheckpointError, ValueError, FileNotFoundError) as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        typer.echo(summary["table"])
        typer.echo(f"written to {output}/ (comparison.md, summary.json, runs/, results/, per_query/)")

    @app.command()
    def score(
        dataset: str = typer.Option(..., "--dataset", "-d",
                                    help="Dataset folder, or a Hub id ORG/NAME or ORG/NAME@REVISION."),
        run: Path = typer.Option(..., "--run", "-r", help="A TREC run file: 'qid Q0 docid rank score tag' "
                                                          "(or 'qid docid score') lines."),
        split: str = typer.Option("test", help="Query split whose qrels score the run."),
        layout: str = typer.Option("ours", help="ours (Parquet configs) | paper (docs.jsonl, queries.jsonl ...)."),
        name: str | None = typer.Option(None, help="The run's name in the table (default: the file name)."),
        output: Path | None = typer.Option(None, "--output", "-o", help="Also write the metrics as JSON here."),
    ) -> None:
        """Score a run file against the dataset's qrels with the paper's metrics, beside the leaderboard."""
        from wikihow_tiir.evaluate.dataset import DatasetError
        from wikihow_tiir.evaluate.metrics import MetricsInputError
        from wikihow_tiir.evaluate.runner import score_run_file
        from wikihow_tiir.io import atomic_write_json

        try:
            summary = score_run_file(dataset, run, split=split, layout=layout, name=name)
        except (DatasetError, MetricsInputError, ValueError, FileNotFoundError) as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        for note in summary["notes"]:
            typer.echo(f"note: {note}", err=True)
        typer.echo(summary["table"])
        if output is not None:
            atomic_write_json(output, {k: v for k, v in summary.items() if k != "table"})
            typer.echo(f"written to {output}")
