"""The benchmark inside MTEB (mteb 2.x): the task runs on the bundled build and MTEB's numbers equal ours;
the ``text`` column (schema 1.1) and old builds without it."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

mteb = pytest.importorskip("mteb", reason="the mteb extra (installed by the dev extra)")

from wikihow_tiir.evaluate.mteb_task import WikiHowTIIRRetrieval  # noqa: E402
from wikihow_tiir.evaluate.results import TASK_NAME  # noqa: E402
from wikihow_tiir.evaluate.runner import evaluate_models  # noqa: E402
from wikihow_tiir.model import interleaved_text  # noqa: E402


def test_mteb_numbers_equal_ours_on_the_bundled_build(bundled_build, tmp_path):
    from sentence_transformers import SentenceTransformer

    from wikihow_tiir.encoders.minilm import model_path

    task = WikiHowTIIRRetrieval(path=bundled_build, images="none")
    assert task.metadata.name == TASK_NAME and task.metadata.main_score == "ndcg_at_10"
    assert task.metadata.category == "it2it" and "Towards Text-Image Interleaved Retrieval" in task.metadata.bibtex_citation
    result = mteb.evaluate(SentenceTransformer(model_path()), tasks=[task], cache=None)
    theirs = result.task_results[0].scores["test"][0]
    ours_summary = evaluate_models(bundled_build, ["minilm"], output=tmp_path)
    ours = ours_summary["models"]["minilm"]["metrics"]
    shared = sorted(set(ours) & set(theirs))
    assert {"ndcg_at_10", "recall_at_5", "mrr_at_10", "ndcg_at_5", "mrr_at_5"} <= set(shared)
    for metric in shared:  # equal to the precision MTEB keeps (it rounds nDCG and recall to 5 decimals)
        assert abs(theirs[metric] - ours[metric]) <= 5e-6, (metric, theirs[metric], ours[metric])
    assert theirs["main_score"] == round(ours["ndcg_at_10"], 5)
    # languages from the data: the bundled corpus has Japanese articles
    assert theirs["languages"] == ours_summary["dataset"]["languages"] == ["eng-Latn", "jpn-Jpan"]
    # our result file loads as an MTEB TaskResult of the same task
    loaded = mteb.TaskResult.from_disk(tmp_path / "results" / "minilm.json")
    assert loaded.task_name == task.metadata.name and loaded.get_score() == ours["ndcg_at_10"]


def test_the_text_column_is_the_text_positions_joined(bundled_build):
    for config in ("corpus", "queries"):
        for f in sorted((bundled_build / config).glob("*.parquet")):
            rows = pq.read_table(f, columns=["text", "texts"]).to_pylist()
            assert rows and all(r["text"] == interleaved_text(r["texts"]) for r in rows)
    card = (bundled_build / "README.md").read_text()
    assert "- name: text\n    dtype: string" in card and "`text` holds the text positions joined" in card
    assert json.loads((bundled_build / "manifest.json").read_text())["schema_version"] == "1.1"


@pytest.fixture
def old_build(bundled_build, tmp_path):
    """The bundled build as schema 1.0 wrote it: no ``text`` column, the 1.0 card."""
    from wikihow_tiir.io import atomic_write_json, atomic_write_text
    from wikihow_tiir.publish.card import render_card
    from wikihow_tiir.storage import file_entries

    root = tmp_path / "old"
    for part in ("corpus", "queries", "qrels"):
        shutil.copytree(bundled_build / part, root / part)
    for config in ("corpus", "queries"):
        for f in sorted((root / config).glob("*.parquet")):
            table = pq.read_table(f)
            pq.write_table(table.drop(["text"]).replace_schema_metadata(table.schema.metadata), f)
    manifest = json.loads((bundled_build / "manifest.json").read_text())
    manifest["schema_version"] = "1.0"
    manifest["files"] = file_entries(root)
    atomic_write_json(root / "manifest.json", manifest)
    atomic_write_text(root / "README.md", render_card(manifest))
    return root


def test_old_builds_stay_valid_and_readable(old_build, tmp_path):
    from wikihow_tiir.publish.validate import validate_dataset

    assert "- name: text\n" not in (old_build / "README.md").read_text()
    assert validate_dataset(old_build) == []
    summary = evaluate_models(old_build, ["bm25"], output=tmp_path / "o")
    assert summary["models"]["bm25"]["metrics"]["recall_at_100"] > 0
    task = WikiHowTIIRRetrieval(path=old_build, images="merged")
    task.load_data()
    split = task.dataset["default"]["test"]
    corpus = split["corpus"]
    assert corpus.column_names == ["id", "text", "image"]
    first = pq.read_table(sorted((old_build / "corpus").glob("*.parquet"))[0]).slice(0, 1).to_pylist()[0]
    row = corpus[0]
    assert row["id"] == first["id"] and row["text"] == interleaved_text(first["texts"])
    widths = [m["width"] for m in first["image_meta"] if m]
    assert row["image"].width == sum(widths)  # the item's pictures side by side


def test_stale_text_column_is_a_validation_problem(bundled_build, tmp_path):
    from wikihow_tiir.io import atomic_write_json
    from wikihow_tiir.publish.validate import validate_dataset
    from wikihow_tiir.storage import file_entries

    root = tmp_path / "copy"
    for part in ("corpus", "queries", "qrels", "README.md", "manifest.json"):
        src = bundled_build / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / part if src.is_dir() else root)
    f = sorted((root / "queries").glob("test-*.parquet"))[0]
    table = pq.read_table(f)
    texts = table.column("text").to_pylist()
    first_id = table.column("id")[0].as_py()
    texts[0] = "edited by another tool"
    import pyarrow as pa

    table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))
    pq.write_table(table, f)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"] = file_entries(root)
    atomic_write_json(root / "manifest.json", manifest)
    assert validate_dataset(root, check_load=False) == [
        f"queries/test: row {first_id!r} text is not its text positions joined with newlines (the derived column "
        f"is stale)"]
