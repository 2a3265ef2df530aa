"""The dataset folder's layout lives in `wikihow_tiir.layout` and Parquet I/O in `wikihow_tiir.storage`:
no other module spells a sub-path of the folder or a shard glob, or opens Parquet itself."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from wikihow_tiir import layout
from wikihow_tiir.storage import file_entries, write_sharded

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "wikihow_tiir").rglob("*.py"), *(ROOT / "flows").rglob("*.py")])
OWNERS = {"wikihow_tiir/layout.py", "wikihow_tiir/storage.py"}
_NAMES = r"(corpus|queries|qrels|work|rejects|report|audit|eval|scorer|README\.md|manifest\.json)"
SPELLINGS = {
    "a dataset sub-path joined by hand": re.compile(rf"/\s*[\"']{_NAMES}[\"'/]"),
    "a shard glob": re.compile(r"-\*(-of-\*)?\.parquet|shard-\*"),
    "a glob over a folder": re.compile(r"\.r?glob\("),
    "Parquet opened outside storage": re.compile(r"import pyarrow\.parquet|pq\.(ParquetFile|read_table|write_table)"),
}
# globs that are not over a dataset folder: the card's own declared patterns (validation checks them
# against the disk), the paper repository's layout, VGSI's image folder, the files of `evaluate`'s output
ALLOWED = {
    ("wikihow_tiir/publish/validate.py", "root.glob(pattern)"),
    ("wikihow_tiir/publish/paper_layout.py", '(out_dir / folder).glob("*")'),
    ("wikihow_tiir/sources/vgsi.py", 'self._root.rglob("*")'),
    ("wikihow_tiir/report/__init__.py", 'eval_dir.rglob("mme_sweep.png")'),
}


def _code_lines(text: str) -> dict[int, str]:
    """The source's lines without comments and docstrings (prose may name paths; code may not)."""
    docs: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            docs.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = dict(enumerate(text.splitlines(), 1))
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            lines[row] = lines[row][:col]
    return {n: line for n, line in lines.items() if n not in docs}


def test_no_module_but_layout_and_storage_spells_the_folder_layout_or_opens_parquet():
    found = []
    for path in SOURCES:
        rel = path.relative_to(ROOT).as_posix()
        if rel in OWNERS:
            continue
        for number, code in _code_lines(path.read_text(encoding="utf-8")).items():
            for what, pattern in SPELLINGS.items():
                if pattern.search(code) and not any(rel == f and snippet in code for f, snippet in ALLOWED):
                    found.append(f"{rel}:{number}: {what}: {code.strip()}")
    assert not found, "\n".join(found)


def test_the_check_above_would_see_a_hand_made_path():
    sample = ['files = sorted((root / "corpus").glob("*.parquet"))', 'p = out / f"{split}-*-of-*.parquet"',
              "import pyarrow.parquet as pq", 'd = Path(output) / "work" / stage']
    assert all(any(p.search(code) for p in SPELLINGS.values()) for s in sample for code in _code_lines(s).values())


def test_split_files_are_the_files_the_card_declares(tmp_path):
    from wikihow_tiir.publish.card import card_metadata

    rows = [{"query-id": f"q{i}", "corpus-id": f"d{i}", "score": 1} for i in range(5)]
    write_sharded(layout.config_dir(tmp_path, "qrels"), rows, "qrels", "test", rows_per_shard=2)
    write_sharded(layout.config_dir(tmp_path, "qrels"), rows[:1], "qrels", "train")
    meta = card_metadata({"files": file_entries(tmp_path)})
    declared = {(c["config_name"], d["split"]): d["path"] for c in meta["configs"] for d in c["data_files"]}
    assert declared == {("qrels", "test"): "qrels/test-*.parquet", ("qrels", "train"): "qrels/train-*.parquet"}
    for (config, split), pattern in declared.items():
        assert layout.split_files(tmp_path, config, split) == sorted(tmp_path.glob(pattern))
    assert [p.name for p in layout.split_files(tmp_path, "qrels", "test")] == [
        "test-00000-of-00003.parquet", "test-00001-of-00003.parquet", "test-00002-of-00003.parquet"]
    assert layout.splits_on_disk(tmp_path) == {"qrels": {"test", "train"}}


def test_a_writer_replaces_only_the_files_it_names(tmp_path):
    qrels = layout.config_dir(tmp_path, "qrels")
    rows = [{"query-id": "q", "corpus-id": "d", "score": 1}]
    write_sharded(qrels, rows * 3, "qrels", "test", rows_per_shard=1)
    (qrels / "test-mine.parquet").write_bytes(b"someone else's")
    write_sharded(qrels, rows, "qrels", "test")
    assert sorted(p.name for p in qrels.iterdir()) == ["test-00000-of-00001.parquet", "test-mine.parquet"]
    assert layout.is_own_data_file("qrels", "test-00000-of-00001.parquet")
    assert not layout.is_own_data_file("qrels", "test-mine.parquet")
    assert not layout.is_own_data_file("corpus", "test-00000-of-00001.parquet")


def test_work_shard_files_are_named_in_one_place(tmp_path):
    assert layout.shard_file(tmp_path, "queries", layout.work_shard_name(3), "rejects.jsonl") == \
        tmp_path / "work" / "queries" / "shard-00003.rejects.jsonl"
    assert layout.shard_file(tmp_path, "corpus", "shard-00000", "done").name == "shard-00000.done"
    with pytest.raises(ValueError, match="SHARD_KINDS"):
        layout.shard_file(tmp_path, "queries", "shard-00000", "articles.jsonl")
