"""Incremental versions: a build names its previous version; the manifest and card say what changed, ids and
bytes of unchanged documents stay, articles keep their split, and validation refuses a test article in train."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from build_helpers import TOILET, ZUCCHINI, blob, index_records, put_blob, small_archive, write_index

from wikihow_tiir import build
from wikihow_tiir.config import SplitConfig, load_config
from wikihow_tiir.publish.validate import validate_dataset

PAGES = [TOILET, ZUCCHINI, "https://www.wikihow.com/Marinate-Pork", "https://www.wikihow.com/Grill-Fish"]
# a step summary of the page's "Variations" method, reworded by an editor (in the page and its JSON-LD)
OLD_STEP, NEW_STEP = b"for a fun twist.", b"for a fun and easy twist."


def _cfg(archive: Path):
    # the scorer stage trains a model: its own tests cover it; these compare the data between versions
    return load_config(overrides=[f'source.archive="{archive}"', "source.pages_per_shard=2", "scorer.enabled=false"])


def _data_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for sub in ("corpus", "queries", "qrels")
            for p in sorted((root / sub).glob("*.parquet"))}


def _rows(root: Path, config: str, columns: list[str]) -> dict[str, list[dict]]:
    return {f.name.split("-")[0]: pq.read_table(f, columns=columns).to_pylist()
            for f in sorted((root / config).glob("*.parquet"))}


def _sides(root: Path) -> dict[str, str]:
    return {r["article_id"]: split for split, rows in _rows(root, "queries", ["article_id"]).items() for r in rows}


@pytest.fixture(scope="module")
def four_pages(tmp_path_factory, sample_archive) -> Path:
    return small_archive(sample_archive, tmp_path_factory.mktemp("four") / "archive", PAGES)


@pytest.fixture(scope="module")
def first(tmp_path_factory, four_pages) -> Path:
    out = tmp_path_factory.mktemp("v1") / "v1"
    build.run_build(_cfg(four_pages), out)
    return out


def test_a_rebuild_against_the_first_version_reports_no_change_and_writes_the_same_bytes(first, four_pages, tmp_path):
    out = tmp_path / "v2"
    logs: list[str] = []
    result = build.run_build(_cfg(four_pages), out, log=logs.append, previous=str(first))
    assert result["validation_problems"] == []
    changes = json.loads((out / "manifest.json").read_text())["changes"]
    docs, queries = changes["documents"], changes["queries"]
    assert docs["added"] == docs["removed"] == docs["changed"] == []
    assert docs["unchanged"] == result["documents"] > 0
    assert queries["new"] == queries["changed"] == queries["removed"] == queries["moved_test_to_train"] == []
    assert queries["carried_over"] == sum(result["queries"].values()) > 0
    assert changes["bump"] == "patch" and changes["schema_changed"] is False
    assert _data_bytes(out) == _data_bytes(first)  # a re-release of an unchanged crawl: the same data files
    card = (out / "README.md").read_text()
    assert f"## Changes since {first}" in card and "None: the documents and queries are those of" in card
    assert any(line.startswith(f"changes since {first}: documents 0 added, 0 removed, 0 changed") for line in logs)


def test_one_changed_page_is_exactly_one_changed_document_and_every_other_id_stays(first, four_pages, tmp_path):
    archive = shutil.copytree(four_pages, tmp_path / "archive")
    records = index_records(archive)
    page = next(r for r in records if r["url"] == ZUCCHINI)
    body = blob(archive, page["sha256"]).read_bytes()
    assert body.count(OLD_STEP) == 2
    edited = body.replace(OLD_STEP, NEW_STEP)
    page.update(sha256=put_blob(archive, edited), size=len(edited))
    write_index(archive, records)

    out = tmp_path / "v2"
    result = build.run_build(_cfg(archive), out, previous=str(first))
    manifest = json.loads((out / "manifest.json").read_text())
    docs = manifest["changes"]["documents"]
    assert docs["changed"] == ["wh-4346099-s2"]  # the "Variations" method, whose step was reworded
    assert docs["added"] == docs["removed"] == []
    old_ids = [r["id"] for rows in _rows(first, "corpus", ["id"]).values() for r in rows]
    new_rows = {r["id"]: r for rows in _rows(out, "corpus", ["id", "texts"]).values() for r in rows}
    assert sorted(new_rows) == sorted(old_ids) and result["documents"] == len(old_ids)
    assert any("for a fun and easy twist." in (t or "") for t in new_rows["wh-4346099-s2"]["texts"])
    # articles keep their side
    before, after = _sides(first), _sides(out)
    assert {a: after[a] for a in before if a in after} == {a: before[a] for a in before if a in after}
    assert "wh-4346099-s2" in (out / "README.md").read_text().split("## Changes since", 1)[1].split("##", 1)[0]
    assert validate_dataset(out, check_load=False, previous=str(first)) == []


def test_a_previous_article_keeps_its_side_whatever_the_draw():
    from wikihow_tiir.model import Interleaved, Query
    from wikihow_tiir.split import article_draw, split_queries

    def q(article: str) -> Query:
        return Query(id=f"q-{article}", positive_id=f"wh-{article}-s1", article_id=article, lang="en",
                     content=Interleaved())

    cfg = SplitConfig(test_share=0.5, seed=13)
    articles = [str(i) for i in range(40)]
    drawn = {x.article_id: x.split for qs in split_queries([q(a) for a in articles], cfg).values() for x in qs}
    flipped = {a: "train" if drawn[a] == "test" else "test" for a in articles[:10]}
    kept = split_queries([q(a) for a in articles], cfg, previous=flipped)
    sides = {x.article_id: x.split for qs in kept.values() for x in qs}
    assert all(sides[a] == flipped[a] for a in flipped)
    assert all(sides[a] == ("test" if article_draw(a, 13) < 0.5 else "train") for a in articles[10:])
    # the false-negative rule may move a NEW article to train, never one that was in test before
    pinned = split_queries([q(a) for a in articles], cfg, exclude_from_test={"q-0"}, previous={"0": "test"})
    assert [x.split for qs in pinned.values() for x in qs if x.article_id == "0"] == ["test"]


def test_validation_refuses_an_article_of_the_previous_test_split_in_train(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "publish"))
    from publish_helpers import make_dataset

    current = make_dataset(tmp_path / "current")  # article 0 in train, 1 and 2 in test
    previous = shutil.copytree(current, tmp_path / "previous")
    for config in ("queries", "qrels"):  # the previous version had them the other way round
        train, test = previous / config / "train-00000-of-00001.parquet", previous / config / "test-00000-of-00001.parquet"
        data = train.read_bytes()
        train.write_bytes(test.read_bytes())
        test.write_bytes(data)
    assert validate_dataset(current, check_load=False) == []
    problems = validate_dataset(current, check_load=False, previous=str(previous))
    assert problems == [f"queries/train: query q-0 is of article 0, which was in the test split of {previous}: a "
                        "test article never moves to train between versions"]
    # the test articles the manifest recorded are checked without the previous version at hand
    manifest = json.loads((current / "manifest.json").read_text())
    manifest["changes"] = {"previous": {"location": "org/x@v1.0.0", "version": "1.0.0", "test_articles": ["0"]}}
    (current / "manifest.json").write_text(json.dumps(manifest))
    assert any("was in the test split of v1.0.0" in p for p in validate_dataset(current, check_load=False))


def test_an_unreadable_previous_version_stops_the_build_before_any_work(tmp_path, four_pages):
    from wikihow_tiir.changelog import ChangelogError

    with pytest.raises(ChangelogError, match="the previous version .*nothing-here: no such folder"):
        build.run_build(_cfg(four_pages), tmp_path / "out", previous=str(tmp_path / "nothing-here"))
    assert not (tmp_path / "out").exists()
