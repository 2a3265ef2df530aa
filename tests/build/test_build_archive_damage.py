"""A damaged archive loses what is damaged, not the build: a missing or corrupt blob is a reject for its
page or picture, a line of index.jsonl that is not a record is a reject for that line; only an archive
with no readable page at all stops the build, with one clear BuildError."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from build_helpers import GOLD, TOILET, blob, copy_of, index_records

from wikihow_tiir import build
from wikihow_tiir.config import load_config
from wikihow_tiir.io import read_jsonl, sha256_file
from wikihow_tiir.sources.archive import Archive, ArchiveError

CHOKING_ID, TOILET_ID = "url-d8314c761287b158", "url-444afe05e373d2cb"


def _cfg(archive: Path, pages_per_shard: int = 1):
    return load_config(overrides=[f'source.archive="{archive}"', "generate.enabled=false",
                                  f"source.pages_per_shard={pages_per_shard}"])


def _record(archive: Path, url: str) -> dict:
    return next(r for r in index_records(archive) if r["url"] == url)


def _rejects(out: Path, stage: str) -> dict[str, dict]:
    f = out / "rejects" / f"{stage}.jsonl"
    return {r["item_id"]: r for r in read_jsonl(f)} if f.is_file() else {}


def _article_ids(out: Path) -> set[str]:
    return {a for f in (out / "corpus").glob("*.parquet") for a in pq.read_table(f, columns=["article_id"])
            .column(0).to_pylist()}


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _damage_blob(archive: Path, sha: str, how: str) -> None:
    path = blob(archive, sha)
    if how == "missing":
        path.unlink()
    else:  # cut short: the bytes no longer match the sha256 that names them
        path.write_bytes(path.read_bytes()[:1000])


@pytest.mark.parametrize("how", ["missing", "corrupt"])
def test_a_damaged_page_blob_is_a_reject_for_that_page_and_the_build_goes_on(tiny_archive, tmp_path, how):
    archive = copy_of(tiny_archive, tmp_path / "archive")
    sha = _record(archive, TOILET)["sha256"]
    _damage_blob(archive, sha, how)
    result = build.run_build(_cfg(archive), tmp_path / "out")  # before: FileNotFoundError / ArchiveError
    reason = f"archive-blob-{how}"
    got = _rejects(tmp_path / "out", "archive")
    assert list(got) == [TOILET] and got[TOILET]["reason"] == reason
    assert f"blobs/{sha[:2]}/{sha}" in got[TOILET]["detail"]
    assert str(tmp_path) not in got[TOILET]["detail"]  # the same bytes wherever the archive lies
    assert _manifest(tmp_path / "out")["rejects"]["archive"] == {reason: 1}
    assert _article_ids(tmp_path / "out") == {CHOKING_ID} and result["documents"] == 1


@pytest.mark.parametrize("how", ["missing", "corrupt"])
def test_a_damaged_picture_blob_is_an_image_reject_and_the_build_goes_on(tiny_archive, tmp_path, how):
    archive = copy_of(tiny_archive, tmp_path / "archive")
    reference = build.run_build(_cfg(tiny_archive), tmp_path / "reference")
    doc = next(r for f in (tmp_path / "reference" / "corpus").glob("*.parquet")
               for r in pq.read_table(f, columns=["id", "image_meta"]).to_pylist() if r["id"].startswith(
                   f"wh-{CHOKING_ID}-"))
    picture = next(m["source_url"] for m in doc["image_meta"] if m)
    _damage_blob(archive, _record(archive, picture)["sha256"], how)
    result = build.run_build(_cfg(archive), tmp_path / "out")
    got = [r for r in _rejects(tmp_path / "out", "images").values() if r["extra"]["url"] == picture]
    assert got and {r["reason"] for r in got} == {f"archive-blob-{how}"}
    assert all(r["item_id"].startswith(doc["id"] + "#") for r in got)
    assert result["documents"] >= reference["documents"] - 1


INDEX_DAMAGE = {
    "torn": lambda line: line[: len(line) // 2],
    "not-utf8": lambda line: b"\xff\xfe" + line[2:],
    "not-an-object": lambda line: b"[1, 2, 3]",
    "sha256-not-a-name": lambda line: json.dumps({**json.loads(line), "sha256": "../../../../etc/passwd"}).encode(),
}


@pytest.mark.parametrize("how", sorted(INDEX_DAMAGE))
def test_a_bad_index_line_is_a_reject_for_that_line_and_the_build_goes_on(tiny_archive, tmp_path, how):
    archive = copy_of(tiny_archive, tmp_path / "archive")
    lines = (archive / "index.jsonl").read_bytes().split(b"\n")
    n = next(i for i, line in enumerate(lines) if json.loads(line)["url"] == GOLD)  # in the middle of the file
    assert 0 < n < len(lines) - 2
    lines[n] = INDEX_DAMAGE[how](lines[n])
    (archive / "index.jsonl").write_bytes(b"\n".join(lines))
    build.run_build(_cfg(archive), tmp_path / "out")  # before: ArchiveError / UnicodeDecodeError at planning
    got = _rejects(tmp_path / "out", "archive")
    item = f"index.jsonl:{n + 1}"
    assert list(got) == [item] and got[item]["reason"] == "archive-index-line"
    assert got[item]["extra"] == {"line": n + 1} and f"line {n + 1} of index.jsonl" in got[item]["detail"]
    assert _manifest(tmp_path / "out")["sources"]["pages"] == 2  # the gold page's record is lost, the rest is not
    assert _article_ids(tmp_path / "out") == {CHOKING_ID, TOILET_ID}


def test_a_damaged_archive_gives_the_same_bytes_wherever_it_lies_and_however_it_is_sharded(tiny_archive, tmp_path):
    first = copy_of(tiny_archive, tmp_path / "a" / "archive")
    _damage_blob(first, _record(first, TOILET)["sha256"], "corrupt")
    lines = (first / "index.jsonl").read_bytes().split(b"\n")
    lines.insert(3, b'{"url": "https://www.wikihow.com/Torn", "ki')
    (first / "index.jsonl").write_bytes(b"\n".join(lines))
    second = copy_of(first, tmp_path / "elsewhere" / "archive")
    build.run_build(_cfg(first, 1), tmp_path / "one")
    build.run_build(_cfg(second, 50), tmp_path / "two")

    def outputs(out: Path) -> dict[str, str]:
        return {f"{sub}/{f.name}": sha256_file(f) for sub in ("corpus", "rejects") for f in sorted((out / sub).glob("*"))}

    assert outputs(tmp_path / "one") == outputs(tmp_path / "two")
    assert set(_rejects(tmp_path / "one", "archive")) == {TOILET, "index.jsonl:4"}


@pytest.mark.parametrize("how, message", [
    ("no-index", "is not an archive \\(no index.jsonl\\)"),
    ("index-is-a-folder", "index.jsonl cannot be read"),
    ("no-line-is-a-record", "holds no pages \\(3 line\\(s\\) of its index.jsonl are not records; line 1: not JSON"),
])
def test_an_archive_without_a_readable_page_is_one_clear_error(tiny_archive, tmp_path, how, message):
    archive = copy_of(tiny_archive, tmp_path / "archive")
    index = archive / "index.jsonl"
    if how == "no-index":
        index.unlink()
    elif how == "index-is-a-folder":
        index.unlink()
        index.mkdir()
    else:
        index.write_text("garbage\n{\nnot json either\n")
    with pytest.raises(build.BuildError, match=message):
        build.run_build(_cfg(archive), tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_record_appended_after_a_torn_line_is_not_lost(tmp_path):
    a = Archive(tmp_path / "arc", create=True)
    a.put("https://x/a", b"one", "page")
    with open(tmp_path / "arc" / "index.jsonl", "a") as f:
        f.write('{"url": "https://x/b", "kind"')  # a crawl killed mid-append
    Archive(tmp_path / "arc").put("https://x/c", b"three", "page")  # the next crawl appends
    again = Archive(tmp_path / "arc")
    assert again.get_bytes("https://x/c") == b"three" and again.get_bytes("https://x/a") == b"one"
    assert [(b.line, b.problem.split(" (")[0]) for b in again.bad_lines()] == [(2, "not JSON")]


def test_a_missing_blob_is_an_archive_error_with_a_reason(tmp_path):
    a = Archive(tmp_path / "arc", create=True)
    rec = a.put("https://x/a", b"one", "image")
    a.blob_path(rec.sha256).unlink()
    with pytest.raises(ArchiveError, match="is missing from the archive") as err:
        a.get_bytes("https://x/a")
    assert err.value.reason == "archive-blob-missing"
