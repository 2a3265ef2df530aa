"""Resume trusts a finished shard only when its files still match what its `.done` marker vouches for.

A finished build is copied, one finished shard's file is damaged (cut, fewer rows, a lost line, a
deleted file, a marker from before markers listed files), and the build is run again: that shard,
and only that one, is rebuilt, and the result equals the undamaged build byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from wikihow_tiir import build
from wikihow_tiir.config import load_config
from wikihow_tiir.io import sha256_file

OLD_NS = 1_000_000_000 * 1_000_000_000  # 2001-09-09: a marker stamp no rebuild can produce


def _cfg(archive: Path, generate: bool):
    return load_config(overrides=[f'source.archive="{archive}"', f"generate.enabled={str(generate).lower()}",
                                  "source.pages_per_shard=1", "generate.documents_per_shard=1",
                                  "scorer.enabled=false"])


def _outputs(root: Path) -> dict[str, str]:
    """Every file a user reads: the dataset, the rejects, the card."""
    out = {}
    for sub in ("corpus", "queries", "qrels", "rejects"):
        for f in sorted((root / sub).glob("*")):
            out[f"{sub}/{f.name}"] = sha256_file(f)
    for name in ("manifest.json", "README.md"):
        out[name] = sha256_file(root / name)
    return out


@pytest.fixture(scope="module")
def corpus_only(tmp_path_factory, tiny_archive):
    out = tmp_path_factory.mktemp("verify") / "corpus-only"
    build.run_build(_cfg(tiny_archive, False), out)
    return out


@pytest.fixture(scope="module")
def with_queries(tmp_path_factory, tiny_archive):
    out = tmp_path_factory.mktemp("verify") / "with-queries"
    build.run_build(_cfg(tiny_archive, True), out)
    return out


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _fewer_rows(path: Path) -> None:
    table = pq.read_table(path)
    assert table.num_rows >= 1
    pq.write_table(table.slice(0, table.num_rows - 1), path)  # a valid file, one row short


def _lose_last_line(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines
    path.write_text("".join(lines[:-1]), encoding="utf-8")


def _marker_without_files(path: Path) -> None:
    """A marker as builds before this check wrote it: fingerprint and stats, no file list."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("files", None)
    path.write_text(json.dumps(data), encoding="utf-8")


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, (pattern, found)
    return found[0]


CORPUS_DAMAGE = {
    # shard-00000 is the choking-child page (a document), shard-00001 the gold-jewelry page (only rejects)
    "parquet-cut": ("shard-00000", lambda wd: _cut(wd / "shard-00000.parquet")),
    "parquet-one-row-short": ("shard-00000", lambda wd: _fewer_rows(wd / "shard-00000.parquet")),
    "rejects-line-lost": ("shard-00001", lambda wd: _lose_last_line(_one(wd, "shard-00001.*rejects.jsonl"))),
    "articles-deleted": ("shard-00002", lambda wd: (wd / "shard-00002.articles.jsonl").unlink()),
    "marker-from-an-older-build": ("shard-00001", lambda wd: _marker_without_files(wd / "shard-00001.done")),
}


def _resume_damaged(reference: Path, tmp_path: Path, stage: str, damage, cfg) -> list[str]:
    """Copy a finished build, damage it, re-run; returns the markers the re-run rewrote."""
    other = tmp_path / "damaged"
    shutil.copytree(reference, other)
    wd = other / "work" / stage
    damage(wd)
    for marker in wd.glob("*.done"):
        os.utime(marker, ns=(OLD_NS, OLD_NS))
    build.run_build(cfg, other)
    assert _outputs(other) == _outputs(reference)
    return sorted(m.stem for m in wd.glob("*.done") if m.stat().st_mtime_ns != OLD_NS)


@pytest.mark.parametrize("case", sorted(CORPUS_DAMAGE))
def test_a_damaged_corpus_shard_is_rebuilt_and_the_build_equals_an_undamaged_one(corpus_only, tiny_archive,
                                                                                   tmp_path, case):
    victim, damage = CORPUS_DAMAGE[case]
    rebuilt = _resume_damaged(corpus_only, tmp_path, "corpus", damage, _cfg(tiny_archive, False))
    assert rebuilt == [victim]


def test_a_damaged_query_shard_is_rebuilt_and_the_build_equals_an_undamaged_one(with_queries, tiny_archive,
                                                                                 tmp_path):
    assert len(list((with_queries / "work" / "queries").glob("*.done"))) == 2
    rebuilt = _resume_damaged(with_queries, tmp_path, "queries", lambda wd: _cut(wd / "shard-00001.parquet"),
                              _cfg(tiny_archive, True))
    assert rebuilt == ["shard-00001"]


def test_an_intact_resume_rewrites_no_shard(corpus_only, tiny_archive, tmp_path):
    """Verification is a check, not a rebuild: untouched shards keep their markers."""
    assert _resume_damaged(corpus_only, tmp_path, "corpus", lambda wd: None, _cfg(tiny_archive, False)) == []


def test_shard_files_the_plan_no_longer_has_are_not_gathered(with_queries, tiny_archive, tmp_path):
    """Re-run with fewer, larger query shards (and a corpus shard file of an older version lying in
    work/): the result equals a fresh build with those settings, no stale shard's rejects counted."""
    cfg = load_config(overrides=[f'source.archive="{tiny_archive}"', "source.pages_per_shard=1",
                                 "generate.documents_per_shard=64"])
    fresh = tmp_path / "fresh"
    build.run_build(cfg, fresh)
    other = tmp_path / "rerun"
    shutil.copytree(with_queries, other)
    assert (other / "work" / "queries" / "shard-00001.rejects.jsonl").is_file()
    (other / "work" / "corpus" / "shard-00000.rejects.jsonl").write_text(
        '{"detail":"","extra":{},"item_id":"old","reason":"stale","stage":"segment"}\n')
    build.run_build(cfg, other)
    assert _outputs(other) == _outputs(fresh)
    assert sorted(f.name for f in (other / "work" / "queries").glob("shard-*")) == [
        "shard-00000.done", "shard-00000.parquet", "shard-00000.rejects.jsonl"]
