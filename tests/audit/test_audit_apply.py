"""`wikihow-tiir audit DATASET --apply`: dropped pairs leave the test split, the manifest and the card say so,
re-applying is idempotent, a re-run of the build keeps them dropped, and bad decision files are refused."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from audit_helpers import build_config, decision, folder_bytes, split_ids, write_decisions
from typer.testing import CliRunner

from wikihow_tiir.cli import app
from wikihow_tiir.publish.validate import validate_dataset
from wikihow_tiir.storage import file_entries


def audit(*args: str | Path):
    return CliRunner().invoke(app, ["audit", *(str(a) for a in args)])


def dataset_bytes(root: Path) -> dict[str, str]:
    """The dataset and the stored audit (report/ and work/ are for people and resume)."""
    return {k: v for k, v in folder_bytes(root).items() if not k.startswith(("report/", "work/", "rejects/"))}


def manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


@pytest.fixture
def three(dataset, tmp_path):
    """A decision file: keep the first test pair, drop the second (illogical), drop the third (other + note)."""
    ids = split_ids(dataset, "queries", "test")
    assert len(ids) >= 4, ids  # the bundled build's test split (the fourth pair stays unaudited)
    path = write_decisions(tmp_path / "audit.jsonl", [
        decision(ids[0]), decision(ids[1], "drop", "illogical"),
        decision(ids[2], "drop", "other", note="the pictures repeat")])
    return dataset, ids, path


def test_apply_drops_exactly_the_dropped_pairs_and_records_the_audit(three):
    ds, ids, path = three
    before = folder_bytes(ds)
    result = audit(ds, "--apply", path)
    assert result.exit_code == 0, result.output
    kept = [ids[0], *ids[3:]]
    assert f"test split: {len(kept)} of {len(ids)} generated pairs kept after human review" in result.stdout
    assert split_ids(ds, "queries", "test") == kept
    assert split_ids(ds, "qrels", "test") == kept
    after = folder_bytes(ds)
    for rel in before:  # the corpus and the train split are never touched
        if rel.startswith(("corpus/", "queries/train-", "qrels/train-")):
            assert after[rel] == before[rel], rel
    m = manifest(ds)
    assert m["audit"] == {
        "pairs": {"generated": len(ids), "kept": len(kept), "dropped": 2, "unaudited": len(kept) - 1},
        "decisions": {"drop": 2, "keep": 1},
        "reasons": {"illogical": 1, "other": 1},
        "reviewers": {"ana": 3},
        "files": [{"name": "audit.jsonl", "sha256": m["audit"]["files"][0]["sha256"], "decisions": 3}],
        "stale": 0,
        "decisions_file": "audit/decisions.jsonl",
    }
    import hashlib

    assert m["audit"]["files"][0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert m["files"] == file_entries(ds)
    assert m["statistics"]["queries"]["test"]["examples"] == len(kept)
    card = (ds / "README.md").read_text()
    assert (f"test split: {len(kept)} of {len(ids)} generated pairs kept after human review "
            f"({len(kept) - 1} of the kept pairs not reviewed yet); dropped: 1 illogical, 1 other; "
            "reviewers: ana.") in card
    assert f"num_examples: {len(kept)}" in card  # the card's split sizes follow the files
    stored = [json.loads(line) for line in (ds / "audit" / "decisions.jsonl").read_text().splitlines()]
    assert [(d["query_id"], d["decision"], d["reason"], d["note"]) for d in stored] == [
        (ids[0], "keep", None, ""), (ids[1], "drop", "illogical", ""), (ids[2], "drop", "other", "the pictures repeat")]
    assert validate_dataset(ds) == []  # including the load_dataset read-back


def test_the_card_of_an_unaudited_build_says_so(sample_build):
    assert "the test split was not reviewed by people" in (sample_build / "README.md").read_text()
    assert "audit" not in manifest(sample_build)


def test_reapplying_the_same_files_gives_the_same_bytes(three, tmp_path):
    ds, ids, path = three
    assert audit(ds, "--apply", path).exit_code == 0
    first = folder_bytes(ds)
    copy = tmp_path / "elsewhere" / "audit.jsonl"  # the same file from another folder: the same record
    copy.parent.mkdir()
    shutil.copy(path, copy)
    result = audit(ds, "--apply", path, "--apply", copy)
    assert result.exit_code == 0, result.output
    assert folder_bytes(ds) == first


def test_decisions_accumulate_and_the_order_of_files_does_not_matter(dataset, sample_build, tmp_path):
    ids = split_ids(dataset, "queries", "test")
    a = write_decisions(tmp_path / "a.jsonl", [decision(ids[0], "drop", "image-text-mismatch", reviewer="ana")])
    b = write_decisions(tmp_path / "b.jsonl", [decision(ids[1], "drop", "invalid-content", reviewer="bo"),
                                               decision(ids[0], "drop", "image-text-mismatch", reviewer="bo",
                                                        note="second look")])
    assert audit(dataset, "--apply", a).exit_code == 0
    assert audit(dataset, "--apply", b).exit_code == 0  # ids[0] is gone already: b's agreeing decision is fine
    other = Path(shutil.copytree(sample_build, tmp_path / "other"))
    assert audit(other, "--apply", b, "--apply", a).exit_code == 0
    assert dataset_bytes(dataset) == dataset_bytes(other)
    m = manifest(dataset)["audit"]
    assert m["pairs"]["dropped"] == 2 and m["reviewers"] == {"ana": 1, "bo": 2}
    assert [f["name"] for f in m["files"]] == ["a.jsonl", "b.jsonl"]
    assert split_ids(dataset, "queries", "test") == ids[2:]


def test_a_rebuild_reapplies_the_decisions_instead_of_bringing_pairs_back(three, sample_archive):
    from wikihow_tiir.build import run_build

    ds, ids, path = three
    assert audit(ds, "--apply", path).exit_code == 0
    audited = dataset_bytes(ds)
    logs: list[str] = []
    result = run_build(build_config(sample_archive), ds, log=logs.append)
    assert result["validation_problems"] == []
    assert ids[1] not in split_ids(ds, "queries", "test") and ids[2] not in split_ids(ds, "queries", "test")
    assert dataset_bytes(ds) == audited  # the same bytes as the audited dataset, card and manifest included
    assert any(line.startswith(f"audit: test split: {len(ids) - 2} of {len(ids)}") for line in logs), logs


def test_a_rebuild_sets_decisions_on_pairs_it_no_longer_has_aside(dataset):
    """A build with other settings can reuse a query id for another text: a stored decision is bound to the
    pair's content, so it is kept aside (audit/stale.jsonl), not applied to a query nobody reviewed."""
    from wikihow_tiir.audit import reapply_after_build
    from wikihow_tiir.audit.apply import test_pairs

    ids = split_ids(dataset, "queries", "test")
    shas = test_pairs(dataset)
    (dataset / "audit").mkdir()
    write_decisions(dataset / "audit" / "decisions.jsonl", [
        {**decision(ids[0], "drop", "illogical"), "query_sha256": shas[ids[0]]},
        {**decision(ids[1], "drop", "illogical"), "query_sha256": "0" * 16},  # judged another text
        {**decision("q-gone", "drop", "illogical"), "query_sha256": "1" * 16},  # no longer generated
    ])
    summary = reapply_after_build(dataset)
    assert summary["stale"] == 2 and summary["pairs"] == {"generated": len(ids), "kept": len(ids) - 1,
                                                          "dropped": 1, "unaudited": len(ids) - 1}
    assert split_ids(dataset, "queries", "test") == ids[1:]
    stale = [json.loads(x)["query_id"] for x in (dataset / "audit" / "stale.jsonl").read_text().splitlines()]
    assert stale == sorted([ids[1], "q-gone"])
    kept = [json.loads(x)["query_id"] for x in (dataset / "audit" / "decisions.jsonl").read_text().splitlines()]
    assert kept == [ids[0]]


