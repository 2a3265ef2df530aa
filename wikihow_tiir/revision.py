"""What a dataset revision is made of: the sha256 of the data files of some splits, hashed together.

The reference scorer records the revision of the corpus and train split it was trained on and the test
split its numbers are from; validation, ``score --run`` and the card compare them with the folder's
(or a manifest's) files. Here, not in ``mme`` or ``evaluate``, so that both (and ``publish``) can ask.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from wikihow_tiir.io import sha256_file, stable_hash
from wikihow_tiir.layout import config_files, split_files, split_of

Parts = Iterable[tuple[str, str | None]]  # (config, split); split None: every file of the config
TRAIN_PARTS: tuple[tuple[str, str | None], ...] = (("corpus", None), ("queries", "train"), ("qrels", "train"))
TEST_PARTS: tuple[tuple[str, str | None], ...] = (("queries", "test"), ("qrels", "test"))


def _matches(rel: str, parts: Parts) -> bool:
    if "/" not in rel or not rel.endswith(".parquet"):
        return False
    config, split = split_of(rel)
    return any(config == c and (s is None or split == s) for c, s in parts)


def identity_of(files: Mapping[str, str | None], parts: Parts = TEST_PARTS) -> dict[str, Any]:
    """``{"revision": "sha256:...", "files": {path: sha256}}`` of the files among ``files`` (path relative to
    the folder -> sha256) that belong to ``parts``. From the disk or a manifest's file list."""
    parts = tuple(parts)
    chosen = {rel: sha for rel, sha in sorted(files.items()) if _matches(rel, parts)}
    return {"revision": "sha256:" + stable_hash("dataset-files", sorted(chosen.items()), length=32), "files": chosen}


def identity(root: str | Path, parts: Parts) -> dict[str, Any]:
    """:func:`identity_of` the files on disk in ``root``."""
    root = Path(root)
    parts = tuple(parts)
    paths = [p for c, s in parts for p in (config_files(root, c) if s is None else split_files(root, c, s))]
    return identity_of({p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(set(paths))}, parts)


def train_identity(root: str | Path) -> dict[str, Any]:
    """The dataset revision a scorer is trained on: the corpus and the train split's files."""
    return identity(root, TRAIN_PARTS)


def identity_of_test_split(root: str | Path) -> dict[str, Any]:
    """The test split a scorer's numbers are computed on (the human audit may change it after a build)."""
    return identity(root, TEST_PARTS)


def manifest_test_revision(manifest: Mapping[str, Any]) -> str | None:
    """The test split's revision from a manifest's file list (the card is rendered from the manifest alone)."""
    files = {rel: (e or {}).get("sha256") for rel, e in (manifest.get("files") or {}).items()}
    return identity_of(files, TEST_PARTS)["revision"] if files else None
