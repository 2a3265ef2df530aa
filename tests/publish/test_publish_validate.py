"""Validation before publishing: each kind of breakage is found and named."""

from __future__ import annotations

import json
from pathlib import Path

from publish_helpers import manifest_of, rewrite

from wikihow_tiir.layout import DATASET_PATTERNS, dataset_files
from wikihow_tiir.publish.card import render_card
from wikihow_tiir.publish.validate import validate_dataset
from wikihow_tiir.storage import file_entries


def test_valid_dataset_has_no_problems(tiny_dataset: Path) -> None:
    assert validate_dataset(tiny_dataset) == []


def test_file_entries_and_allowlist(tiny_dataset: Path) -> None:
    entries = file_entries(tiny_dataset)
    assert sorted(entries) == ["corpus/corpus-00000-of-00002.parquet", "corpus/corpus-00001-of-00002.parquet",
                               "qrels/test-00000-of-00001.parquet", "qrels/train-00000-of-00001.parquet",
                               "queries/test-00000-of-00001.parquet", "queries/train-00000-of-00001.parquet"]
    assert entries["corpus/corpus-00000-of-00002.parquet"]["rows"] == 3
    assert entries["corpus/corpus-00001-of-00002.parquet"]["rows"] == 1
    assert len(entries["qrels/test-00000-of-00001.parquet"]["sha256"]) == 64
    files = [p.as_posix() for p in dataset_files(tiny_dataset)]
    assert files[:2] == ["README.md", "manifest.json"] and len(files) == 8
    assert not any(f.startswith(("rejects", "report", "work", "eval")) for f in files)
    assert "README.md" in DATASET_PATTERNS and "corpus/*.parquet" in DATASET_PATTERNS


def test_sha256_mismatch_and_unlisted_files(tiny_dataset: Path) -> None:
    manifest = manifest_of(tiny_dataset)
    manifest["files"]["qrels/test-00000-of-00001.parquet"]["sha256"] = "f" * 64
    del manifest["files"]["qrels/train-00000-of-00001.parquet"]
    manifest["files"]["corpus/corpus-00009-of-00010.parquet"] = {"sha256": "0" * 64, "bytes": 1, "rows": 1}
    (tiny_dataset / "manifest.json").write_text(json.dumps(manifest))
    problems = validate_dataset(tiny_dataset)
    assert "qrels/test-00000-of-00001.parquet: sha256 differs from manifest.json (file changed after the build?)" \
        in problems
    assert "qrels/train-00000-of-00001.parquet: on disk but not listed in manifest.json" in problems
    assert "corpus/corpus-00009-of-00010.parquet: listed in manifest.json but missing on disk" in problems


def test_duplicate_ids(tiny_dataset: Path) -> None:
    rewrite(tiny_dataset, "corpus/corpus-00001-of-00002.parquet", "corpus",
            lambda rows: rows[0].update(id="wh-0-s1"))
    problems = validate_dataset(tiny_dataset)
    assert "corpus/corpus: id 'wh-0-s1' appears more than once" in problems


def test_dangling_qrels_and_positive_ids(tiny_dataset: Path) -> None:
    rewrite(tiny_dataset, "qrels/test-00000-of-00001.parquet", "qrels",
            lambda rows: rows[0].update({"corpus-id": "wh-404-s1", "query-id": "q-404"}))
    rewrite(tiny_dataset, "queries/train-00000-of-00001.parquet", "queries",
            lambda rows: rows[0].update(positive_id="wh-nowhere"))
    problems = validate_dataset(tiny_dataset)
    assert "qrels/test: query-id 'q-404' is not a test query" in problems
    assert "qrels/test: corpus-id 'wh-404-s1' is not in the corpus" in problems
    assert "queries/train: query 'q-0' has positive_id 'wh-nowhere', which is not in the corpus" in problems


def test_undecodable_image_and_bad_positions(tiny_dataset: Path) -> None:
    def break_rows(rows):
        rows[0]["images"][3] = {"bytes": b"not an image", "path": None}
        rows[1]["texts"][3] = "text where an image is"

    rewrite(tiny_dataset, "corpus/corpus-00000-of-00002.parquet", "corpus", break_rows)
    problems = validate_dataset(tiny_dataset)
    assert any(p.startswith("corpus/corpus: row 'wh-0-s1' image at position 3 does not decode") for p in problems)
    assert "corpus/corpus: row 'wh-1-s1' position 3 must hold exactly one of text / image" in problems


