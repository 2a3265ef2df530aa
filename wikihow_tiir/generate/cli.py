"""`wikihow-tiir generate`: queries for an already built corpus (the build runs the same stages)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _overrides(base_url: str | None, model: str | None, vision_model: str | None, image_model: str | None,
               api_key_env: str | None, concurrency: int | None, seed: int | None) -> list[str]:
    """``--base-url``/``--model`` shortcuts as ``--set`` overrides (write + visualize by default)."""
    out: list[str] = []
    stages = {"write": model, "visualize": model, "caption": vision_model, "render": image_model}
    for stage, name in stages.items():
        if name is None:
            continue
        out += [f"generate.{stage}.kind=openai", f"generate.{stage}.model={json.dumps(name)}"]
        if base_url is not None:
            out.append(f"generate.{stage}.base_url={json.dumps(base_url)}")
        if api_key_env is not None:
            out.append(f"generate.{stage}.api_key_env={json.dumps(api_key_env)}")
        if concurrency is not None:
            out.append(f"generate.{stage}.concurrency={concurrency}")
    if seed is not None:
        out.append(f"seed={seed}")
    return out


def register(app: typer.Typer) -> None:
    @app.command()
    def generate(
        dataset: Path = typer.Argument(..., exists=True, file_okay=False, help="A build folder with corpus/*.parquet."),
        output: Path | None = typer.Option(None, "--output", "-o",
                                           help="Where queries, rejects and stats go (default: <dataset>/work/generate-cli)."),
        config: Path | None = typer.Option(None, "--config", "-c", exists=True, help="YAML/JSON build config."),
        profile: str = typer.Option("sample", help="sample | live | vgsi"),
        set_: list[str] = typer.Option([], "--set", help="Any setting, e.g. --set generate.write.temperature=0.7"),
        base_url: str | None = typer.Option(None, help="OpenAI-compatible server, e.g. http://localhost:8000/v1"),
        model: str | None = typer.Option(None, help="Chat model for the write + visualize stages."),
        vision_model: str | None = typer.Option(None, help="Vision chat model for the caption stage."),
        image_model: str | None = typer.Option(None, help="Text-to-image model for the render stage."),
        api_key_env: str | None = typer.Option(None, help="Environment variable holding the API key."),
        concurrency: int | None = typer.Option(None, help="Parallel requests per stage."),
        seed: int | None = typer.Option(None, help="Generation seed (default: the config's)."),
        limit: int | None = typer.Option(None, help="Only the first N documents (by id)."),
    ) -> None:
        """Generate interleaved queries for a built corpus: caption, write, visualize, render."""
        from wikihow_tiir.build import read_contexts
        from wikihow_tiir.config import load_config
        from wikihow_tiir.generate import ImagePool, generate_queries, merge_stats, prompt_manifest
        from wikihow_tiir.io import atomic_write_json, write_jsonl
        from wikihow_tiir.model import document_from_row, query_to_row
        from wikihow_tiir.publish.parquet import read_rows, read_rows_where, write_parquet

        try:
            cfg = load_config(config, profile=profile, overrides=[
                *set_, *_overrides(base_url, model, vision_model, image_model, api_key_env, concurrency, seed)])
        except ValueError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        files = sorted((dataset / "corpus").glob("corpus-*.parquet"))
        if not files:
            typer.secho(f"error: {dataset}/corpus has no corpus-*.parquet files", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
        ids = sorted(r["id"] for r in read_rows(files, columns=["id"]))
        ids = ids[:limit] if limit is not None else ids
        out = output or dataset / "work" / "generate-cli"
        work = out / "work"
        # the pool holds metadata only; each shard reads its own documents' pictures
        pool = ImagePool.from_corpus_files(files, vector_cache=work)
        size = cfg.generate.documents_per_shard
        all_stats, rejects, n_queries = [], [], 0
        for i in range(0, len(ids), size):
            shard = f"shard-{i // size:05d}"
            rows = {r["id"]: r for r in read_rows_where(files, "id", ids[i:i + size])}
            shard_docs = [document_from_row(rows[d]) for d in ids[i:i + size]]
            try:
                result = generate_queries(shard_docs, pool, cfg.generate, seed=cfg.seed, work_dir=work,
                                          shard_id=shard, contexts=read_contexts(dataset, ids[i:i + size]))
            except ValueError as exc:  # a backend that cannot start (e.g. a model without an endpoint)
                typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
                raise typer.Exit(2) from None
            write_parquet(out / f"queries-{shard}.parquet", [query_to_row(q) for q in result.queries], "queries")
            rejects += [r.to_dict() for r in result.rejects]
            all_stats.append(result.stats)
            n_queries += len(result.queries)
        write_jsonl(out / "rejects.jsonl", rejects)
        stats = {"prompts": prompt_manifest(), "stats": merge_stats(all_stats), "seed": cfg.seed}
        atomic_write_json(out / "stats.json", stats)
        typer.echo(json.dumps({"documents": len(ids), "queries": n_queries, "rejected": len(rejects),
                               "output": str(out), "rejects_by_reason": stats["stats"]["rejects_by_reason"]},
                              indent=2, ensure_ascii=False))