# --------------------------------------------------------------------------- errors: one line, nothing written


@pytest.fixture(scope="module")
def untouched(sample_build, tmp_path_factory):
    """One copy for all error cases: each must leave it byte for byte as it was."""
    ds = Path(shutil.copytree(sample_build, tmp_path_factory.mktemp("errors") / "ds"))
    return ds, folder_bytes(ds), split_ids(ds, "queries", "test"), split_ids(ds, "queries", "train")


def _bad_cases(test: list[str], train: list[str]) -> dict[str, tuple[list, str]]:
    q = test[0]
    return {name: (lines, expected) for name, lines, expected in [
        ("bad-json", [decision(q), '{"query_id": "' + test[1] + '", "decision": '], "line 2: not valid JSON"),
        ("not-object", ['["keep"]'], "line 1: expected a JSON object, got list"),
        ("no-reviewer", [{k: v for k, v in decision(q).items() if k != "reviewer"}],
         "line 1: the field 'reviewer' is missing"),
        ("empty-reviewer", [decision(q, reviewer="  ")], "line 1: 'reviewer' is empty"),
        ("bad-decision", [decision(q, "maybe")], "line 1: decision 'maybe' is not one of keep, drop"),
        ("bad-reason", [decision(q, "drop", "boring")], "line 1: reason 'boring' is not one of"),
        ("drop-no-reason", [decision(q, "drop")], "line 1: a drop needs a reason"),
        ("other-no-note", [decision(q, "drop", "other")], "line 1: a drop for reason 'other' needs a note"),
        ("keep-with-reason", [decision(q, "keep", "illogical")], "line 1: a keep takes no reason"),
        ("typo-field", [{**decision(q), "reviewr": "x"}], "line 1: unknown field(s) 'reviewr'"),
        ("wrong-type", [{**decision(q), "note": 3}], "line 1: 'note' must be a string, not int"),
        ("unknown-id", [decision(q), "", decision("q-nope")], "line 3: query id 'q-nope' is not a test pair"),
        ("train-id", [decision(train[0])], "(it is a train query; only the test split is audited)"),
        ("conflict", [decision(q), decision(test[1]), decision(q, "drop", "illogical")],
         f"line 3: conflicting decisions for query {q!r}: drop (illogical) by 'ana' here, keep by 'ana' in "),
        ("conflicting-reasons", [decision(q, "drop", "illogical"), decision(q, "drop", "invalid-content", reviewer="bo")],
         "line 2: conflicting decisions"),
    ]}


