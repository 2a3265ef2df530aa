"""``wikihow-tiir evaluate`` (score models on a split, print the comparison table), ``caption`` (captions
for ``--adapt captions``) and ``clip train`` (fine-tune a CLIP model for Vector-Fusion)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _fail(exc: BaseException) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    @app.command()
    def evaluate(
        dataset: str = typer.Option(..., "--dataset", "-d",
                                    help="Dataset folder, or a Hub id ORG/NAME or ORG/NAME@REVISION."),
        model: list[str] = typer.Option(
            [], "--model", "-m",
            help="bm25 | minilm | minilm-captions | fusion-effnet | mme (the scorer released with the dataset) | "
                 "mme:PATH | gme:ID | e5v:ID | st:ID | "
                 "jina-clip:ID | clip:ID (repeat for several)."),
        output: Path = typer.Option(..., "--output", "-o", help="Folder for runs, metrics and comparison.md."),
        split: str = typer.Option("test", help="Query split to score."),
        layout: str = typer.Option("ours", help="ours (Parquet configs) | paper (docs.jsonl, queries.jsonl ...)."),
        k: int = typer.Option(100, help="Documents retrieved per query."),
        batch_size: int = typer.Option(32, help="Items per encoding batch."),
        fusion: str = typer.Option("NAddNorm", help="Vector fusion, the paper's names: addNorm | concatNorm | "
                                   "productNorm | NAddNorm | NCNorm | NPNorm (N: normalize both parts first)."),
        fusion_images: str = typer.Option("mean", help="Vector fusion, several images: mean of the per-image unit "
                                                      "vectors | merged (one image, side by side)."),
        captions: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                             help="Captions file from `wikihow-tiir caption` (or JSON {image sha256: "
                                                  "caption}) for --adapt captions and minilm-captions."),
        adapt: list[str] = typer.Option([], "--adapt", help="Families: text | captions | merged-image | fusion | "
                                        "screenshot | all (repeat for several; default: the family's own)."),
        perturb: list[str] = typer.Option([], "--perturb", help="shuffle-order | shuffle-positions | both | all "
                                          "(seeded; repeat for several; all = none and each)."),
        seed: int = typer.Option(0, help="Seed of --perturb."),
        paper_table: bool = typer.Option(False, "--paper-table", help="Add the paper's Table 2 beside our rows to "
                                         "comparison.md (and print it)."),
        dtype: str = typer.Option("auto", help="Families: auto (the paper's dtype on CUDA, float32 on CPU) | "
                                               "float32 | float16 | bfloat16."),
        max_length: int | None = typer.Option(None, help="st: token limit (the paper's --maxtoken); gme: 1800."),
        query_prefix: str | None = typer.Option(None, help="st: query prefix instead of the paper's instruction."),
        document_prefix: str | None = typer.Option(None, help="st: document prefix instead of the paper's."),
        trust_remote_code: bool = typer.Option(False, "--trust-remote-code",
                                               help="st: allow code that ships with the weights (GTE-large-v1.5)."),
        screenshot_font: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                                    help="--adapt screenshot: a font with the items' script."),
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
        from wikihow_tiir.errors import WikihowTiirError
        from wikihow_tiir.evaluate.runner import evaluate_models
        from wikihow_tiir.retrieval.registry import ModelOptions

        if faiss:  # fail before any model has encoded anything
            try:
                import faiss as _faiss  # noqa: F401
            except ImportError:
                typer.secho("error: --faiss needs faiss: pip install 'wikihow-tiir[faiss]' (or faiss-cpu)",
                            fg=typer.colors.RED, err=True)
                raise typer.Exit(2) from None
        try:
            from wikihow_tiir.evaluate.captions import read_captions

            caps, cap_provenance = read_captions(captions) if captions else (None, None)
            opts = ModelOptions(fusion=fusion, fusion_images=fusion_images, captions=caps, mme_n=mme_n,
                                device=device, dtype=dtype, batch_size=batch_size, max_length=max_length,
                                query_prefix=query_prefix, document_prefix=document_prefix,
                                trust_remote_code=trust_remote_code, screenshot_font=screenshot_font)
            summary = evaluate_models(dataset, model, split=split, output=output, layout=layout, k=k,
                                      batch_size=batch_size, options=opts, use_faiss=faiss, mme_sweep=mme_sweep,
                                      adapts=adapt or None, perturbs=perturb or None, seed=seed,
                                      paper_table=paper_table, captions_provenance=cap_provenance)
        except (WikihowTiirError, ValueError, FileNotFoundError) as exc:  # bad data, models, options
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        typer.echo(summary["table"])
        more = ", ablations.md" if summary.get("ablations") else ""
        typer.echo(f"written to {output}/ (comparison.md{more}, summary.json, runs/, results/, per_query/)")

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
        from wikihow_tiir.errors import WikihowTiirError
        from wikihow_tiir.evaluate.runner import score_run_file
        from wikihow_tiir.io import atomic_write_json

        try:
            summary = score_run_file(dataset, run, split=split, layout=layout, name=name)
        except (WikihowTiirError, ValueError, FileNotFoundError) as exc:  # bad data, run file, options
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        for note in summary["notes"]:
            typer.echo(f"note: {note}", err=True)
        typer.echo(summary["table"])
        if output is not None:
            atomic_write_json(output, {k: v for k, v in summary.items() if k != "table"})
            typer.echo(f"written to {output}")

    @app.command()
    def caption(
        dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset folder, or a Hub id ORG/NAME[@REVISION]."),
        output: Path = typer.Option(..., "--output", "-o", help="Captions file to write (JSON; resumed when "
                                                                "present)."),
        base_url: str = typer.Option(..., help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1."),
        model: str = typer.Option(..., "--model", "-m", help="Vision chat model served there."),
        split: list[str] = typer.Option(["test"], help="Query splits whose images are captioned too "
                                                       "(the corpus always is)."),
        layout: str = typer.Option("ours", help="ours | paper."),
        api_key_env: str = typer.Option("OPENAI_API_KEY", help="Environment variable holding the key."),
        concurrency: int = typer.Option(8, help="Requests in flight."),
        timeout: float = typer.Option(60.0, help="Seconds per request."),
        retries: int = typer.Option(3, help="Retries of a failed request (5xx, timeouts, bad bodies)."),
        backoff: float = typer.Option(1.0, help="First retry delay in seconds (doubles)."),
        max_tokens: int = typer.Option(128, help="Longest caption, in tokens."),
        temperature: float = typer.Option(0.0),
        seed: int = typer.Option(0),
        cache: Path | None = typer.Option(None, help="SQLite request cache (default: OUTPUT.cache.sqlite)."),
    ) -> None:
        """Caption every image of a built dataset (corpus + query splits) for --adapt captions."""
        from wikihow_tiir.config import BackendConfig
        from wikihow_tiir.evaluate.captions import caption_dataset

        cfg = BackendConfig(kind="openai", base_url=base_url, model=model, api_key_env=api_key_env,
                            concurrency=concurrency, timeout_s=timeout, max_tokens=max_tokens,
                            temperature=temperature, retries=retries, backoff_s=backoff)
        try:
            summary = caption_dataset(dataset, output, cfg, splits=split, layout=layout, seed=seed, cache_path=cache)
        except (ValueError, FileNotFoundError) as exc:  # DatasetError: a dataset that cannot be read
            _fail(exc)
        typer.echo(json.dumps(summary, sort_keys=True))
        typer.echo(f"captions written to {output}")

    clip_app = typer.Typer(no_args_is_help=True, help="CLIP models for Vector-Fusion.")
    app.add_typer(clip_app, name="clip")

    @clip_app.command("train")
    def clip_train(
        dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset folder (its train split is used)."),
        model: str = typer.Option(..., "--model", "-m", help="CLIP model to start from: Hub id or folder "
                                                            "(the paper: openai/clip-vit-large-patch14)."),
        output: Path = typer.Option(..., "--output", "-o", help="Folder for the fine-tuned model."),
        split: str = typer.Option("train", help="Query split to train on."),
        fusion: str = typer.Option("NAddNorm", help="Fusion the model is trained (and scored) with."),
        fusion_images: str = typer.Option("mean", help="mean | merged."),
        epochs: int = typer.Option(3), batch_size: int = typer.Option(32), lr: float = typer.Option(5e-5),
        temperature: float = typer.Option(0.05, help="InfoNCE temperature."),
        warmup: float = typer.Option(0.1, help="Share of the steps with a linear learning-rate warm-up."),
        hard_negatives: int = typer.Option(1, help="Random other documents per query, besides the batch."),
        max_steps: int | None = typer.Option(None, help="Stop after this many optimizer steps."),
        seed: int = typer.Option(0),
        device: str = typer.Option("auto", help="auto (CUDA when present) | cpu | cuda."),
    ) -> None:
        """Fine-tune a CLIP model contrastively on interleaved queries and documents (Table 2 row 9)."""
        from wikihow_tiir.evaluate.clip_train import ClipTrainConfig, train_clip

        cfg = ClipTrainConfig(fusion=fusion, fusion_images=fusion_images, epochs=epochs, batch_size=batch_size,
                              lr=lr, temperature=temperature, warmup=warmup, hard_negatives=hard_negatives,
                              max_steps=max_steps, seed=seed, device=device)
        from wikihow_tiir.evaluate.clip import ModelUnavailableError

        try:
            result = train_clip(dataset, model, output, cfg, split=split, log=typer.echo)
        except (ValueError, FileNotFoundError, ModelUnavailableError) as exc:
            _fail(exc)
        typer.echo(json.dumps({k: v for k, v in result.items() if k != "losses"}, sort_keys=True))
        typer.echo(f"fine-tuned model in {output}; score it: wikihow-tiir evaluate --model clip:{output} "
                   f"--fusion {fusion} --fusion-images {fusion_images}")
