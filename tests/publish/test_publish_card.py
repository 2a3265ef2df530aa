"""The dataset card: YAML header the Hub and `datasets` read, body for people, determinism."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from publish_helpers import manifest_of

from wikihow_tiir.model import features
from wikihow_tiir.publish.card import card_metadata, parse_card, render_card, size_category


def test_card_on_disk_is_the_rendered_manifest_and_deterministic(shared_dataset: Path) -> None:
    manifest = manifest_of(shared_dataset)
    text = render_card(manifest)
    assert text == render_card(copy.deepcopy(manifest))
    assert (shared_dataset / "README.md").read_text() == text
    # key order of the input does not matter either
    reordered = dict(reversed(list(manifest.items())))
    assert render_card(reordered) == text


def test_yaml_header_declares_configs_features_and_licence(shared_dataset: Path) -> None:
    from datasets import Features

    meta, _ = parse_card((shared_dataset / "README.md").read_text())
    assert meta["license"] == "cc-by-nc-sa-3.0"
    assert meta["size_categories"] == ["n<1K"]
    assert "text-retrieval" in meta["task_categories"]
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert list(configs) == ["corpus", "queries", "qrels"]
    assert configs["corpus"]["data_files"] == [{"split": "corpus", "path": "corpus/corpus-*.parquet"}]
    assert configs["queries"]["data_files"] == [{"split": "train", "path": "queries/train-*.parquet"},
                                                {"split": "test", "path": "queries/test-*.parquet"}]
    assert configs["corpus"].get("default") is True
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    for config in ("corpus", "queries", "qrels"):
        assert Features._from_yaml_list(infos[config]["features"]) == features(config)
    corpus_features = {f["name"]: f for f in infos["corpus"]["features"]}
    assert corpus_features["images"] == {"name": "images", "list": "image"}
    assert {s["name"]: s["num_examples"] for s in infos["queries"]["splits"]} == {"train": 1, "test": 2}


def test_body_has_statistics_provenance_licences_citation_changelog(shared_dataset: Path) -> None:
    _, body = parse_card((shared_dataset / "README.md").read_text())
    assert "| Corpus | 4 | 2.00 / 2 / 2 | 20.50 |  |" in body
    assert "| Test Query | 2 | 2.00 / 2 / 2 | 10.00 | 1 |" in body
    assert "| Corpus | 155,262 | 4.97 / 2 / 64 | 85.62 |  |" in body  # the paper's, for reference
    assert "2024-05-01" in body and "abc1234" in body and "wikihow-tiir 0.1.0" in body
    assert "`prompt_sha256.write` | " + "ab" * 32 in body
    assert "`thresholds.relevance_min` | 0.25" in body
    assert "| segment / too-few-images | 2 |" in body
    assert "| Public Domain | 4 |" in body and "`image_meta[i].license`" in body
    assert "CC BY-NC-SA 3.0" in body
    assert "Stand-in images" in body and "8 of 8 images" in body
    assert "arXiv:2502.12799" in body and "@inproceedings" in body
    assert "## Changelog" in body and "variant a" in body
    assert 'revision="vX.Y.Z"' in body


def test_no_stand_in_disclosure_when_build_has_none(shared_dataset: Path) -> None:
    manifest = manifest_of(shared_dataset)
    manifest["stand_in_images"] = {"count": 0, "total": 8}
    assert "Stand-in images" not in render_card(manifest)


def test_tolerates_missing_optional_sections() -> None:
    text = render_card({})
    meta, body = parse_card(text)
    assert [c["config_name"] for c in meta["configs"]] == ["corpus", "queries", "qrels"]
    assert meta["license"] == "cc-by-nc-sa-3.0"
    assert "_(not recorded)_" in body and "@inproceedings" in body
    minimal = render_card({"files": {"corpus/corpus-00000-of-00001.parquet": {"rows": 3}},
                           "statistics": {"corpus": {"examples": 3}}, "changelog": ["first"]})
    meta, body = parse_card(minimal)
    assert [c["config_name"] for c in meta["configs"]] == ["corpus"]
    assert "| Corpus | 3 | – | – |  |" in body and "- first" in body


@pytest.mark.parametrize("n,expected", [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"),
                                        (155_262, "100K<n<1M"), (20_000_000, "10M<n<100M")])
def test_size_category(n: int, expected: str) -> None:
    assert size_category(n) == expected


def test_metadata_counts_rows_over_shards(shared_dataset: Path) -> None:
    meta = card_metadata(manifest_of(shared_dataset))
    corpus = next(i for i in meta["dataset_info"] if i["config_name"] == "corpus")
    assert corpus["splits"] == [{"name": "corpus", "num_bytes": 0, "num_examples": 4}]  # 2 shards: 3 + 1


@pytest.mark.parametrize("text,reason", [("no header", "does not start"), ("---\na: 1\n", "not closed"),
                                         ("---\n[a\n---\n", "does not parse"), ("---\n- a\n---\n", "mapping")])
def test_parse_card_errors(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_card(text)
