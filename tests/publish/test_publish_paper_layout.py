"""Export to / import from the layout of the paper's repository (vec-ai/wikiHow-TIIR)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import typer
from PIL import Image
from publish_helpers import make_dataset
from typer.testing import CliRunner

from wikihow_tiir.model import document_from_row, query_from_row
from wikihow_tiir.publish.cli import register
from wikihow_tiir.publish.paper_layout import as_png, read_paper_layout, write_paper_layout
from wikihow_tiir.publish.parquet import read_rows, split_files
from wikihow_tiir.publish.validate import validate_dataset


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def read_like_the_paper_scripts(root: Path) -> dict:
    """The data-loading logic of the paper's src/*.py, restated (field names, lookups, ordering)."""
    qrels = lines(root / "qrels.jsonl")
    docs = {d["id"]: d["data"] for d in lines(root / "docs.jsonl")}
    queries = {}
    for q in lines(root / "queries.jsonl"):
        key = "id" if "id" in q else "qid"  # the text script prefers "id" when present
        queries[q[key]] = q["data"]
    # text script: row i -> (query text if qid else None, docs[qid or did])
    text_rows = []
    for row in qrels:
        data_id = row["qid"] if row["qid"] is not None else row["did"]
        query = None if row["qid"] is None else "\n".join(x for x in queries[data_id] if not x.endswith(".png"))
        text_rows.append((query, "\n".join(x for x in docs[data_id] if not x.endswith(".png"))))
    # multimodal script: query rows = rows with a qid, doc rows = every did; images opened as given
    query_ids = [r["qid"] for r in qrels if r["qid"] is not None]
    doc_ids = [r["did"] for r in qrels]
    images = [x for d in doc_ids for x in docs[d] if x.endswith(".png")]
    images += [x for q in query_ids for x in queries[q] if x.endswith(".png")]
    # retrieval.py: query i's positive is the i-th embedded document
    positives = {query_ids[i]: doc_ids[i] for i in range(len(query_ids))}
    return {"text_rows": text_rows, "positives": positives, "images": images, "docs": docs}


