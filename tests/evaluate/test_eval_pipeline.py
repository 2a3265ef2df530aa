"""End to end: the baselines on a tiny synthetic build, the output files, the CLI, the paper layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_synth import make_dataset, make_items, torch_one_thread, write_dataset  # noqa: F401 (autouse)
from typer.testing import CliRunner

from wikihow_tiir.evaluate.results import read_trec_run
from wikihow_tiir.evaluate.runner import evaluate_models
from wikihow_tiir.retrieval.dataset import DatasetError, load_split
from wikihow_tiir.retrieval.metrics import compute_metrics

BASELINES = ["bm25", "minilm", "fusion-effnet"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def evaluated(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    return out, evaluate_models(dataset, BASELINES, split="test", output=out)


def test_baselines_write_every_file(evaluated):
    out, summary = evaluated
    table = (out / "comparison.md").read_text()
    for model in BASELINES:
        assert f"| {model} |" in table
        assert (out / "runs" / f"{model}.trec").is_file()
        assert (out / "per_query" / f"{model}.tsv").read_text().count("\n") == 1 + 6
    assert "| Model | R@5 | MRR@5 | MRR@10 | nDCG@5 | nDCG@10 |" in table
    assert summary["dataset"]["n_queries"] == 6 and summary["dataset"]["n_documents"] == 12


def test_result_json_has_mteb_shape(evaluated):
    out, summary = evaluated
    result = json.loads((out / "results" / "minilm.json").read_text())
    scores = result["scores"]["test"][0]
    assert result["task_name"] == "WikiHowTIIRRetrieval"
    assert scores["main_score"] == scores["ndcg_at_10"] == summary["models"]["minilm"]["metrics"]["ndcg_at_10"]
    for key in ("recall_at_5", "mrr_at_5", "mrr_at_10", "ndcg_at_5", "recall_at_100"):
        assert 0.0 <= scores[key] <= 1.0
    assert scores["hf_subset"] == "default"


def test_real_models_find_the_positives(evaluated):
    _, summary = evaluated
    # each synthetic query paraphrases its topic; its positive is one of two same-topic documents
    for model in BASELINES:
        assert summary["models"][model]["metrics"]["recall_at_5"] == 1.0, model
    assert summary["models"]["minilm"]["metrics"]["mrr_at_10"] >= 0.5


def test_run_file_round_trips_to_the_same_metrics(evaluated, dataset):
    out, summary = evaluated
    qrels = load_split(dataset, "test").qrels
    for model in BASELINES:
        run = read_trec_run(out / "runs" / f"{model}.trec")
        assert compute_metrics(qrels, run) == summary["models"][model]["metrics"]


def test_same_inputs_same_bytes(dataset, evaluated, tmp_path):
    out, _ = evaluated
    evaluate_models(dataset, BASELINES, output=tmp_path)
    files = [p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != "timings.json"]
    assert len(files) == 3 * 3 + 2
    for rel in files:
        assert (tmp_path / rel).read_bytes() == (out / rel).read_bytes(), rel


def test_cli_prints_the_table(dataset, tmp_path):
    from wikihow_tiir.cli import app

    res = CliRunner().invoke(app, ["evaluate", "--dataset", str(dataset), "--model", "bm25",
                                   "--output", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert "| bm25 |" in res.output
    assert (tmp_path / "cli" / "comparison.md").is_file()


def test_cli_reports_bad_input_cleanly(dataset, tmp_path):
    from wikihow_tiir.cli import app

    res = CliRunner().invoke(app, ["evaluate", "--dataset", str(dataset), "--split", "dev", "--model", "bm25",
                                   "--output", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert "split 'dev' has no queries" in res.output and "test" in res.output


def test_paper_layout_scores_like_ours(dataset, evaluated, tmp_path):
    from wikihow_tiir.publish.paper_layout import write_paper_layout

    write_paper_layout(dataset, tmp_path / "paper", split="test")
    out = tmp_path / "paper-eval"
    summary = evaluate_models(tmp_path / "paper", ["bm25", "minilm"], output=out, layout="paper")
    ours = evaluated[1]
    for model in ("bm25", "minilm"):
        for metric, value in ours["models"][model]["metrics"].items():
            assert summary["models"][model]["metrics"][metric] == pytest.approx(value, abs=1e-6), (model, metric)


def test_paper_layout_hint_when_layout_is_wrong(dataset, tmp_path):
    from wikihow_tiir.publish.paper_layout import write_paper_layout

    write_paper_layout(dataset, tmp_path / "paper", split="test")
    with pytest.raises(DatasetError, match="--layout paper"):
        load_split(tmp_path / "paper", "test")


def test_text_models_run_without_images_but_image_models_name_the_ids(tmp_path):
    root = write_dataset(tmp_path / "d", *make_items(missing_image_doc="wh-3-s2"))
    summary = evaluate_models(root, ["bm25", "minilm"], output=tmp_path / "ok")
    assert summary["models"]["minilm"]["metrics"]["recall_at_5"] == 1.0
    with pytest.raises(DatasetError, match=r"missing image bytes: \['wh-3-s2'\]"):
        evaluate_models(root, ["fusion-effnet"], output=tmp_path / "bad")


def test_duplicate_model_and_unknown_model(dataset, tmp_path):
    with pytest.raises(ValueError, match="listed twice"):
        evaluate_models(dataset, ["bm25", "bm25"], output=tmp_path)
    with pytest.raises(ValueError, match="unknown model 'bert'"):
        evaluate_models(dataset, ["bert"], output=tmp_path)


def test_hand_written_paper_repository_folder(tmp_path):
    """The paper's own format: a query's qid is its positive document's id; distractors have qid null."""
    from eval_synth import png

    root = tmp_path / "data"
    (root / "doc_images").mkdir(parents=True)
    (root / "query_images").mkdir()
    docs = {"1001": ("How to Grill Zucchini", "Slice the zucchini.", (200, 40, 40)),
            "1002": ("How to Paint a Wall", "Tape the edges.", (40, 60, 200)),
            "1003": ("How to Bake Bread", "Knead the dough.", (210, 170, 90))}
    lines = []
    for did, (title, step, color) in docs.items():
        for i in range(2):
            (root / "doc_images" / f"{did}_{i}.png").write_bytes(png(color, shade=i * 9))
        lines.append({"id": did, "data": [title, f"doc_images/{did}_0.png", step, f"doc_images/{did}_1.png"]})
    (root / "docs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    queries = [{"qid": "1001", "data": ["grill zucchini slices", "query_images/a.png", "query_images/b.png"]},
               {"qid": "1002", "data": ["paint the wall", "query_images/c.png", "query_images/d.png"]}]
    for name, color in zip("abcd", [(200, 40, 40), (190, 50, 40), (40, 60, 200), (50, 60, 190)], strict=True):
        (root / "query_images" / f"{name}.png").write_bytes(png(color))
    (root / "queries.jsonl").write_text("".join(json.dumps(x) + "\n" for x in queries))
    qrels = [{"qid": "1001", "did": "1001"}, {"qid": "1002", "did": "1002"}, {"qid": None, "did": "1003"}]
    (root / "qrels.jsonl").write_text("".join(json.dumps(x) + "\n" for x in qrels))

    out = tmp_path / "eval"
    summary = evaluate_models(tmp_path, ["bm25", "fusion-effnet"], output=out, layout="paper")
    assert summary["dataset"]["n_documents"] == 3 and summary["dataset"]["n_queries"] == 2
    assert summary["models"]["bm25"]["metrics"]["recall_at_1"] == 1.0
    run = read_trec_run(out / "runs" / "bm25.trec")
    assert max(run["1001"], key=run["1001"].get) == "1001"  # query id == document id is kept


def test_mme_checkpoint_plugs_in_with_its_sweep(dataset, tmp_path):
    from wikihow_tiir.evaluate.baselines import ModelOptions
    from wikihow_tiir.mme import new_encoder

    new_encoder("mme-mini", image_size=96, max_length=64).save(tmp_path / "ckpt")  # untrained, 3x3 grid
    spec = f"mme:{tmp_path / 'ckpt'}"
    summary = evaluate_models(dataset, [spec], output=tmp_path / "o", options=ModelOptions(mme_n=3),
                              mme_sweep=True)
    assert summary["models"][spec]["name"] == "mme-mini@N=3"
    assert "| mme-mini@N=3 |" in (tmp_path / "o" / "comparison.md").read_text()
    assert "truncated_sequences" in summary["models"][spec]["report"]
    assert (tmp_path / "o" / "mme-sweep" / "mme_sweep.md").is_file()


def test_mme_sweep_needs_one_checkpoint(dataset, tmp_path):
    with pytest.raises(ValueError, match="exactly one --model mme or mme:PATH"):
        evaluate_models(dataset, ["bm25"], output=tmp_path, mme_sweep=True)