BAD_CASES = ["bad-json", "not-object", "no-reviewer", "empty-reviewer", "bad-decision", "bad-reason",
             "drop-no-reason", "other-no-note", "keep-with-reason", "typo-field", "wrong-type", "unknown-id",
             "train-id", "conflict", "conflicting-reasons"]


@pytest.mark.parametrize("name", BAD_CASES)
def test_a_bad_decision_file_is_one_clear_error_and_nothing_is_written(untouched, tmp_path, name):
    ds, before, test, train = untouched
    cases = _bad_cases(test, train)
    assert sorted(cases) == sorted(BAD_CASES)
    lines, expected = cases[name]
    path = write_decisions(tmp_path / f"{name}.jsonl", lines)
    good = write_decisions(tmp_path / "good.jsonl", [decision(test[2], "drop", "illogical")])
    result = audit(ds, "--apply", good, "--apply", path)  # a good file first: it must not be applied either
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path} line "), err
    assert expected in err[0], err[0]
    assert "Traceback" not in result.output
    assert folder_bytes(ds) == before


def test_conflicts_across_files_and_with_applied_decisions_name_both_places(untouched, dataset, tmp_path):
    ds, before, test, _ = untouched
    a = write_decisions(tmp_path / "a.jsonl", [decision(test[0]), decision(test[1], "drop", "illogical")])
    b = write_decisions(tmp_path / "b.jsonl", [decision(test[1], "keep", reviewer="bo")])
    result = audit(ds, "--apply", a, "--apply", b)
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {b} line 1: conflicting decisions for query {test[1]!r}: keep by 'bo' "
                                     f"here, drop (illogical) by 'ana' in {a} line 2")
    assert folder_bytes(ds) == before
    # with decisions applied earlier (the pair is gone from the split by now): the stored file is named
    assert audit(dataset, "--apply", a).exit_code == 0
    applied = folder_bytes(dataset)
    result = audit(dataset, "--apply", b)
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {b} line 1: conflicting decisions for query {test[1]!r}: keep by 'bo' "
                                     f"here, drop (illogical) by 'ana' in {dataset / 'audit' / 'decisions.jsonl'} "
                                     "line 2")
    assert folder_bytes(dataset) == applied


def test_unreadable_files_and_wrong_arguments_are_clear_errors(untouched, tmp_path):
    ds, before, test, _ = untouched
    cases = [
        (["--apply", tmp_path / "missing.jsonl"], f"error: {tmp_path / 'missing.jsonl'}: no such file"),
        (["--apply", write_bytes(tmp_path / "latin1.jsonl", b'\n{"note": "caf\xe9"}\n')],
         f"error: {tmp_path / 'latin1.jsonl'} line 2: not UTF-8 text (byte 14 of the file cannot be decoded)"),
        (["--apply", tmp_path], f"error: {tmp_path}: is a folder, not a decision file"),
        ([], "error: give either --output review.html (write the review page) or --apply audit.jsonl"),
        (["--output", tmp_path / "r.html", "--apply", tmp_path / "missing.jsonl"], "error: give either --output"),
    ]
    for args, expected in cases:
        result = audit(ds, *args)
        assert result.exit_code == 2, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(expected), result.stderr
    result = audit(tmp_path / "no-such-build", "--apply", tmp_path / "missing.jsonl")
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {tmp_path / 'no-such-build'}: not a folder")
    assert folder_bytes(ds) == before


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_two_reviewers_agreeing_on_a_pair_is_not_a_conflict(dataset, tmp_path):
    ids = split_ids(dataset, "queries", "test")
    a = write_decisions(tmp_path / "a.jsonl", [decision(ids[0], "drop", "illogical", reviewer="ana")])
    b = write_decisions(tmp_path / "b.jsonl", [decision(ids[0], "drop", "illogical", reviewer="bo", note="agree")])
    result = audit(dataset, "--apply", a, "--apply", b)
    assert result.exit_code == 0, result.output
    m = manifest(dataset)["audit"]
    assert m["pairs"]["dropped"] == 1 and m["reasons"] == {"illogical": 1} and m["reviewers"] == {"ana": 1, "bo": 1}


