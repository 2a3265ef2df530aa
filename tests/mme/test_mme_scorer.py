"""The reference scorer stage on a small synthetic dataset with a tiny backbone: what it writes, when it
retrains or re-scores, how validation catches a scorer that does not belong to its data, and loading it.
(The bundled build's scorer, its release and `evaluate --model mme`: tests/publish/test_publish_scorer.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from wikihow_tiir.config import load_config
from wikihow_tiir.mme.scorer import (
    ScorerError,
    load_scorer,
    resolve_scorer,
    run_scorer_stage,
    validate_scorer,
)
from wikihow_tiir.revision import train_identity

TINY = ['scorer.backbone="tiny:deepseek_vl"', "scorer.epochs=1", 'scorer.baselines=["bm25"]']


def _stage(folder: Path, *extra: str) -> tuple[dict, list[str]]:
    from wikihow_tiir.build import record_scorer

    logs: list[str] = []
    from wikihow_tiir.evaluate.scorer_numbers import score_numbers

    section = run_scorer_stage(load_config(overrides=[*TINY, *extra]), folder, score_numbers, log=logs.append)
    record_scorer(folder, section, logs.append)
    return section, logs


@pytest.fixture(scope="module")
def scored(mme_split_dataset, tmp_path_factory) -> Path:
    folder = Path(shutil.copytree(mme_split_dataset, tmp_path_factory.mktemp("scored") / "ds"))
    _stage(folder)
    return folder


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_the_stage_writes_weights_config_card_and_results(scored):
    files = sorted(p.relative_to(scored / "scorer").as_posix() for p in (scored / "scorer").rglob("*") if p.is_file())
    assert {"config.json", "results.json", "README.md"} <= set(files)
    assert any(f.startswith("backbone/") and f.endswith(".safetensors") for f in files)  # an MLLM's own folder
    config = json.loads((scored / "scorer" / "config.json").read_text())
    sc = config["scorer"]
    assert config["format"] == "wikihow-tiir-mme" and config["backbone"] == "deepseek_vl"
    assert sc["strategy"] == "mean" and sc["trained_ns"] == [1, 2] and sc["stand_in"] is False
    assert sc["dataset_revision"] == train_identity(scored)["revision"]
    assert set(sc["dataset_files"]) == {"corpus/corpus-00000-of-00001.parquet", "queries/train-00000-of-00001.parquet",
                                        "qrels/train-00000-of-00001.parquet"}
    recipe = sc["recipe"]
    assert recipe["lr"] == 5e-5 and recipe["projector_lr"] == 5e-5 and recipe["temperature"] == 0.05
    assert recipe["hard_negatives"] == "random" and "gradient cache" in recipe["negatives"]
    results = json.loads((scored / "scorer" / "results.json").read_text())
    assert set(results["mme"]["per_n"]) == {"1", "2", "4", "8"} and set(results["baselines"]) == {"bm25"}
    assert results["queries"] == 3 and results["corpus_documents"] == 10
    assert results["test_split"]["files"].keys() == {"queries/test-00000-of-00001.parquet",
                                                      "qrels/test-00000-of-00001.parquet"}
    card = (scored / "scorer" / "README.md").read_text()
    assert card.startswith("---\nlicense: cc-by-nc-sa-3.0") and "## Test numbers" in card and "## Limits" in card
    section = _manifest(scored)["scorer"]
    assert section["default_n"] == results["default_n"] and section["leaderboard"][-1]["kind"] == "scorer"
    assert "scorer/config.json" in section["files"] and "scorer/README.md" not in section["files"]
    assert "## Leaderboard" in (scored / "README.md").read_text()
    assert validate_scorer(scored, _manifest(scored)) == []


def test_an_unchanged_scorer_is_not_retrained_and_a_new_test_split_is_only_rescored(scored, tmp_path):
    folder = Path(shutil.copytree(scored, tmp_path / "ds"))
    weights = {p: p.read_bytes() for p in (folder / "scorer").rglob("*.safetensors")}
    _, logs = _stage(folder)
    assert "scorer: unchanged, not retrained" in logs and "scorer: test numbers unchanged" in logs
    # the test split changes (as the human audit does): the numbers are stale until the stage re-scores
    from wikihow_tiir.storage import read_rows, write_parquet

    for config in ("queries", "qrels"):
        path = folder / config / "test-00000-of-00001.parquet"
        write_parquet(path, list(read_rows([path]))[:2], config)
    problems = validate_scorer(folder, _manifest(folder), check_load=False)
    assert len(problems) == 1 and "test numbers computed on test split" in problems[0]
    _, logs = _stage(folder)
    assert "scorer: unchanged, not retrained" in logs and any(m.startswith("scorer: scored") for m in logs)
    assert {p: p.read_bytes() for p in (folder / "scorer").rglob("*.safetensors")} == weights
    assert json.loads((folder / "scorer" / "results.json").read_text())["queries"] == 2
    assert validate_scorer(folder, _manifest(folder), check_load=False) == []
    _, logs = _stage(folder, "scorer.epochs=2")  # another setting: trained again
    assert not any("not retrained" in m for m in logs) and any(m.startswith("scorer: trained") for m in logs)


def test_validation_catches_a_scorer_that_does_not_belong_to_its_data(scored, mme_split_dataset, tmp_path):
    changed = Path(shutil.copytree(scored, tmp_path / "changed"))
    weights = next((changed / "scorer").rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    problems = validate_scorer(changed, _manifest(changed), check_load=False)
    assert problems == [f"scorer/{weights.relative_to(changed / 'scorer').as_posix()}: sha256 differs from "
                        "manifest.json (changed after the build?)"]
    # another build's scorer, manifest section and all: trained on other train data
    other = Path(shutil.copytree(mme_split_dataset, tmp_path / "other"))
    from wikihow_tiir.storage import read_rows, write_parquet

    path = other / "queries" / "train-00000-of-00001.parquet"
    write_parquet(path, list(read_rows([path]))[:5], "queries")
    shutil.copytree(scored / "scorer", other / "scorer")
    problems = validate_scorer(other, _manifest(scored), check_load=False)
    assert len(problems) == 1 and "the scorer belongs to another build" in problems[0]
    assert validate_scorer(other, {}, check_load=False) == [
        "scorer/: present but not recorded in manifest.json (re-run the build)"]
    shutil.rmtree(other / "scorer")
    assert validate_scorer(other, _manifest(scored)) == ["scorer/: missing, but manifest.json records a scorer"]


def test_load_scorer_defaults_to_its_best_n_and_says_where_none_is(scored, mme_split_dataset):
    best = json.loads((scored / "scorer" / "results.json").read_text())["default_n"]
    assert resolve_scorer(scored) == scored / "scorer" == resolve_scorer(scored / "scorer")
    model = load_scorer(scored, device="cpu")
    assert model.n == model.doc_n == best
    assert load_scorer(scored, n=1, device="cpu").n == 1
    from wikihow_tiir.evaluate import load_split

    ev = load_split(scored, "test")
    vectors = model.encode_queries(ev.queries.load())
    assert vectors.shape == (3, 32)
    with pytest.raises(ScorerError, match="has no reference scorer"):
        resolve_scorer(mme_split_dataset)


def test_a_build_without_a_train_split_gets_no_scorer(mme_split_dataset, tmp_path):
    folder = Path(shutil.copytree(mme_split_dataset, tmp_path / "ds"))
    for config in ("queries", "qrels"):
        (folder / config / "train-00000-of-00001.parquet").unlink()
    section, logs = _stage(folder)
    assert section == {"skipped": "no train split: no scorer was trained"} and not (folder / "scorer").exists()
    assert "_No reference scorer in this build (no train split: no scorer was trained)._" in (
        folder / "README.md").read_text()
