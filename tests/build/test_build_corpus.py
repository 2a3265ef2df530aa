"""The corpus build on the bundled archive: content, rejects with reasons, determinism, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wikihow_tiir import build
from wikihow_tiir.config import load_config
from wikihow_tiir.io import read_jsonl, sha256_file

DATASET_FILES = ("corpus", "queries", "qrels")


def _cfg(sample_archive, *extra):
    return load_config(overrides=[f'source.archive="{sample_archive}"', "generate.enabled=false",
                                  "source.pages_per_shard=6", *extra])


def _dataset_bytes(root: Path) -> dict[str, str]:
    out = {}
    for sub in DATASET_FILES:
        for f in sorted((root / sub).glob("*.parquet")):
            out[f"{sub}/{f.name}"] = sha256_file(f)
    out["manifest.json"] = sha256_file(root / "manifest.json")
    return out


@pytest.fixture(scope="module")
def corpus_build(tmp_path_factory, sample_archive):
    out = tmp_path_factory.mktemp("build") / "sample"
    result = build.run_build(_cfg(sample_archive), out)
    return out, result


def test_corpus_has_documents_from_every_era_and_language(corpus_build):
    out, result = corpus_build
    manifest = json.loads((out / "manifest.json").read_text())
    stats = manifest["statistics"]["corpus"]
    assert stats["examples"] == result["documents"] >= 35
    assert stats["min_images"] >= 2 and stats["max_images"] <= 64
    assert set(manifest["languages"]) == {"en", "ja"}
    assert manifest["sources"]["pages"] == 20
    assert {"responsive-2019", "app-fragment"} <= set(manifest["sources"]["layouts"])
    # every bundled image is a stand-in, and the manifest says so
    si = manifest["stand_in_images"]
    assert si["count"] == si["total"] > 100
    # every dataset file is listed with its sha256
    for name, entry in manifest["files"].items():
        assert sha256_file(out / name) == entry["sha256"]


def test_every_drop_has_a_reason(corpus_build):
    out, _ = corpus_build
    parse = {r["item_id"]: r["reason"] for r in read_jsonl(out / "rejects" / "parse.jsonl")}
    from urllib.parse import unquote

    assert [unquote(u) for u in parse] == ["https://www.wikihow.jp/アドボの調理"]  # the quality-review stub
    assert set(parse.values()) == {"no-steps"}
    segment = list(read_jsonl(out / "rejects" / "segment.jsonl"))
    assert {r["reason"] for r in segment} <= {"too-few-images", "too-many-images", "no-steps",
                                               "too-few-images-after-fetch", "no-sections"}
    assert all(r["detail"] for r in segment)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rejects"]["parse"] == {"no-steps": 1}


def test_two_builds_are_byte_identical_and_resume_redoes_only_missing_shards(corpus_build, sample_archive,
                                                                              tmp_path):
    out, _ = corpus_build
    cfg = _cfg(sample_archive)
    other = tmp_path / "again"
    specs = build.plan_corpus(cfg)
    assert len(specs) >= 3

    # a build killed after its first shard ...
    class Killed(Exception):
        pass

    def dies_after_one(fn, shard_specs):
        fn(shard_specs[0])
        raise Killed

    with pytest.raises(Killed):
        build.run_build(cfg, other, map_shards=dies_after_one)
    first_marker = other / "work" / "corpus" / "shard-00000.done"
    stamp = first_marker.stat().st_mtime_ns
    assert not (other / "manifest.json").exists()
    # ... re-run: the finished shard is skipped, the rest is done, the bytes equal an uninterrupted build
    ran: list[int] = []

    def counting(fn, shard_specs):
        out_stats = []
        for s in shard_specs:
            before = (other / "work" / "corpus" / f"{s.name}.done").exists()
            out_stats.append(fn(s))
            if not before:
                ran.append(s.index)
        return out_stats

    build.run_build(cfg, other, map_shards=counting)
    assert ran == [s.index for s in specs[1:]]
    assert first_marker.stat().st_mtime_ns == stamp
    assert _dataset_bytes(other) == _dataset_bytes(out)


def test_a_changed_setting_invalidates_the_shards(corpus_build, sample_archive, tmp_path):
    out, _ = corpus_build
    cfg = _cfg(sample_archive, "segment.min_images=3")
    spec = build.plan_corpus(cfg)[0]
    assert build.corpus_fingerprint(cfg, spec) != build.corpus_fingerprint(_cfg(sample_archive), spec)
