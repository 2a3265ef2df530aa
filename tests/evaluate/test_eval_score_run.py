"""`wikihow-tiir score --run`: a TREC run file scored against the dataset's qrels with the paper's metrics
(the same numbers as `evaluate`), and `--model mme` where a dataset has no released scorer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_synth import make_dataset, torch_one_thread  # noqa: F401 (autouse)
from typer.testing import CliRunner

from wikihow_tiir.evaluate.runner import evaluate_models, score_run_file


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("synthetic"))


def test_a_run_file_scores_as_evaluate_scored_it(dataset, tmp_path):
    evaluate_models(dataset, ["bm25", "minilm"], output=tmp_path / "eval")
    for model in ("bm25", "minilm"):
        summary = score_run_file(dataset, tmp_path / "eval" / "runs" / f"{model}.trec")
        evaluated = json.loads((tmp_path / "eval" / "results" / f"{model}.json").read_text())["scores"]["test"][0]
        assert summary["name"] == model and summary["notes"] == [] and summary["leaderboard"] == {}
        assert all(abs(v - evaluated[k]) <= 1e-12 for k, v in summary["metrics"].items())
        assert f"| {model} |" in summary["table"]


def test_a_run_of_other_queries_and_documents_is_scored_with_notes(dataset, tmp_path):
    evaluate_models(dataset, ["bm25"], output=tmp_path / "eval")
    lines = (tmp_path / "eval" / "runs" / "bm25.trec").read_text().splitlines()
    first_query = lines[0].split()[0]
    kept = [ln for ln in lines if ln.split()[0] != first_query]  # one test query missing: it scores 0
    run = tmp_path / "mine.trec"
    run.write_text("\n".join(kept + ["train-q Q0 wh-0-s1 1 9.5 mine", "q-1 Q0 no-such-doc 1 99.0 mine"]) + "\n")
    summary = score_run_file(dataset, run, name="mine")
    assert summary["name"] == "mine"
    assert [n.split(" ")[0] for n in summary["notes"]] == ["1", "1", "1"]
    assert "not in split 'test' and were ignored" in summary["notes"][0]
    assert "score 0" in summary["notes"][1] and "not in the corpus" in summary["notes"][2]


def test_the_cli_gives_one_error_line_for_bad_input(dataset, tmp_path):
    from wikihow_tiir.cli import app

    missing = CliRunner().invoke(app, ["score", "--dataset", str(dataset), "--run", str(tmp_path / "none.trec")])
    assert missing.exit_code == 2 and "cannot read the run file" in missing.output
    empty = tmp_path / "empty.trec"
    empty.write_text("")
    res = CliRunner().invoke(app, ["score", "--dataset", str(dataset), "--run", str(empty)])
    assert res.exit_code == 2 and "holds no lines" in res.output
    res = CliRunner().invoke(app, ["evaluate", "--dataset", str(dataset), "--model", "mme",
                                   "--output", str(tmp_path / "o")])
    assert res.exit_code == 2 and "has no reference scorer" in res.output and "Traceback" not in res.output
