"""The Prefect flow end to end: thread pool and a 2-process Dask LocalCluster give the same bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wikihow_tiir.config import load_config
from wikihow_tiir.io import sha256_file


def _dataset_bytes(root: Path) -> dict[str, str]:
    out = {"manifest.json": sha256_file(root / "manifest.json"), "README.md": sha256_file(root / "README.md")}
    for sub in ("corpus", "queries", "qrels"):
        for f in sorted((root / sub).glob("*.parquet")):
            out[f"{sub}/{f.name}"] = sha256_file(f)
    return out


@pytest.fixture(scope="module")
def thread_build(tmp_path_factory, sample_archive):
    from flows.build_dataset import build_dataset

    out = tmp_path_factory.mktemp("flow") / "threads"
    cfg = load_config(overrides=[f'source.archive="{sample_archive}"', "runner.kind=thread", "runner.workers=2",
                                 "scorer.enabled=false"])
    result = build_dataset(cfg, out, show_progress=False)
    return out, result


def test_flow_builds_corpus_queries_qrels_card_and_report(thread_build):
    out, result = thread_build
    manifest = json.loads((out / "manifest.json").read_text())
    assert result["documents"] == manifest["statistics"]["corpus"]["examples"] > 0
    splits = manifest["statistics"]["queries"]
    assert set(splits) <= {"train", "test"} and sum(s["examples"] for s in splits.values()) > 0
    for s in splits.values():
        assert 2 <= s["min_images"] <= s["max_images"] <= 4
    assert (out / "README.md").read_text().startswith("---")
    assert (out / "report" / "index.html").is_file()
    # no article on both sides of the split
    import pyarrow.parquet as pq

    arts = {}
    for split in ("train", "test"):
        for f in (out / "queries").glob(f"{split}-*.parquet"):
            arts[split] = set(pq.read_table(f, columns=["article_id"]).column(0).to_pylist())
    if len(arts) == 2:
        assert not arts["train"] & arts["test"]


@pytest.mark.slow
def test_dask_local_cluster_build_is_byte_identical_to_thread_build(thread_build, sample_archive, tmp_path):
    from flows.build_dataset import build_dataset

    out, _ = thread_build
    cfg = load_config(overrides=[f'source.archive="{sample_archive}"', "runner.kind=dask", "runner.workers=2",
                                 "scorer.enabled=false"])
    dask_out = tmp_path / "dask"
    build_dataset(cfg, dask_out, show_progress=False)
    assert _dataset_bytes(dask_out) == _dataset_bytes(out)


@pytest.mark.slow
def test_live_build_on_dask_keeps_one_polite_request_rate(tmp_path):
    """A live-source build on 2 Dask workers against the loopback wikiHow mirror: the crawl runs once,
    in the flow's process, under its single per-host rate limiter (workers never fetch), so the
    mirror sees at most requests_per_second, not workers x that; the shards then build documents."""
    from flows.build_dataset import build_dataset
    from tests.servers.wikihow_mirror import WikihowMirror
    from wikihow_tiir.config import BuildConfig

    rps = 8.0
    with WikihowMirror() as mirror:
        urls = tmp_path / "urls.txt"
        urls.write_text("".join(mirror.url(p) + "\n" for p in ("/Grill-Zucchini", "/Marinate-Pork")))
        raw = load_config(profile="live").model_dump(mode="json")
        raw["source"].update(archive=str(tmp_path / "archive"), pages_per_shard=1)
        raw["source"]["crawl"].update(contact="tests@example.org", origin_map=mirror.origin_map(),
                                      allow_private_addresses=True, requests_per_second=rps,
                                      discovery="urls", url_file=str(urls), timeout_s=5.0)
        raw["runner"].update(kind="dask", workers=2)
        raw["generate"]["enabled"] = False
        result = build_dataset(BuildConfig.model_validate(raw), tmp_path / "out", show_progress=False)
        hits = sorted(mirror.hits, key=lambda h: h.t)
    assert result["documents"] >= 4 and len(hits) > 10
    gaps = [b.t - a.t for a, b in zip(hits, hits[1:], strict=False)]  # one host (www.wikihow.com) behind the mirror
    assert min(gaps) >= 1 / rps - 0.02, f"{len(hits)} requests, smallest gap {min(gaps):.3f} s"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["crawl"]["pages"]["done"] == 2
