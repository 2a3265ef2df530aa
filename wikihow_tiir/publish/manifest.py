"""Which files make up the dataset, and their sha256 / size / row count for ``manifest.json``.

The dataset is an allowlist (:data:`DATASET_PATTERNS`), not "everything in the build folder":
``rejects/``, ``report/``, ``work/`` and ``eval/`` live beside it and must never be uploaded. The reference
scorer (``scorer/``, written by the build's scorer stage) is released with the data; its files and hashes
are in the manifest's ``scorer`` section (``wikihow_tiir.mme.scorer``), not in ``files``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from wikihow_tiir.io import sha256_file

CONFIGS = ("corpus", "queries", "qrels")
SCORER_DIR = "scorer"
# what `publish` uploads (fnmatch patterns as huggingface_hub applies them, relative to the folder; `*` also
# matches `/`, so the scorer pattern covers an MLLM scorer's backbone/ folder)
DATASET_PATTERNS = ["README.md", "manifest.json", *(f"{c}/*.parquet" for c in CONFIGS), f"{SCORER_DIR}/*"]


def data_files(dataset_dir: str | Path) -> list[Path]:
    """The Parquet files of the three configs, sorted, relative to ``dataset_dir``."""
    root = Path(dataset_dir)
    return sorted(p.relative_to(root) for c in CONFIGS for p in (root / c).glob("*.parquet") if p.is_file())


def scorer_files(dataset_dir: str | Path) -> list[Path]:
    """The reference scorer's files (``scorer/``, its card included), sorted, relative to ``dataset_dir``."""
    root = Path(dataset_dir)
    return sorted(p.relative_to(root) for p in (root / SCORER_DIR).rglob("*") if p.is_file())


def dataset_files(dataset_dir: str | Path) -> list[Path]:
    """Everything that is published: the card, the manifest, the Parquet files and the scorer (those present)."""
    root = Path(dataset_dir)
    extra = [Path(n) for n in ("README.md", "manifest.json") if (root / n).is_file()]
    return extra + data_files(root) + scorer_files(root)


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
            "rows": pq.ParquetFile(path).metadata.num_rows,
        }
    return out


def split_of(rel_path: str) -> tuple[str, str]:
    """``"queries/test-00000-of-00001.parquet"`` -> ``("queries", "test")``."""
    config, name = rel_path.split("/", 1)
    return config, name.split("-", 1)[0]