def test_card_problems(tiny_dataset: Path) -> None:
    card = tiny_dataset / "README.md"
    card.write_text("# no yaml header\n")
    assert validate_dataset(tiny_dataset) == ["README.md: the card does not start with a '---' YAML header"]
    text = render_card(manifest_of(tiny_dataset))
    card.write_text(text.replace("license: cc-by-nc-sa-3.0", "license: mit")
                    .replace("path: qrels/test-*.parquet", "path: qrels/nothing-*.parquet")
                    .replace("  - name: score\n    dtype: int32", "  - name: score\n    dtype: string"))
    problems = validate_dataset(tiny_dataset)
    assert "README.md: license is 'mit', expected 'cc-by-nc-sa-3.0'" in problems
    assert "README.md: config 'qrels' split 'test' points at 'qrels/nothing-*.parquet', which matches no file" \
        in problems
    assert "README.md: dataset_info features of 'qrels' differ from the data model" in problems


def test_load_dataset_read_back_is_checked(tiny_dataset: Path) -> None:
    # a card whose data_files glob swallows another split: rows on disk != rows loaded
    text = (tiny_dataset / "README.md").read_text()
    (tiny_dataset / "README.md").write_text(text.replace("path: queries/train-*.parquet",
                                                         "path: queries/*-*.parquet"))
    problems = validate_dataset(tiny_dataset)
    assert any(p.startswith("load_dataset('queries')") for p in problems), problems
    assert validate_dataset(tiny_dataset, check_load=False) == []


def test_missing_pieces(tmp_path: Path, tiny_dataset: Path) -> None:
    assert validate_dataset(tmp_path / "nope") == [f"{tmp_path / 'nope'}: not a folder"]
    (tiny_dataset / "manifest.json").unlink()
    for p in (tiny_dataset / "qrels").glob("*.parquet"):
        p.unlink()
    problems = validate_dataset(tiny_dataset)
    assert "qrels/: no Parquet files" in problems and "manifest.json is missing" in problems


# --------------------------------------------------------------------------- row consistency and text checks

QRELS_TEST = "qrels/test-00000-of-00001.parquet"
QUERIES_TEST = "queries/test-00000-of-00001.parquet"
CORPUS_0 = "corpus/corpus-00000-of-00002.parquet"  # wh-0-s1, wh-1-s1, wh-2-s1


def test_qrel_pointing_at_another_document_than_the_positive(tiny_dataset: Path) -> None:
    rewrite(tiny_dataset, QRELS_TEST, "qrels", lambda rows: rows[0].update({"corpus-id": "wh-3-s1"}))
    assert validate_dataset(tiny_dataset, check_load=False) == [
        "qrels/test: query-id 'q-1' points at corpus-id 'wh-3-s1', but the query's positive_id is 'wh-1-s1'"]


def test_duplicate_qrel_rows(tiny_dataset: Path) -> None:
    rewrite(tiny_dataset, QRELS_TEST, "qrels", lambda rows: rows.append(dict(rows[0])))
    assert validate_dataset(tiny_dataset, check_load=False) == [
        "qrels/test: the row (query-id 'q-1', corpus-id 'wh-1-s1') appears 2 times"]


def test_query_without_a_qrel(tiny_dataset: Path) -> None:
    rewrite(tiny_dataset, QRELS_TEST, "qrels", lambda rows: rows.pop(0))
    assert validate_dataset(tiny_dataset, check_load=False) == ["queries/test: query 'q-1' has no row in qrels/test"]


def test_same_article_in_train_and_test(tiny_dataset: Path) -> None:
    # wh-1-s1 becomes a second section of article 0, whose other section has the train query q-0
    rewrite(tiny_dataset, CORPUS_0, "corpus", lambda rows: rows[1].update(article_id="0"))
    rewrite(tiny_dataset, QUERIES_TEST, "queries", lambda rows: rows[0].update(article_id="0"))
    # check_load=False is the quick validation every build runs, so the leak check runs on every build
    assert validate_dataset(tiny_dataset, check_load=False) == [
        "queries: article '0' has queries in more than one split (test: 'q-1'; train: 'q-0'); "
        "an article must be on one side only"]


