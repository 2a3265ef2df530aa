"""`wikihow-tiir mme ...`: train MME and sweep its token budget. Heavy imports stay inside commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer

mme_app = typer.Typer(no_args_is_help=True, help="MME, the Matryoshka Multimodal Embedder: train and sweep N.")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _parse_ns(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        _fail(f"--train-ns wants comma-separated integers, got {text!r}")
    return None


@mme_app.command("train")
def train_command(
    dataset: Path = typer.Option(..., "--dataset", "-d", help="A built dataset folder (corpus/, queries/, qrels/)."),
    output: Path = typer.Option(..., "--output", "-o", help="Checkpoint folder to write (resumed if present)."),
    epochs: int = typer.Option(3, help="Epochs over the training queries (the paper: 3)."),
    strategy: str = typer.Option("mean", help="Matryoshka strategy: mean (the paper's best) | mrl | rand."),
    backbone: str = typer.Option("mme-mini", help="mme-mini (offline) or an MLLM hub id / folder "
                                 "(DeepSeek-VL, Qwen2-VL, Qwen2.5-VL)."),
    seed: int = typer.Option(0),
    max_steps: int | None = typer.Option(None, help="Stop after this many optimizer steps (resume later)."),
    batch_size: int = typer.Option(32, help="Effective batch (pairs per optimizer step)."),
    micro_batch_size: int = typer.Option(8, help="Pairs per forward pass; gradients accumulate to the batch."),
    lr: float = typer.Option(5e-5, help="Language-model learning rate (AdamW)."),
    projector_lr: float = typer.Option(2e-4, help="Projector learning rate (it starts from random; 1e-3 can collapse)."),
    train_ns: str | None = typer.Option(None, help="Comma-separated N to train on (default: every divisor of the grid on a GPU, N <= 3 on CPU)."),
    image_size: int | None = typer.Option(None, help="Image side in pixels (mme-mini default 384: 12x12 grid)."),
    no_resume: bool = typer.Option(False, "--no-resume", help="Start over even if OUTPUT holds a checkpoint."),
) -> None:
    """Train MME contrastively (InfoNCE, in-batch + one hard negative) and write a checkpoint."""
    from wikihow_tiir.mme.model import CheckpointError
    from wikihow_tiir.mme.train import train

    try:
        result = train(dataset, output, epochs=epochs, strategy=strategy, seed=seed, max_steps=max_steps,
                       backbone=backbone, batch_size=batch_size, micro_batch_size=micro_batch_size, lr=lr,
                       projector_lr=projector_lr, train_ns=_parse_ns(train_ns), image_size=image_size,
                       resume=not no_resume, log=lambda s: typer.echo(s, err=True))
    except (CheckpointError, ValueError) as exc:
        _fail(str(exc))
    result.pop("history", None)
    typer.echo(json.dumps(result, indent=2))


@mme_app.command("sweep")
def sweep_command(
    checkpoint: Path = typer.Argument(..., help="An MME checkpoint folder."),
    dataset: Path = typer.Option(..., "--dataset", "-d", help="A built dataset folder."),
    split: str = typer.Option("test", help="Query split to score."),
    output: Path = typer.Option(None, "--output", "-o", help="Where the table and plot go (default CHECKPOINT/sweep)."),
) -> None:
    """Score the checkpoint at every N: nDCG@10 / R@5 and encoding cost against visual tokens per image."""
    from wikihow_tiir.mme.model import CheckpointError
    from wikihow_tiir.mme.retrieval import sweep
    from wikihow_tiir.retrieval.dataset import DatasetError, load_split

    try:
        ev = load_split(dataset, split)
        result = sweep(ev.documents, ev.queries, ev.qrels, str(checkpoint), output or checkpoint / "sweep")
    except (CheckpointError, DatasetError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps(result, indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(mme_app, name="mme")
