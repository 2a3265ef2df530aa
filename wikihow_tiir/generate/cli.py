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
        dataset: Path = typer.Argument(..., exists=True, file_okay=False,
                                       help="A dataset folder with a corpus (corpus/*.parquet)."),
        output: Path | None = typer.Option(None, "--output", "-o",
                                           help="Where query shards, rejects and stats go (default: "
                                                "<dataset>/work/generate-cli)."),
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
        """Generate interleaved queries for a built corpus: caption, write, visualize, render.

        Runs the build's query shards (``generate.documents_per_shard`` documents each) into the output
        folder, so a re-run (after Ctrl-C, a crash or with more documents) redoes only unfinished shards."""
        from wikihow_tiir import layout
        from wikihow_tiir.build import plan_queries, query_shard_rejects, run_query_shard
        from wikihow_tiir.config import load_config
        from wikihow_tiir.generate import merge_stats, prompt_manifest
        from wikihow_tiir.io import atomic_write_json, write_jsonl

        try:
            cfg = load_config(config, profile=profile, overrides=[
                *set_, *_overrides(base_url, model, vision_model, image_model, api_key_env, concurrency, seed)])
        except ValueError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        if not layout.corpus_files(dataset):
            typer.secho(f"error: {layout.config_dir(dataset, 'corpus')} has no Parquet files (a built corpus)",
                        fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
        out = output or layout.generate_cli_dir(dataset)
        try:
            specs = plan_queries(cfg, out, corpus_root=dataset, limit=limit)
            shard_stats = [run_query_shard(cfg, out, spec, corpus_root=dataset) for spec in specs]
        except ValueError as exc:  # a backend that cannot start (e.g. a model without an endpoint)
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        rejects = list(query_shard_rejects(out, specs))
        write_jsonl(layout.generate_cli_rejects(out), rejects)
        stats = {"prompts": prompt_manifest(), "stats": merge_stats([s["generation"] for s in shard_stats]),
                 "seed": cfg.seed}
        atomic_write_json(layout.generate_cli_stats(out), stats)
        typer.echo(json.dumps({"documents": sum(len(s.keys) for s in specs),
                               "queries": sum(s["queries"] for s in shard_stats), "rejected": len(rejects),
                               "output": str(out), "shards": [str(layout.shard_file(out, "queries", s.name, "parquet"))
                                                              for s in specs],
                               "rejects_by_reason": stats["stats"]["rejects_by_reason"]},
                              indent=2, ensure_ascii=False))