def test_dropping_every_pair_leaves_no_test_files_and_a_valid_dataset(dataset, tmp_path):
    ids = split_ids(dataset, "queries", "test")
    path = write_decisions(tmp_path / "all.jsonl", [decision(i, "drop", "invalid-content") for i in ids])
    assert audit(dataset, "--apply", path).exit_code == 0
    assert not list((dataset / "queries").glob("test-*")) and not list((dataset / "qrels").glob("test-*"))
    m = manifest(dataset)
    assert "test" not in m["statistics"]["queries"] and m["audit"]["pairs"]["kept"] == 0
    assert f"test split: 0 of {len(ids)} generated pairs kept" in (dataset / "README.md").read_text()
    assert validate_dataset(dataset, check_load=False) == []
    first = folder_bytes(dataset)
    assert audit(dataset, "--apply", path).exit_code == 0
    assert folder_bytes(dataset) == first
    result = audit(dataset, "--output", tmp_path / "r.html")
    assert result.exit_code == 2 and f"all {len(ids)} were dropped by earlier decisions" in result.stderr


def test_a_test_split_in_several_files_keeps_the_build_layout(dataset, tmp_path):
    """With output.rows_per_file = 2 the rewritten split is test-0000i-of-0000N again, no old file left."""
    from wikihow_tiir.io import atomic_write_json
    from wikihow_tiir.layout import split_files
    from wikihow_tiir.storage import read_rows, write_sharded

    rows = list(read_rows(split_files(dataset, "queries", "test")))
    write_sharded(dataset / "queries", rows, "queries", "test", rows_per_shard=2)
    m = manifest(dataset)
    m["config"]["output"]["rows_per_file"] = 2
    m["files"] = file_entries(dataset)
    atomic_write_json(dataset / "manifest.json", m)
    ids = [r["id"] for r in rows]
    assert audit(dataset, "--apply", write_decisions(tmp_path / "a.jsonl", [decision(ids[0], "drop", "illogical")])
                 ).exit_code == 0
    n = -(-(len(ids) - 1) // 2)
    assert sorted(p.name for p in (dataset / "queries").glob("test-*")) == [
        f"test-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    expected = tmp_path / "expected"
    write_sharded(expected, rows[1:], "queries", "test", rows_per_shard=2)
    for f in expected.iterdir():  # the same bytes as writing the kept rows directly
        assert (dataset / "queries" / f.name).read_bytes() == f.read_bytes()
    assert not (dataset / "audit" / ".staging").exists()
    assert validate_dataset(dataset, check_load=False) == []


def test_a_hand_maintained_card_is_left_alone(dataset, tmp_path):
    from wikihow_tiir.publish.card import GENERATED_MARKER

    card = dataset / "README.md"
    card.write_text(card.read_text().replace(GENERATED_MARKER, ""))
    before = card.read_bytes()
    ids = split_ids(dataset, "queries", "test")
    result = audit(dataset, "--apply", write_decisions(tmp_path / "a.jsonl", [decision(ids[0])]))
    assert result.exit_code == 0 and "README.md is maintained by hand" in result.stdout
    assert card.read_bytes() == before and "audit" in manifest(dataset)


def test_a_damaged_decision_store_is_named_and_stops_the_build(dataset, sample_archive, tmp_path):
    from wikihow_tiir.build import BuildError, run_build

    (dataset / "audit").mkdir()
    store = dataset / "audit" / "decisions.jsonl"
    store.write_text('{"query_id": "q-1", "decision": "keep"\n')
    ids = split_ids(dataset, "queries", "test")
    result = audit(dataset, "--apply", write_decisions(tmp_path / "a.jsonl", [decision(ids[0])]))
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {store} line 1: not valid JSON")
    with pytest.raises(BuildError, match=re.escape(f"stored audit decisions cannot be applied: {store} line 1")):
        run_build(build_config(sample_archive), dataset)
    store.unlink()
    (dataset / "audit" / "applied.jsonl").write_text('{"name": "a.jsonl"}\n')
    result = audit(dataset, "--apply", write_decisions(tmp_path / "a.jsonl", [decision(ids[0])]))
    assert result.exit_code == 2 and result.stderr.startswith(
        f"error: {dataset / 'audit' / 'applied.jsonl'} line 1: not a record of an applied file (KeyError: 'sha256')")
