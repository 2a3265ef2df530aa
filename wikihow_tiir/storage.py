"""Parquet storage: writing rows as files and shards, row groups, the `datasets` feature metadata, and
(filtered) reads. Every module reads and writes Parquet through here; *where* files go is
:mod:`wikihow_tiir.layout`.

Files are written with pyarrow directly (not `Dataset.to_parquet`) so that bytes are fully
determined by the rows: same rows -> same file. The `huggingface` schema metadata
(:func:`wikihow_tiir.model.arrow_schema`) makes `datasets.load_dataset(<dir>, "<config>")` decode
the image columns without extra arguments.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from wikihow_tiir.io import atomic_write_bytes, sha256_file
from wikihow_tiir.layout import data_files, own_shard_files, shard_name
from wikihow_tiir.model import arrow_schema, with_derived_columns

ROW_GROUP_SIZE = 100  # the Hub's recommendation for image rows


# --------------------------------------------------------------------------- writing


def table_from_rows(rows: Sequence[dict[str, Any]], config: str) -> pa.Table:
    # derived columns (``text``) are recomputed here, the one place rows become files
    return pa.Table.from_pylist([with_derived_columns(r, config) for r in rows], schema=arrow_schema(config))


def table_bytes(table: pa.Table, row_group_size: int = ROW_GROUP_SIZE) -> bytes:
    """One Parquet file's bytes (zstd, statistics, dictionary pages): the same table, the same bytes."""
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size, compression="zstd",
                   write_statistics=True, use_dictionary=True)
    return buf.getvalue()


def parquet_bytes(rows: Sequence[dict[str, Any]], config: str, row_group_size: int = ROW_GROUP_SIZE) -> bytes:
    """Rows of a dataset config (``corpus``, ``queries``, ``qrels``) as one Parquet file's bytes."""
    return table_bytes(table_from_rows(rows, config), row_group_size)


def write_parquet(path: str | Path, rows: Sequence[dict[str, Any]], config: str,
                  row_group_size: int = ROW_GROUP_SIZE) -> Path:
    """Atomically write one Parquet file (temp + rename)."""
    path = Path(path)
    atomic_write_bytes(path, parquet_bytes(rows, config, row_group_size))
    return path


def write_tables(path: str | Path, tables: Iterable[pa.Table], row_group_size: int) -> bool:
    """Stream tables of one schema into one Parquet file (a table's rows at a time), atomically: written
    aside, then moved in. Nothing is written for no tables; returns whether a file was written."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp"
    writer = None
    try:
        for table in tables:
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd", write_statistics=True)
            writer.write_table(table, row_group_size=row_group_size)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        return False
    tmp.replace(path)
    return True


def _remove_stale(out_dir: Path, split: str, keep: set[str]) -> None:
    # only files named as the writer names them: a re-run never leaves a mixture of old and new shard
    # sets behind, and never deletes a file it did not write
    for old in own_shard_files(out_dir, split):
        if old.name not in keep:
            old.unlink()


def write_sharded(out_dir: str | Path, rows: Sequence[dict[str, Any]], config: str, split: str,
                  rows_per_shard: int = 1000) -> list[Path]:
    """Write ``rows`` as ``<out_dir>/<split>-0000i-of-0000N.parquet``; returns the paths.

    Stale shards of the same split with another total are removed so a re-run never leaves a
    mixture of old and new shard sets behind. An empty ``rows`` writes nothing.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = max(1, math.ceil(len(rows) / rows_per_shard)) if rows else 0
    _remove_stale(out_dir, split, {shard_name(split, i, total) for i in range(total)})
    paths = []
    for i in range(total):
        chunk = rows[i * rows_per_shard:(i + 1) * rows_per_shard]
        paths.append(write_parquet(out_dir / shard_name(split, i, total), chunk, config))
    return paths


def write_sharded_iter(out_dir: str | Path, rows: Iterable[dict[str, Any]], total: int, config: str, split: str,
                       rows_per_shard: int = 1000) -> list[Path]:
    """Like :func:`write_sharded` for a stream of ``total`` rows, holding one file's rows at a time."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_files = math.ceil(total / rows_per_shard) if total else 0
    _remove_stale(out_dir, split, {shard_name(split, i, n_files) for i in range(n_files)})
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


def remove_shards(out_dir: str | Path, split: str) -> None:
    """Delete the shard files of ``split`` in ``out_dir`` (an empty split is written as no file)."""
    _remove_stale(Path(out_dir), split, set())


# --------------------------------------------------------------------------- reading


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


def read_batches(paths: Iterable[str | Path], batch_size: int, skip: str | None = None
                 ) -> Iterator[list[dict[str, Any]]]:
    """Rows of Parquet files in file order, ``batch_size`` at a time per file (the last of a file may be
    shorter); without the column ``skip``, which comes back as a list of ``None`` as long as ``texts``."""
    for p in paths:
        pf = pq.ParquetFile(p)
        columns = None if skip is None else [c for c in pf.schema_arrow.names if c != skip]
        for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
            rows = batch.to_pylist()
            if skip is not None:
                for row in rows:
                    row[skip] = [None] * len(row["texts"])
            yield rows


def read_table(paths: Iterable[str | Path], columns: list[str] | None = None) -> pa.Table:
    """Parquet files as one table, in the given order (an empty table for no files)."""
    tables = [pq.read_table(p, columns=columns) for p in paths]
    return pa.concat_tables(tables) if tables else pa.table({})


def column_names(path: str | Path) -> list[str]:
    """The column names of a Parquet file (from its footer)."""
    return list(pq.ParquetFile(path).schema_arrow.names)


def column_values(paths: Iterable[str | Path], column: str) -> list[Any]:
    """Every value of one column over these Parquet files (files without the column give none)."""
    out: list[Any] = []
    for p in paths:
        if column in pq.ParquetFile(p).schema_arrow.names:
            out += pq.read_table(p, columns=[column]).column(column).to_pylist()
    return out


def row_count(path: str | Path) -> int:
    """The number of rows of a Parquet file (from its footer; raises on a file that is not Parquet)."""
    return pq.ParquetFile(path).metadata.num_rows


# --------------------------------------------------------------------------- the manifest's file list


def file_entries(dataset_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{"corpus/corpus-00000-of-00001.parquet": {"sha256", "bytes", "rows"}, ...}`` for every data file.

    README.md and manifest.json are not listed: the card is rendered from the manifest and the
    manifest cannot hold its own hash.
    """
    root = Path(dataset_dir)
    out: dict[str, dict[str, Any]] = {}
    for rel in data_files(root):
        path = root / rel
        out[rel.as_posix()] = {
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
            "rows": row_count(path),
        }
    return out
