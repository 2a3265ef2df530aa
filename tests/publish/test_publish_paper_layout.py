"""Export to / import from the layout of the paper's repository (vec-ai/wikiHow-TIIR)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import typer
from PIL import Image
from publish_helpers import make_dataset, manifest_of, png, rewrite
from typer.testing import CliRunner

from wikihow_tiir.layout import split_files
from wikihow_tiir.model import document_from_row, query_from_row
from wikihow_tiir.publish.cli import register
from wikihow_tiir.publish.paper_layout import (
    as_png,
    import_paper_layout,
    read_paper_layout,
    write_paper_layout,
)
from wikihow_tiir.publish.validate import validate_dataset
from wikihow_tiir.storage import read_rows


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
    root = make_dataset(tmp_path / "build")
    rewrite(root, "queries/test-00000-of-00001.parquet", "queries",
            lambda rows: rows[1].update(positive_id=rows[0]["positive_id"]))
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


# --------------------------------------------------------------------------- image paths stay inside the folder


def set_data(path: Path, line: int, index: int, value: str) -> None:
    """Replace element ``index`` of the ``data`` list on line ``line`` (0-based) of a jsonl file."""
    recs = lines(path)
    recs[line]["data"][index] = value
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))


def cli_import(source: Path, output: Path):
    app = typer.Typer()
    register(app)
    return CliRunner().invoke(app, ["import", str(source), "--output", str(output)])


@pytest.mark.parametrize("how", ["absolute", "dotdot", "file-symlink", "folder-symlink"])
def test_import_refuses_images_outside_the_folder(shared_dataset: Path, tmp_path: Path, how: str) -> None:
    out = tmp_path / "paper"
    write_paper_layout(shared_dataset, out)
    secret = tmp_path / "elsewhere" / "secret.png"  # a local file that is not part of the layout
    secret.parent.mkdir()
    secret.write_bytes(png(99))
    if how == "absolute":
        set_data(out / "docs.jsonl", 1, 3, str(secret))
        shown = f"docs.jsonl:2: {secret}"
    elif how == "dotdot":
        set_data(out / "docs.jsonl", 1, 3, "../elsewhere/secret.png")
        shown = "docs.jsonl:2: ../elsewhere/secret.png"
    elif how == "file-symlink":
        first = lines(out / "docs.jsonl")[1]["data"][3]
        (out / first).unlink()
        (out / first).symlink_to(secret)
        shown = f"docs.jsonl:2: {first}"
    else:  # query_images/ is a link to a folder outside, holding the query images (and anything else)
        for p in (out / "query_images").iterdir():
            p.rename(secret.parent / p.name)
        (out / "query_images").rmdir()
        (out / "query_images").symlink_to(secret.parent, target_is_directory=True)
        shown = "queries.jsonl:1: query_images/q-1_0.png"
    for require_images in (True, False):  # refused even where missing images would be tolerated
        with pytest.raises(ValueError, match=r"image path\(s\) of .* lead outside the imported folder") as exc:
            read_paper_layout(out, require_images=require_images)
        assert shown in str(exc.value)
    r = cli_import(out, tmp_path / "ours")
    assert r.exit_code == 2
    assert r.output.startswith("error: ") and "lead outside the imported folder" in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert not (tmp_path / "ours" / "corpus").exists()  # nothing half-imported to validate


def test_import_reads_paths_that_stay_inside(tmp_path: Path) -> None:
    """``..`` back into the folder, a clone-relative ``data/...`` path and a symlink inside are all fine."""
    clone = tmp_path / "clone"
    data = clone / "data"
    (data / "doc_images").mkdir(parents=True)
    for i in range(3):
        (data / "doc_images" / f"{i}.png").write_bytes(png(i))
    (data / "doc_images" / "link.png").symlink_to(data / "doc_images" / "2.png")
    (data / "docs.jsonl").write_text(json.dumps({"id": "d", "data": [
        "How to A", "../data/doc_images/0.png", "data/doc_images/1.png", "doc_images/link.png"]}) + "\n")
    (data / "queries.jsonl").write_text(json.dumps({"qid": "d", "data": ["help"]}) + "\n")
    (data / "qrels.jsonl").write_text('{"qid": "d", "did": "d"}\n')
    docs, _, _ = read_paper_layout(clone)
    assert docs[0].content.images[1:] == [png(0), png(1), png(2)]


# --------------------------------------------------------------------------- what survives a round trip


def test_round_trip_keeps_stand_ins_and_query_languages(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "build", stand_ins=False)
    corpus = "corpus/corpus-00000-of-00002.parquet"

    def japanese_doc(rows):
        doc = rows[1]  # wh-1-s1, the positive of the test query q-1
        doc.update(lang="ja", goal="手を洗う方法", section_title="方法1")
        doc["texts"] = ["手を洗う方法", "方法1", "手を濡らす。", None, "石鹸をつける。", None]
        doc["image_meta"][3]["stand_in"] = True  # one locally rendered stand-in among real images

    def japanese_query(rows):
        rows[0]["lang"] = "ja"
        rows[0]["texts"][0] = "手がうまく洗えません。"
        rows[0]["image_meta"][3]["stand_in"] = True  # a query image taken from a stand-in

    rewrite(root, corpus, "corpus", japanese_doc)
    rewrite(root, "queries/test-00000-of-00001.parquet", "queries", japanese_query)
    manifest = manifest_of(root)
    assert validate_dataset(root, check_load=False) == []

    write_paper_layout(root, tmp_path / "paper")
    summary = import_paper_layout(tmp_path / "paper", tmp_path / "ours")
    assert summary["queries"] == 2
    ours = tmp_path / "ours"
    docs = {r["id"]: r for r in read_rows(split_files(ours, "corpus", "corpus"))}
    assert [m["stand_in"] for m in docs["wh-1-s1"]["image_meta"] if m] == [True, False]
    assert not any(m["stand_in"] for d in ("wh-0-s1", "wh-2-s1", "wh-3-s1") for m in docs[d]["image_meta"] if m)
    assert docs["wh-1-s1"]["lang"] == "ja"
    queries = {r["id"]: r for r in read_rows(split_files(ours, "queries", "test"))}
    assert {q: r["lang"] for q, r in queries.items()} == {"q-1": "ja", "q-2": "en"}
    assert [m["stand_in"] for m in queries["q-1"]["image_meta"] if m] == [False, True]
    assert queries["q-1"]["texts"][0] == "手がうまく洗えません。"
    imported = manifest_of(ours)
    assert imported["stand_in_images"] == {"count": 1, "total": manifest["stand_in_images"]["total"]}
    assert "**Stand-in images.** 1 of 8 images" in (ours / "README.md").read_text()
    assert validate_dataset(ours) == []


def test_import_refuses_a_second_positive_a_repeated_query_and_bad_flags(shared_dataset: Path,
                                                                          tmp_path: Path) -> None:
    out = tmp_path / "paper"
    write_paper_layout(shared_dataset, out)
    qrels = (out / "qrels.jsonl").read_text()
    (out / "qrels.jsonl").write_text(qrels + '{"qid": "wh-1-s1", "did": "wh-0-s1"}\n')
    with pytest.raises(ValueError, match=r"qrels.jsonl:5: query 'wh-1-s1' already has a qrels row \(document "
                                         r"'wh-1-s1'\); each query has exactly one positive document"):
        read_paper_layout(out)
    (out / "qrels.jsonl").write_text(qrels)
    queries = (out / "queries.jsonl").read_text()
    first = lines(out / "queries.jsonl")[0]
    (out / "queries.jsonl").write_text(queries + json.dumps({**first, "qid": "wh-2-s1"}) + "\n")
    with pytest.raises(ValueError, match=r"queries.jsonl:3: query id 'q-1' appears twice"):
        read_paper_layout(out)
    (out / "queries.jsonl").write_text(queries)
    recs = lines(out / "docs.jsonl")
    recs[0]["stand_in"] = [True]
    (out / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(ValueError, match=r"docs.jsonl:1: 'stand_in' must be a list of 2 true/false flags"):
        read_paper_layout(out)