def test_query_of_another_article_than_its_positive(tiny_dataset: Path) -> None:
    # an article id that disagrees with the positive's would let a leak slip past the check above
    rewrite(tiny_dataset, QUERIES_TEST, "queries", lambda rows: rows[0].update(article_id="3"))
    assert validate_dataset(tiny_dataset, check_load=False) == [
        "queries/test: query 'q-1' has article_id '3', but its positive document 'wh-1-s1' is of article '1'"]


def test_query_without_text(tiny_dataset: Path) -> None:
    def blank(rows):
        rows[0]["texts"] = ["" if t is not None else None for t in rows[0]["texts"]]
        rows[1]["texts"] = [" \n" if t is not None else None for t in rows[1]["texts"]]

    rewrite(tiny_dataset, QUERIES_TEST, "queries", blank)
    assert validate_dataset(tiny_dataset, check_load=False) == [
        "queries/test: query 'q-1' has no text (a query needs words, not only images)",
        "queries/test: query 'q-2' has no text (a query needs words, not only images)"]


def test_control_characters_and_mojibake(tiny_dataset: Path) -> None:
    def corpus(rows):
        rows[0]["texts"][2] = "Step 1: do\x07 part 0."  # BEL (C0)
        rows[1]["goal"] = "How to Make CafÃ© au Lait"  # é read as Latin-1
        rows[2]["section_title"] = "Method\x85 2"  # NEL (C1)
        rows[2]["categories"] = ["Test", "Caf\ufffd"]

    def queries(rows):
        rows[0]["texts"][2] = "It donâ€™t work."  # ’ read as cp1252
        rows[1]["texts"][0] = "line\r\nbreak"  # CR: tab and newline are the only controls allowed

    rewrite(tiny_dataset, CORPUS_0, "corpus", corpus)
    rewrite(tiny_dataset, QUERIES_TEST, "queries", queries)
    assert validate_dataset(tiny_dataset, check_load=False) == [
        "corpus/corpus: row 'wh-0-s1' texts[2] holds the control character U+0007",
        "corpus/corpus: row 'wh-1-s1' goal looks like mojibake (UTF-8 decoded as another encoding) near "
        "'w to Make CafÃ© au Lait'",
        "corpus/corpus: row 'wh-2-s1' section_title holds the control character U+0085",
        "corpus/corpus: row 'wh-2-s1' categories[1] holds the replacement character U+FFFD "
        "(bytes lost when it was decoded)",
        "queries/test: row 'q-1' texts[2] looks like mojibake (UTF-8 decoded as another encoding) near "
        "'It donâ€™t work.'",
        "queries/test: row 'q-2' texts[0] holds the control character U+000D"]


def test_real_unicode_is_not_taken_for_mojibake(tiny_dataset: Path) -> None:
    def corpus(rows):
        rows[0]["texts"][2] = "Step 1:\tcut a 5–10 cm piece — the “café” way.\nThen rinse."
        rows[1]["goal"] = "手を洗う方法"
        rows[2]["section_title"] = "¿Qué? Ångström, naïve façade, Ø 5 mm, ½ cup, 10 °C"

    rewrite(tiny_dataset, CORPUS_0, "corpus", corpus)
    assert validate_dataset(tiny_dataset, check_load=False) == []


def test_cli_prints_every_problem_and_exits_1(tiny_dataset: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from wikihow_tiir.publish.cli import register

    rewrite(tiny_dataset, QRELS_TEST, "qrels", lambda rows: rows.append(dict(rows[0])))
    rewrite(tiny_dataset, QUERIES_TEST, "queries", lambda rows: rows[1]["texts"].__setitem__(0, "bad\x00"))
    app = typer.Typer()
    register(app)
    r = CliRunner().invoke(app, ["validate", str(tiny_dataset), "--no-load"])
    assert r.exit_code == 1
    assert f"{tiny_dataset}: 2 problem(s)" in r.output
    assert "  - queries/test: row 'q-2' texts[0] holds the control character U+0000" in r.output
    assert "  - qrels/test: the row (query-id 'q-1', corpus-id 'wh-1-s1') appears 2 times" in r.output
