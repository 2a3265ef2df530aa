"""Object storage: archive and build folder at s3:// URLs, against a real S3-compatible server on 127.0.0.1
(moto's server mode, in a child process) with s3fs as the client, as any S3 user reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from build_helpers import CHOKING, GOLD, TOILET, ZUCCHINI, small_archive

from tests.servers.s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from wikihow_tiir import build, remote, resume
from wikihow_tiir.config import load_config

PAGES = [TOILET, CHOKING, GOLD, ZUCCHINI, "https://www.wikihow.com/Marinate-Pork", "https://www.wikihow.com/Grill-Fish"]
# 3 corpus shards, 2 query shards; no scorer (its stage trains a model: tests/mme, tests/publish cover it)
SETTINGS = ["source.pages_per_shard=2", "generate.documents_per_shard=6", "scorer.enabled=false"]
BUCKET_ARCHIVE = "s3://data/archive"


@pytest.fixture(scope="module")
def s3():
    with pytest.MonkeyPatch.context() as mp, S3Server() as server:
        for key, value in server.env().items():
            mp.setenv(key, value)
        server.make_bucket("data")
        yield server


@pytest.fixture(scope="module")
def six_pages(tmp_path_factory, sample_archive) -> Path:
    return small_archive(sample_archive, tmp_path_factory.mktemp("six") / "archive", PAGES)


@pytest.fixture(scope="module")
def bucket_archive(s3, six_pages) -> str:
    import fsspec

    fsspec.filesystem("s3").put(str(six_pages), BUCKET_ARCHIVE.removeprefix("s3://"), recursive=True)
    return BUCKET_ARCHIVE


@pytest.fixture(scope="module")
def local_build(tmp_path_factory, six_pages) -> Path:
    out = tmp_path_factory.mktemp("local") / "v1"
    build.run_build(load_config(overrides=[f'source.archive="{six_pages}"', *SETTINGS]), out)
    return out


def _bucket(url: str) -> remote.RemoteFolder:
    return remote.RemoteFolder(url)


def dataset_bytes_equal(local: Path, url: str, archive: Path) -> dict[str, bool]:
    """Each dataset file of the local build against the bucket's; the manifest and card name the archive they
    were built from, which is the one difference allowed."""
    folder = _bucket(url)
    manifest = json.loads((local / "manifest.json").read_text())
    out = {}
    for rel in [*sorted(manifest["files"]), "manifest.json", "README.md"]:
        mine = (local / rel).read_bytes().replace(str(archive).encode(), BUCKET_ARCHIVE.encode())
        out[rel] = mine == folder.read_bytes(rel)
    return out


def _no_credentials(blobs: dict[str, bytes]) -> list[str]:
    return [name for name, data in blobs.items() if ACCESS_KEY.encode() in data or SECRET_KEY.encode() in data]


def _all_bytes(url: str) -> dict[str, bytes]:
    folder = _bucket(url)
    return {rel: folder.read_bytes(rel) for rel in folder.listing()}


def test_build_from_and_to_the_bucket_equals_the_local_build(s3, bucket_archive, local_build, six_pages, tmp_path,
                                                             capfd, monkeypatch):
    url = "s3://data/builds/threads"
    cfg = load_config(overrides=[f'source.archive="{bucket_archive}"', f'runner.staging="{tmp_path / "copy"}"',
                                 *SETTINGS])
    logs: list[str] = []
    result = build.run_build(cfg, url, log=logs.append)
    assert result["output"] == url and result["documents"] > 0
    same = dataset_bytes_equal(local_build, url, six_pages)
    assert same and all(same.values()), same
    held = _all_bytes(url)
    # the work shards are committed in the bucket, each with its marker
    assert {f"work/corpus/shard-0000{i}.done" for i in range(3)} <= set(held)
    assert {"work/queries/shard-00000.done", "work/queries/shard-00001.done"} <= set(held)
    assert not [k for k in held if k.endswith(".tmp")]  # no temporary key left behind
    # credentials: in no file of the bucket or of the local copy, in no log line
    local_copy = {p.as_posix(): p.read_bytes() for p in (tmp_path / "copy").rglob("*") if p.is_file()}
    out, err = capfd.readouterr()
    assert not _no_credentials({**held, **local_copy, "logs": "\n".join(logs + [out, err]).encode()})

    # load_dataset reads the dataset from the bucket (the card's patterns, as s3:// URLs)
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)  # the session is offline for the Hub
    test = datasets.load_dataset("parquet", data_files={"test": f"{url}/queries/test-*.parquet"}, split="test",
                                 cache_dir=str(tmp_path / "hf-cache"))
    import pyarrow.parquet as pq

    local_ids = sorted(pq.read_table(next((local_build / "queries").glob("test-*.parquet")),
                                     columns=["id"]).column(0).to_pylist())
    assert sorted(test["id"]) == local_ids and "Image" in repr(test.features["images"])

    # a re-run resumes from the bucket: no shard is run or uploaded again
    ran, sent = [], []
    real_upload = remote.RemoteFolder.upload

    def counting_upload(self, src, rel):
        sent.append(rel)
        return real_upload(self, src, rel)

    monkeypatch.setattr(remote.RemoteFolder, "upload", counting_upload)
    real = build.SHARD_FUNCTIONS["corpus"]
    monkeypatch.setitem(build.SHARD_FUNCTIONS, "corpus", lambda c, o, s: ran.append(s.index) or real(c, o, s))
    build.run_build(cfg, url)
    assert [r for r in sent if r.startswith("work/") and "/shard-" in r] == []
    assert ran == [0, 1, 2]  # each shard function returned at once: its marker matched
    assert dataset_bytes_equal(local_build, url, six_pages) == same


def test_a_worker_killed_before_its_marker_leaves_no_shard_that_looks_done(s3, bucket_archive, tmp_path, monkeypatch):
    url = "s3://data/builds/killed"
    cfg = load_config(overrides=[f'source.archive="{bucket_archive}"', f'runner.staging="{tmp_path / "copy"}"',
                                 *SETTINGS, "generate.enabled=false"])
    spec = build.plan_corpus(cfg)[0]
    real_upload = remote.RemoteFolder.upload

    def dies_at_the_marker(self, src, rel):
        if rel.endswith(".done"):
            raise KeyboardInterrupt  # the worker is killed between its files and its marker
        return real_upload(self, src, rel)

    monkeypatch.setattr(remote.RemoteFolder, "upload", dies_at_the_marker)
    with pytest.raises(KeyboardInterrupt):
        build.run_shard("corpus", cfg, url, spec)
    monkeypatch.setattr(remote.RemoteFolder, "upload", real_upload)
    held = _all_bytes(url)
    assert "work/corpus/shard-00000.parquet" in held and "work/corpus/shard-00000.done" not in held
    # another worker, with a scratch folder of its own, does not take the shard for done
    worker = remote.Mirror(_bucket(url), tmp_path / "worker")
    assert worker.pull_step("work/corpus", spec.name) is False
    assert resume.done(worker.local / "work/corpus", spec.name, build.corpus_fingerprint(cfg, spec)) is None
    # the shard's bytes in the bucket, damaged under a good marker, are refetched, found wrong and rebuilt
    stats = build.run_shard("corpus", cfg, url, spec)
    _bucket(url).upload(b"not parquet", "work/corpus/shard-00000.parquet")
    again = remote.Mirror(_bucket(url), tmp_path / "worker2")
    assert again.pull_step("work/corpus", spec.name) is True
    assert resume.done(again.local / "work/corpus", spec.name, build.corpus_fingerprint(cfg, spec)) is None
    assert build.run_corpus_shard(cfg, again.local, spec) == stats


def test_an_unusable_location_is_one_clear_error_before_any_work(tmp_path, sample_archive):
    cfg = load_config(overrides=[f'source.archive="{sample_archive}"', f'runner.staging="{tmp_path / "copy"}"'])
    with pytest.raises(remote.RemoteError, match="nosuchfs://bucket/v1: .*nosuchfs"):
        build.run_build(cfg, "nosuchfs://bucket/v1")
    with pytest.raises(build.BuildError, match="is not an archive"):
        build.run_build(load_config(overrides=['source.archive="memory://nothing/here"',
                                               f'runner.staging="{tmp_path / "copy2"}"']), tmp_path / "out")
    assert not (tmp_path / "copy").exists()


def test_a_local_copy_folder_that_is_not_one_is_refused(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(remote.RemoteError, match="not a local copy made by wikihow-tiir"):
        remote.Mirror(remote.RemoteFolder("memory://bucket/x"), tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_public_urls_carry_no_credentials():
    assert remote.public_url("s3://KEY:SECRET@bucket/builds/v1?token=abc") == "s3://bucket/builds/v1"
    assert remote.location("s3:/bucket/x") == "s3://bucket/x"  # as Path() folds it
    assert remote.location("file:///tmp/x") == Path("/tmp/x") and not remote.is_remote("file:///tmp/x")


@pytest.mark.slow
def test_dask_two_workers_from_and_to_the_bucket_equal_the_local_build(s3, bucket_archive, local_build, six_pages,
                                                                       tmp_path, capfd):
    from flows.build_dataset import build_dataset

    url = "s3://data/builds/dask"
    cfg = load_config(overrides=[f'source.archive="{bucket_archive}"', f'runner.staging="{tmp_path / "copy"}"',
                                 "runner.kind=dask", "runner.workers=2", *SETTINGS])
    result = build_dataset(cfg, url, show_progress=False)
    assert result["output"] == url
    same = dataset_bytes_equal(local_build, url, six_pages)
    assert same and all(same.values()), same
    out, err = capfd.readouterr()
    assert not _no_credentials({**_all_bytes(url), "logs": (out + err).encode()})
