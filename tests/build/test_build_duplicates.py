"""One article, one copy: the same article under two URLs (a renamed page, a redirect alias) keeps the
newest revision, then the page at the article's canonical URL, then the smallest URL; every other
copy is a `duplicate-article` reject naming the kept URL, whatever the shard layout and the runner."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from build_helpers import (
    TOILET,
    ZUCCHINI,
    add_page,
    copy_of,
    index_records,
    page_body,
    small_archive,
    write_index,
)

from wikihow_tiir import build
from wikihow_tiir.config import load_config
from wikihow_tiir.io import read_jsonl, sha256_file

ALIAS = "https://www.wikihow.com/Grill-Courgettes"  # sorts before Grill-Zucchini
RENAMED = "https://www.wikihow.com/Barbecue-Zucchini"  # the article renamed, one revision later
ZUCCHINI_ID = "4346099"


def _revised(body: bytes) -> bytes:
    """The Grill-Zucchini page one revision later, renamed to Barbecue-Zucchini, one step reworded."""
    out = body.replace(b"28457654", b"28457655")
    for attr in (b'rel="canonical" href="', b'property="og:url" content="'):
        old = attr + ZUCCHINI.encode()
        assert old in out
        out = out.replace(old, attr + RENAMED.encode())
    assert b'<b class="whb">Heat up the grill.' in out
    return out.replace(b'<b class="whb">Heat up the grill.', b'<b class="whb">Heat up the barbecue.')


def _cfg(archive: Path, pages_per_shard: int):
    return load_config(overrides=[f'source.archive="{archive}"', "generate.enabled=false",
                                  f"source.pages_per_shard={pages_per_shard}"])


@pytest.fixture(scope="module")
def zucchini_archive(tmp_path_factory, sample_archive) -> Path:
    return small_archive(sample_archive, tmp_path_factory.mktemp("dup") / "archive", [ZUCCHINI, TOILET])


@pytest.fixture(scope="module")
def three_copies(tmp_path_factory, zucchini_archive) -> Path:
    """Grill-Zucchini, its redirect alias Grill-Courgettes (the same bytes) and the renamed, newer
    Barbecue-Zucchini, plus an unrelated page."""
    archive = copy_of(zucchini_archive, tmp_path_factory.mktemp("dup") / "three")
    body = page_body(archive, ZUCCHINI)
    add_page(archive, ALIAS, body, like=ZUCCHINI)
    add_page(archive, RENAMED, _revised(body), like=ZUCCHINI)
    return archive


def _goals_and_texts(out: Path) -> tuple[list[str], str]:
    rows = []
    for f in sorted((out / "corpus").glob("*.parquet")):
        rows += pq.read_table(f, columns=["id", "article_id", "url", "texts"]).to_pylist()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    return [r["article_id"] for r in rows], json.dumps([r["texts"] for r in rows])


def _rejects(out: Path, stage: str) -> dict[str, dict]:
    f = out / "rejects" / f"{stage}.jsonl"
    return {r["item_id"]: r for r in read_jsonl(f)} if f.is_file() else {}


def _outputs(out: Path) -> dict[str, str]:
    """Corpus files, rejects, and the manifest without its config (pages_per_shard is part of it)."""
    got = {f"{sub}/{f.name}": sha256_file(f) for sub in ("corpus", "rejects") for f in sorted((out / sub).glob("*"))}
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.pop("config")
    got["manifest"] = json.dumps(manifest, sort_keys=True)
    return got


def test_a_redirect_alias_keeps_the_canonical_url_and_rejects_the_alias(zucchini_archive, tmp_path):
    archive = copy_of(zucchini_archive, tmp_path / "archive")
    add_page(archive, ALIAS, page_body(archive, ZUCCHINI), like=ZUCCHINI)
    alone = build.run_build(_cfg(zucchini_archive, 50), tmp_path / "alone")
    result = build.run_build(_cfg(archive, 50), tmp_path / "out")  # before: BuildError duplicate document id
    assert result["documents"] == alone["documents"]
    assert _goals_and_texts(tmp_path / "out") == _goals_and_texts(tmp_path / "alone")
    dup = _rejects(tmp_path / "out", "corpus")
    assert list(dup) == [ALIAS]  # the alias sorts first, but Grill-Zucchini is the canonical URL
    assert dup[ALIAS]["reason"] == "duplicate-article"
    assert dup[ALIAS]["extra"] == {"kept": ZUCCHINI, "article_id": ZUCCHINI_ID}
    assert ZUCCHINI in dup[ALIAS]["detail"] and "canonical" in dup[ALIAS]["detail"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["rejects"]["corpus"] == {"duplicate-article": 1}
    assert manifest["sources"]["articles"] == json.loads((tmp_path / "alone" / "manifest.json").read_text())[
        "sources"]["articles"]
    # the alias's documents left no rejects of their own behind (they were never made)
    assert _rejects(tmp_path / "out", "segment") == _rejects(tmp_path / "alone", "segment")
    assert _rejects(tmp_path / "out", "images") == _rejects(tmp_path / "alone", "images")


def test_the_newest_revision_wins_over_the_canonical_url(three_copies, tmp_path):
    build.run_build(_cfg(three_copies, 50), tmp_path / "out")
    article_ids, texts = _goals_and_texts(tmp_path / "out")
    assert ZUCCHINI_ID in article_ids
    assert "Heat up the barbecue." in texts and "Heat up the grill." not in texts
    dup = _rejects(tmp_path / "out", "corpus")
    assert sorted(dup) == [ALIAS, ZUCCHINI]
    assert {r["extra"]["kept"] for r in dup.values()} == {RENAMED}
    assert all("newer revision (28457655, this page 28457654)" in r["detail"] for r in dup.values())


def test_with_no_copy_at_the_canonical_url_the_smallest_url_wins(zucchini_archive, tmp_path):
    archive = copy_of(zucchini_archive, tmp_path / "archive")
    body = page_body(archive, ZUCCHINI)
    other = "https://www.wikihow.com/Grilled-Zucchini"
    add_page(archive, ALIAS, body, like=ZUCCHINI)
    add_page(archive, other, body, like=ZUCCHINI)
    write_index(archive, [r for r in index_records(archive) if r["url"] != ZUCCHINI])  # the canonical page is gone
    build.run_build(_cfg(archive, 1), tmp_path / "out")
    dup = _rejects(tmp_path / "out", "corpus")
    assert list(dup) == [other] and dup[other]["extra"]["kept"] == ALIAS
    assert "sorts first" in dup[other]["detail"]


def test_duplicates_give_the_same_bytes_whatever_the_shard_layout_and_the_runner(three_copies, tmp_path):
    """Pages sorted by URL: Barbecue-Zucchini, Grill-Courgettes, Grill-Zucchini, Unclog-a-Toilet. One page
    per shard puts every copy in its own shard, two per shard splits them, fifty keeps them together;
    the thread runner finishes the shards in any order."""
    def threads(fn, specs):
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = {s.index: pool.submit(fn, s) for s in reversed(specs)}
            return [futures[s.index].result() for s in specs]

    outs = {}
    for per_shard, runner in ((50, None), (1, None), (2, threads), (1, threads)):
        out = tmp_path / f"p{per_shard}-{'threads' if runner else 'inline'}"
        build.run_build(_cfg(three_copies, per_shard), out, map_shards=runner)
        outs[out.name] = _outputs(out)
    first = next(iter(outs.values()))
    assert all(o == first for o in outs.values()), {k: sorted(set(v.items()) ^ set(first.items())) for k, v in outs.items()}
