"""MME as a scorer: load_retrieval_model, the N sweep (table + plot), and the `mme` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from wikihow_tiir.mme.model import CheckpointError, new_encoder
from wikihow_tiir.mme.retrieval import load_retrieval_model, sweep


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("mme-ckpt") / "deepseek"
    new_encoder("tiny:deepseek_vl", seed=0).save(path)
    return path


def test_load_retrieval_model_defaults_and_separate_doc_n(tiny_checkpoint, mme_items):
    docs, queries, _ = mme_items
    model = load_retrieval_model(f"mme:{tiny_checkpoint}")
    assert model.n == model.doc_n == 2  # default 3, clipped to the divisors of the 8 x 8 grid
    assert model.name == "mme-deepseek_vl@N=2"
    q, d = model.encode_queries(queries), model.encode_documents(docs)
    assert q.shape == (len(queries), 32) and d.shape == (len(docs), 32)
    assert np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)
    mixed = load_retrieval_model(str(tiny_checkpoint), n=1, doc_n=8)
    assert (mixed.n, mixed.doc_n, mixed.name) == (1, 8, "mme-deepseek_vl@N=1/8")
    assert not np.allclose(mixed.encode_documents(docs), d)
    assert mixed.report()["truncated_sequences"] == 0
    with pytest.raises(ValueError, match=r"N=3 does not divide the 8x8 visual grid.*\[1, 2, 4, 8\]"):
        load_retrieval_model(str(tiny_checkpoint), n=3)


def test_load_retrieval_model_refuses_a_non_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not an MME checkpoint"):
        load_retrieval_model(str(tmp_path))


def test_sweep_scores_every_n_and_writes_table_and_plot(tiny_checkpoint, mme_items, tmp_path):
    docs, queries, qrels = mme_items
    qrels_dict = {r.query_id: {r.corpus_id: r.score} for r in qrels}
    result = sweep(docs, queries, qrels_dict, str(tiny_checkpoint), tmp_path / "out")
    assert [r["n"] for r in result["rows"]] == [1, 2, 4, 8]
    assert [r["visual_tokens_per_image"] for r in result["rows"]] == [1, 4, 16, 64]
    for r in result["rows"]:
        assert 0 <= r["ndcg_at_10"] <= 100 and 0 <= r["recall_at_5"] <= 100 and r["encode_seconds"] > 0
    lengths = [r["doc_seq_len_mean"] for r in result["rows"]]
    assert lengths == sorted(lengths) and lengths[-1] - lengths[0] == 3 * (64 - 1)  # 3 images per document
    assert json.loads((tmp_path / "out" / "mme_sweep.json").read_text())["rows"] == result["rows"]
    assert "| 8 | 64 |" in (tmp_path / "out" / "mme_sweep.md").read_text()
    assert (tmp_path / "out" / "mme_sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_train_and_sweep(mme_dataset, tmp_path):
    from wikihow_tiir.cli import app

    runner = CliRunner()
    out = tmp_path / "ck"
    res = runner.invoke(app, ["mme", "train", "--dataset", str(mme_dataset), "--output", str(out), "--epochs", "1",
                              "--backbone", "tiny:qwen2_5_vl", "--batch-size", "12", "--max-steps", "1"])
    assert res.exit_code == 0, res.output
    assert (out / "mme.json").is_file()
    res = runner.invoke(app, ["mme", "sweep", str(out), "--dataset", str(mme_dataset), "--split", "train",
                              "--output", str(tmp_path / "sw")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "sw" / "mme_sweep.png").is_file()
    bad = runner.invoke(app, ["mme", "train", "--dataset", str(tmp_path / "nothing"), "--output", str(out)])
    assert bad.exit_code == 2 and "no corpus" in bad.output