def test_export_is_readable_by_the_paper_logic(shared_dataset: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "paper"
    summary = write_paper_layout(shared_dataset, out, split="test")
    assert summary["documents"] == 4 and summary["queries"] == 2 and summary["qrels"] == 4
    assert summary["doc_images"] == 8 and summary["query_images"] == 4 and summary["skipped_queries"] == []
    monkeypatch.chdir(out)  # the scripts open image paths relative to where they run
    seen = read_like_the_paper_scripts(Path("."))
    test_queries = [query_from_row(r) for r in read_rows(split_files(shared_dataset, "queries", "test"))]
    # qrels: the query rows first, each query's positive = the document at the same index
    assert seen["positives"] == {q.positive_id: q.positive_id for q in test_queries}
    assert [r[0] is not None for r in seen["text_rows"]] == [True, True, False, False]
    assert seen["text_rows"][0][0] == "I need help with thing 1 (a).\nIt does not work."
    assert seen["text_rows"][0][1].startswith("How to Do Thing 1 (a)\nMethod 1\nStep 1:")
    for name in seen["images"]:
        with Image.open(name) as im:
            assert im.format == "PNG" and im.size == (24, 24)
    assert all(n.startswith(("doc_images/", "query_images/")) for n in seen["images"])
    # our query id travels in an extra key the scripts ignore
    assert [q["query_id"] for q in lines(Path("queries.jsonl"))] == ["q-1", "q-2"]


def test_export_is_deterministic_and_cleans_stale_images(shared_dataset: Path, tmp_path: Path) -> None:
    def snapshot(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    write_paper_layout(shared_dataset, tmp_path / "one")
    (tmp_path / "two" / "doc_images").mkdir(parents=True)
    (tmp_path / "two" / "doc_images" / "stale.png").write_bytes(b"old")
    write_paper_layout(shared_dataset, tmp_path / "two")
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "two")


def test_round_trip_through_the_paper_layout(shared_dataset: Path, tmp_path: Path) -> None:
    write_paper_layout(shared_dataset, tmp_path / "paper")
    docs, queries, qrels = read_paper_layout(tmp_path / "paper")
    original = {d.id: d for d in (document_from_row(r) for r in read_rows(split_files(shared_dataset, "corpus",
                                                                                        "corpus")))}
    assert sorted(d.id for d in docs) == sorted(original)
    for d in docs:
        o = original[d.id]
        assert d.content.texts == o.content.texts
        assert d.content.images == [None if b is None else as_png(b) for b in o.content.images]
        assert (d.article_id, d.url, d.lang, d.goal) == (o.article_id, o.url, o.lang, o.goal)
    assert [(q.id, q.positive_id, q.split) for q in queries] == [("q-1", "wh-1-s1", "test"),
                                                                ("q-2", "wh-2-s1", "test")]
    assert [(r.query_id, r.corpus_id, r.score) for r in qrels] == [("q-1", "wh-1-s1", 1), ("q-2", "wh-2-s1", 1)]
    assert queries[0].content.n_images == 2 and queries[0].content.image_meta[1].width == 24


def test_import_the_released_shape(tmp_path: Path) -> None:
    """A clone with data/, qids equal to doc ids, bare image file names, null-qid distractor rows."""
    data = tmp_path / "clone" / "data"
    (data / "doc_images").mkdir(parents=True)
    (data / "query_images").mkdir()
    for name in ("1_0_1.png", "1_0_2.png", "2_0_1.png", "2_0_2.png"):
        Image.new("RGB", (8, 8)).save(data / "doc_images" / name)
    Image.new("RGB", (8, 8)).save(data / "query_images" / "q1_a.png")
    (data / "docs.jsonl").write_text(
        json.dumps({"id": "1_0", "data": ["How to A", "Method", "Step one.", "1_0_1.png", "Step two.", "1_0_2.png"]})
        + "\n" + json.dumps({"id": "2_0", "data": ["How to B", "doc_images/2_0_1.png", "doc_images/2_0_2.png"]}) + "\n")
    (data / "queries.jsonl").write_text(json.dumps({"qid": "1_0", "data": ["help", "q1_a.png"]}) + "\n"
                                        + json.dumps({"qid": "orphan", "data": ["no qrels row"]}) + "\n")
    (data / "qrels.jsonl").write_text('{"qid": "1_0", "did": "1_0"}\n{"qid": null, "did": "2_0"}\n')
    docs, queries, qrels = read_paper_layout(tmp_path / "clone", split="test")
    assert [d.id for d in docs] == ["1_0", "2_0"]
    assert docs[0].goal == "How to A" and docs[0].section_title == "Method" and docs[0].content.n_images == 2
    assert docs[1].content.images[1] == (data / "doc_images" / "2_0_1.png").read_bytes()
    assert [(q.id, q.positive_id, q.split) for q in queries] == [("1_0", "1_0", "test")]
    assert [(r.query_id, r.corpus_id) for r in qrels] == [("1_0", "1_0")]


def test_import_reports_missing_images_and_bad_files(shared_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "paper"
    write_paper_layout(shared_dataset, out)
    (out / "doc_images" / "wh-0-s1_1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) .* docs.jsonl:\d+: doc_images/wh-0-s1_1.png"):
        read_paper_layout(out)
    docs, _, _ = read_paper_layout(out, require_images=False)
    hole = next(d for d in docs if d.id == "wh-0-s1").content
    assert hole.images[-1] is None and hole.image_meta[-1].source_url == "doc_images/wh-0-s1_1.png"
    (out / "qrels.jsonl").write_text('{"qid": "x", "did": "missing-doc"}\n')
    with pytest.raises(ValueError, match="not in docs.jsonl"):
        read_paper_layout(out, require_images=False)
    (out / "docs.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match=r"docs.jsonl:1: not JSON"):
        read_paper_layout(out)
    with pytest.raises(FileNotFoundError, match="not the paper's layout"):
        read_paper_layout(tmp_path)


def test_second_query_of_a_document_is_skipped_with_reason(tmp_path: Path) -> None:
    from publish_helpers import manifest_of

    from wikihow_tiir.io import atomic_write_json, atomic_write_text
    from wikihow_tiir.publish.card import render_card
    from wikihow_tiir.publish.manifest import file_entries
    from wikihow_tiir.publish.parquet import write_parquet

    root = make_dataset(tmp_path / "build")
    rel = root / "queries" / "test-00000-of-00001.parquet"
    rows = list(read_rows([rel]))
    rows[1]["positive_id"] = rows[0]["positive_id"]
    write_parquet(rel, rows, "queries")
    manifest = manifest_of(root)
    manifest["files"] = file_entries(root)
    atomic_write_json(root / "manifest.json", manifest)
    atomic_write_text(root / "README.md", render_card(manifest))
    summary = write_paper_layout(root, tmp_path / "paper")
    assert summary["queries"] == 1
    assert summary["skipped_queries"] == [{"query_id": "q-2", "reason": "document-already-has-a-query"}]
    assert json.loads((tmp_path / "paper" / "export.json").read_text())["skipped_queries"] == \
        summary["skipped_queries"]


def test_cli_export_then_import_gives_a_valid_dataset(shared_dataset: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    r = runner.invoke(app, ["export", str(shared_dataset), "--layout", "paper", "--output", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["documents"] == 4
    r = runner.invoke(app, ["import", str(tmp_path / "p"), "--output", str(tmp_path / "ours")])
    assert r.exit_code == 0, r.output
    assert validate_dataset(tmp_path / "ours") == []
    r = runner.invoke(app, ["validate", str(tmp_path / "ours"), "--no-load"])
    assert r.exit_code == 0 and "valid" in r.output
    r = runner.invoke(app, ["export", str(shared_dataset), "--layout", "beir", "--output", str(tmp_path / "x")])
    assert r.exit_code == 2 and "unknown layout" in r.output


def test_as_png_converts_jpeg_and_keeps_png() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (10, 6), (200, 10, 10)).save(buf, format="JPEG")
    out = as_png(buf.getvalue())
    with Image.open(io.BytesIO(out)) as im:
        assert im.format == "PNG" and im.size == (10, 6)
    assert as_png(out) is out
