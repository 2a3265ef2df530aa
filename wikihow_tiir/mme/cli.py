"""`wikihow-tiir mme ...`: train MME and sweep its token budget. Heavy imports stay inside commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer

mme_app = typer.Typer(no_args_is_help=True,
                      help="MME, the Matryoshka Multimodal Embedder: train, sweep N, compare strategies, ablate.")


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
    strategy: str = typer.Option("mean", help="mean (the paper's best) | mrl | rand | dpr (the full grid only: "
                                              "the paper's DPR baseline)."),
    backbone: str = typer.Option("mme-mini", help="mme-mini (offline) or an MLLM hub id / folder "
                                 "(DeepSeek-VL, Qwen2-VL, Qwen2.5-VL)."),
    seed: int = typer.Option(0),
    max_steps: int | None = typer.Option(None, help="Stop after this many optimizer steps (resume later)."),
    batch_size: int = typer.Option(32, help="Pairs per optimizer step; in-batch negatives span all of them."),
    micro_batch_size: int = typer.Option(8, help="Sequences per forward pass (memory only: a gradient cache "
                                                 "keeps the loss the whole batch's)."),
    lr: float = typer.Option(5e-5, help="Learning rate of every pretrained part (AdamW)."),
    projector_lr: float | None = typer.Option(None, help="Projector learning rate (default: 2e-4 for mme-mini's "
                                                         "fresh projector, --lr for a pretrained aligner/merger)."),
    hard_negatives: str = typer.Option("random", help="random (the paper: any non-relevant document) | "
                                                      "minilm-top-k (one of the text baseline's top k)."),
    hard_negative_k: int = typer.Option(5, help="k of --hard-negatives minilm-top-k."),
    train_ns: str | None = typer.Option(None, help="Comma-separated N to train on (default: every divisor of the "
                                                   "grid on a GPU, N <= 3 on CPU)."),
    image_size: int | None = typer.Option(None, help="Image side in pixels (mme-mini default 384: 12x12 grid)."),
    precision: str = typer.Option("auto", help="auto (bf16 autocast on CUDA and on CPUs with native bf16) | "
                                               "bf16 | fp32."),
    threads: int | None = typer.Option(None, help="torch CPU threads (default: torch's choice)."),
    no_resume: bool = typer.Option(False, "--no-resume", help="Start over even if OUTPUT holds a checkpoint."),
) -> None:
    """Train MME contrastively (InfoNCE over the whole batch + one hard negative) and write a checkpoint."""
    from wikihow_tiir.mme.model import CheckpointError
    from wikihow_tiir.mme.train import train

    try:
        result = train(dataset, output, epochs=epochs, strategy=strategy, seed=seed, max_steps=max_steps,
                       backbone=backbone, batch_size=batch_size, micro_batch_size=micro_batch_size, lr=lr,
                       projector_lr=projector_lr, hard_negatives=hard_negatives, hard_negative_k=hard_negative_k,
                       train_ns=_parse_ns(train_ns), image_size=image_size, precision=precision, threads=threads,
                       resume=not no_resume, log=lambda s: typer.echo(s, err=True))
    except (CheckpointError, ValueError) as exc:
        _fail(str(exc))
    result.pop("history", None)
    typer.echo(json.dumps(result, indent=2))


@mme_app.command("compare")
def compare_command(
    dataset: Path = typer.Option(..., "--dataset", "-d", help="A built dataset folder with train and test splits."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder: one checkpoint per strategy + compare.md."),
    seed: int = typer.Option(0, help="One seed for every strategy."),
    epochs: int = typer.Option(3),
    backbone: str = typer.Option("mme-mini"),
    train_ns: str | None = typer.Option(None, help="N for rand/mrl/mean (default as `mme train`); dpr trains the "
                                                   "full grid."),
    strategies: str = typer.Option("rand,mrl,mean,dpr", help="Comma-separated strategies to train and compare."),
    precision: str = typer.Option("auto"),
) -> None:
    """Train Rand, MRL, Mean and DPR with one seed and write one table of their test numbers."""
    from wikihow_tiir.mme.analysis import compare
    from wikihow_tiir.mme.model import CheckpointError
    from wikihow_tiir.retrieval.dataset import DatasetError

    chosen = [s.strip() for s in strategies.split(",") if s.strip()]
    ns = _parse_ns(train_ns)
    try:
        compare(dataset, output, seed=seed, strategies=chosen, epochs=epochs, backbone=backbone, precision=precision,
                log=lambda s: typer.echo(s, err=True), **({"train_ns": ns} if ns else {}))
    except (CheckpointError, DatasetError, ValueError) as exc:
        _fail(str(exc))
    typer.echo((output / "compare.md").read_text(encoding="utf-8"))
    typer.echo(f"written to {output}/ (compare.md, compare.json, one checkpoint per strategy)", err=True)


@mme_app.command("ablate")
def ablate_command(
    checkpoint: str = typer.Argument(..., help="An MME checkpoint or scorer folder."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="A dataset folder or Hub id ORG/NAME[@REVISION]."),
    output: Path = typer.Option(None, "--output", "-o", help="Where the table and plot go (default CHECKPOINT/ablation)."),
    n: int | None = typer.Option(None, help="N x N visual tokens per image (default: the checkpoint's)."),
    seed: int = typer.Option(0, help="Seed of the shuffles."),
    split: str = typer.Option("test", help="Query split to score."),
) -> None:
    """Score shuffled image order, shuffled image positions and both (the paper's Figure 4): table + PNG."""
    from wikihow_tiir.mme.analysis import ablate
    from wikihow_tiir.mme.model import CheckpointError
    from wikihow_tiir.retrieval.dataset import DatasetError

    out = output or Path(checkpoint) / "ablation"
    try:
        ablate(checkpoint, dataset, out, n=n, seed=seed, split=split)
    except (CheckpointError, DatasetError, ValueError) as exc:
        _fail(str(exc))
    typer.echo((out / "ablation.md").read_text(encoding="utf-8"))
    typer.echo(f"written to {out}/ (ablation.md, ablation.json, ablation.png)", err=True)


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
