"""Deprecated: the Parquet storage layer moved to :mod:`wikihow_tiir.storage` (and ``split_files`` to
:mod:`wikihow_tiir.layout`). Kept for one release so that code importing it from here still runs."""

from wikihow_tiir.layout import shard_name, split_files
from wikihow_tiir.storage import (
    ROW_GROUP_SIZE,
    parquet_bytes,
    read_rows,
    read_rows_where,
    read_rows_without,
    table_from_rows,
    write_parquet,
    write_sharded,
    write_sharded_iter,
)

__all__ = ["ROW_GROUP_SIZE", "parquet_bytes", "read_rows", "read_rows_where", "read_rows_without", "shard_name",
           "split_files", "table_from_rows", "write_parquet", "write_sharded", "write_sharded_iter"]
