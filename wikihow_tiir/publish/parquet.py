"""Parquet shards in the dataset layout of DESIGN.md §5, with `datasets` features embedded.

Files are written with pyarrow directly (not `Dataset.to_parquet`) so that bytes are fully
determined by the rows: same rows -> same file. The `huggingface` schema metadata makes
`datasets.load_dataset(<dir>, "<config>")` decode the image columns without extra arguments.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from wikihow_tiir.io import atomic_write_bytes
from wikihow_tiir.model import arrow_schema, with_derived_columns

ROW_GROUP_SIZE = 100  # the Hub's recommendation for image rows


def table_from_rows(rows: Sequence[dict[str, Any]], config: str) -> pa.Table:
    # derived columns (``text``) are recomputed here, the one place rows become files
    return pa.Table.from_pylist([with_derived_columns(r, config) for r in rows], schema=arrow_schema(config))


def parquet_bytes(rows: Sequence[dict[str, Any]], config: str, row_group_size: int = ROW_GROUP_SIZE) -> bytes:
    table = table_from_rows(rows, config)
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size, compression="zstd",
                   write_statistics=True, use_dictionary=True)
    return buf.getvalue()


def write_parquet(path: str | Path, rows: Sequence[dict[str, Any]], config: str,
                  row_group_size: int = ROW_GROUP_SIZE) -> Path:
    """Atomically write one Parquet file (temp + rename)."""
    path = Path(path)
    atomic_write_bytes(path, parquet_bytes(rows, config, row_group_size))
    return path


def shard_name(split: str, index: int, total: int) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


def write_sharded(out_dir: str | Path, rows: Sequence[dict[str, Any]], config: str, split: str,
                  rows_per_shard: int = 1000) -> list[Path]:
    """Write ``rows`` as ``<out_dir>/<split>-0000i-of-0000N.parquet``; returns the paths.

    Stale shards of the same split with another total are removed so a re-run never leaves a
    mixture of old and new shard sets behind. An empty ``rows`` writes nothing.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = max(1, math.ceil(len(rows) / rows_per_shard)) if rows else 0
    keep = {shard_name(split, i, total) for i in range(total)}
    for old in out_dir.glob(f"{split}-*-of-*.parquet"):
        if old.name not in keep:
            old.unlink()
    paths = []
    for i in range(total):
        chunk = rows[i * rows_per_shard:(i + 1) * rows_per_shard]
        paths.append(write_parquet(out_dir / shard_name(split, i, total), chunk, config))
    return paths


def read_rows(paths: Iterable[str | Path], columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows of Parquet files, in file order, as plain Python dicts (images as {bytes, path})."""
    for p in sorted(Path(x) for x in paths):
        pf = pq.ParquetFile(p)
        for rg in range(pf.num_row_groups):
            yield from pf.read_row_group(rg, columns=columns).to_pylist()


def read_rows_where(paths: Iterable[str | Path], column: str, values: Iterable[str],
                    columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows whose ``column`` is one of ``values``, in file order: only that column is read for the other
    rows (so picking a few documents out of a large corpus never decodes its other images)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    value_set = pa.array(sorted(set(values)), type=pa.string())
    if not len(value_set):
        return
    for p in sorted(Path(x) for x in paths):
        pf = pq.ParquetFile(p)
        for rg in range(pf.num_row_groups):
            mask = pc.is_in(pf.read_row_group(rg, columns=[column]).column(column), value_set=value_set)
            if pc.any(mask).as_py():
                yield from pf.read_row_group(rg, columns=columns).filter(mask).to_pylist()


def read_rows_without(paths: Iterable[str | Path], skip: str = "images") -> Iterator[dict[str, Any]]:
    """Rows without one (large) column, which comes back as a list of ``None`` as long as ``texts``."""
    paths = sorted(Path(x) for x in paths)
    if not paths:
        return
    names = [n for n in pq.ParquetFile(paths[0]).schema_arrow.names if n != skip]
    for row in read_rows(paths, columns=names):
        row[skip] = [None] * len(row.get("texts") or [])
        yield row


def split_files(dataset_dir: str | Path, config: str, split: str) -> list[Path]:
    return sorted((Path(dataset_dir) / config).glob(f"{split}-*-of-*.parquet"))


def write_sharded_iter(out_dir: str | Path, rows: Iterable[dict[str, Any]], total: int, config: str, split: str,
                       rows_per_shard: int = 1000) -> list[Path]:
    """Like :func:`write_sharded` for a stream of ``total`` rows, holding one file's rows at a time."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_files = math.ceil(total / rows_per_shard) if total else 0
    keep = {shard_name(split, i, n_files) for i in range(n_files)}
    for old in out_dir.glob(f"{split}-*-of-*.parquet"):
        if old.name not in keep:
            old.unlink()
    paths: list[Path] = []
    buf: list[dict[str, Any]] = []
    seen = 0
    for row in rows:
        buf.append(row)
        seen += 1
        if len(buf) == rows_per_shard:
            paths.append(write_parquet(out_dir / shard_name(split, len(paths), n_files), buf, config))
            buf = []
    if buf:
        paths.append(write_parquet(out_dir / shard_name(split, len(paths), n_files), buf, config))
    if seen != total:
        raise ValueError(f"expected {total} rows for {config}/{split}, got {seen}")
    return paths
