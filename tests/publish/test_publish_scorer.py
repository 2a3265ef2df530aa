"""The reference scorer of the bundled build, end to end: `make build-dataset` leaves `scorer/` and a
leaderboard, validation loads it, `publish --dry-run` lists it, a release to the loopback Hub carries it, and
`evaluate --dataset ORG/NAME@vX --model mme` on that release reproduces the build's numbers exactly; a
run file scored with `score --run` agrees with `evaluate`; a re-run of the build does not retrain it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from wikihow_tiir.publish.cli import register

GOOD = "hf_goodtoken123456"  # the loopback Hub's token (conftest `hub`)
REPO = "org/wikihow-tiir"
PUBLISH = "import typer\nfrom wikihow_tiir.publish.cli import register\napp = typer.Typer()\nregister(app)\napp()\n"
EVALUATE = ("import typer\nfrom wikihow_tiir.evaluate.cli import register\napp = typer.Typer()\nregister(app)\n"
            "app()\n")
SCORER_FILES = {"config.json", "model.safetensors", "results.json", "README.md", "tokenizer.json"}


def client_env(hub, tmp_path: Path) -> dict[str, str]:
    """The client side of the loopback Hub (huggingface_hub reads these when it is imported: a subprocess)."""
    return {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
            "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": GOOD, "HF_HOME": str(tmp_path / "client-hf-home"),
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1"}


def publish(dataset: Path, version: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PUBLISH, "publish", str(dataset), "--repo-id", REPO, "--version",
                           version], env=env, capture_output=True, text=True, timeout=600)


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _evaluate(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", EVALUATE, *args], env=env or dict(os.environ),
                          capture_output=True, text=True, timeout=600)


def test_the_build_leaves_the_scorer_and_a_leaderboard(bundled_build_scored):
    from wikihow_tiir.publish.validate import validate_dataset
    from wikihow_tiir.revision import train_identity

    root = bundled_build_scored
    folder = root / "scorer"
    assert SCORER_FILES <= {p.name for p in folder.iterdir()}
    config, results = _json(folder / "config.json"), _json(folder / "results.json")
    sc = config["scorer"]
    assert config["backbone"] == "mme-mini" and sc["stand_in"] is True and sc["trained_ns"] == [1, 2, 3]
    assert sc["strategy"] == "mean" and sc["steps"] == 2 and sc["training_pairs"] == 38
    assert sc["dataset_revision"] == train_identity(root)["revision"]
    assert sc["recipe"]["lr"] == 5e-5 and sc["recipe"]["projector_lr"] == 2e-4  # mme-mini's fresh projector
    assert set(results["mme"]["per_n"]) == {"1", "2", "3", "4", "6", "12"}
    assert set(results["baselines"]) == {"bm25"}  # the fixture's setting (the default adds minilm, fusion-effnet)
    assert results["corpus_documents"] == 44 and results["queries"] == 6
    card = (folder / "README.md").read_text()
    assert "**CPU stand-in.**" in card and "## How it was trained" in card and "## Licence" in card
    manifest = _json(root / "manifest.json")
    best = results["default_n"]
    mme_row = manifest["scorer"]["leaderboard"][-1]
    assert mme_row["model"] == f"MME mme-mini N={best}"
    assert mme_row["ndcg_at_10"] == results["mme"]["per_n"][str(best)]["ndcg_at_10"]
    dataset_card = (root / "README.md").read_text()
    board = dataset_card[dataset_card.index("## Leaderboard"):]
    assert f"| **MME mme-mini N={best}** | 44 |" in board and "| bm25 | 44 |" in board
    assert "| paper: MME N=3 (TIIR (fine-tuned)) | 155,262 | 77.40 | 62.07 | 63.40 | 63.01 | 65.91 |" in board
    assert "| paper: DPR DeepSeek-VL (TIIR (fine-tuned)) | 155,262 | 74.79 |" in board
    assert "a CPU stand-in, not the paper's model" in board
    assert validate_dataset(root, check_load=False) == []
    from wikihow_tiir.mme.scorer import validate_scorer

    assert validate_scorer(root, manifest, check_load=True) == []  # it loads and embeds, 384-d unit vectors
    log = (root / "work" / "build-log.txt").read_text()
    assert "scorer: MME mme-mini" in log


def test_publish_dry_run_lists_the_scorer(bundled_build_scored, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # any request would fail the command
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["publish", str(bundled_build_scored), "--repo-id", REPO, "--version", "1.0.0",
                                      "--dry-run"])
    assert result.exit_code == 0, result.output
    for name in sorted(SCORER_FILES):
        assert f"scorer/{name}" in result.output
    listed = [line.split()[0] for line in result.output.split("----- dataset card")[0].splitlines()
              if line.startswith("  ") and "/" in line]
    assert listed and not [p for p in listed if not p.startswith(("corpus/", "queries/", "qrels/", "scorer/"))]


def test_a_release_carries_the_scorer_and_evaluate_mme_reproduces_the_builds_numbers(
        hub, bundled_build_scored, tmp_path):
    root = Path(shutil.copytree(bundled_build_scored, tmp_path / "v1"))  # publish stamps the cards in
    env = client_env(hub, tmp_path)
    r = publish(root, "1.0.0", env)
    assert r.returncode == 0, r.stderr
    repo = hub.repo(REPO)
    files = repo.commits[repo.tags["v1.0.0"]].files
    assert {f"scorer/{n}" for n in SCORER_FILES} <= set(files)
    scorer_card = hub.state.blobs[files["scorer/README.md"].sha256].decode()
    assert f"`{REPO}` **v1.0.0**" in scorer_card and f"--dataset {REPO}@v1.0.0 --model mme" in scorer_card

    out = tmp_path / "eval"
    r = _evaluate(["evaluate", "--dataset", f"{REPO}@v1.0.0", "--model", "mme", "--output", str(out)], env)
    assert r.returncode == 0, r.stderr[-3000:]
    got = _json(out / "results" / "mme.json")["scores"]["test"][0]
    results = _json(bundled_build_scored / "scorer" / "results.json")
    want = results["mme"]["per_n"][str(results["default_n"])]
    assert {k: got[k] for k in want} == want  # exactly the build's numbers, every metric
    assert _json(out / "summary.json")["models"]["mme"]["name"] == "mme"

    # a version released without a scorer says so
    bare = Path(shutil.copytree(bundled_build_scored, tmp_path / "bare", ignore=shutil.ignore_patterns("scorer")))
    manifest = _json(bare / "manifest.json")
    manifest["scorer"] = {"skipped": "disabled (scorer.enabled is false, or --no-scorer)"}
    (bare / "manifest.json").write_text(json.dumps(manifest))
    assert publish(bare, "1.1.0", env).returncode == 0
    assert not any(p.startswith("scorer/") for p in repo.commits[repo.tags["v1.1.0"]].files)  # v1's are gone
    r = _evaluate(["evaluate", "--dataset", f"{REPO}@v1.1.0", "--model", "mme", "--output", str(tmp_path / "e2")],
                  env)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "released without a reference scorer" in r.stderr
    assert "Traceback" not in r.stderr


def test_score_run_agrees_with_evaluate(bundled_build_scored, tmp_path):
    from wikihow_tiir.evaluate.cli import register as register_evaluate

    root = bundled_build_scored
    out = tmp_path / "eval"
    r = _evaluate(["evaluate", "--dataset", str(root), "--model", "bm25", "--model", "mme", "--output", str(out)])
    assert r.returncode == 0, r.stderr[-3000:]
    app = typer.Typer()
    register_evaluate(app)
    for model in ("bm25", "mme"):
        res = CliRunner().invoke(app, ["score", "--dataset", str(root), "--run", str(out / "runs" / f"{model}.trec"),
                                       "--output", str(tmp_path / f"{model}.json")])
        assert res.exit_code == 0, res.output
        scored = _json(tmp_path / f"{model}.json")["metrics"]
        evaluated = _json(out / "results" / f"{model}.json")["scores"]["test"][0]
        assert scored.keys() <= evaluated.keys()
        assert all(abs(scored[k] - evaluated[k]) <= 1e-12 for k in scored), model
        assert f"| {model} |" in res.output and "(leaderboard) |" in res.output  # beside the leaderboard
    results = _json(root / "scorer" / "results.json")
    mme = _json(out / "results" / "mme.json")["scores"]["test"][0]
    assert mme["ndcg_at_10"] == results["mme"]["per_n"][str(results["default_n"])]["ndcg_at_10"]
    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 d1 1\n")
    res = CliRunner().invoke(app, ["score", "--dataset", str(root), "--run", str(bad)])
    assert res.exit_code == 2 and "expected 'qid Q0 docid rank score tag'" in res.output


def test_a_rebuild_keeps_the_scorer_and_rescores_after_the_audit(bundled_build_scored, sample_archive, tmp_path):
    from wikihow_tiir.audit import apply_audit
    from wikihow_tiir.build import run_build
    from wikihow_tiir.config import load_config
    from wikihow_tiir.publish.validate import validate_dataset

    root = Path(shutil.copytree(bundled_build_scored, tmp_path / "sample"))
    weights = (root / "scorer" / "model.safetensors").read_bytes()
    # the fixture's settings (tests/conftest.py, SCORED_FIXTURE_SETTINGS): the same scorer, so not retrained
    cfg = load_config(overrides=[f'source.archive="{sample_archive}"', "scorer.epochs=1", 'scorer.baselines=["bm25"]'])
    logs: list[str] = []
    run_build(cfg, root, log=logs.append)
    assert "scorer: unchanged, not retrained" in logs and "scorer: test numbers unchanged" in logs
    assert (root / "scorer" / "model.safetensors").read_bytes() == weights
    assert (root / "manifest.json").read_bytes() == (bundled_build_scored / "manifest.json").read_bytes()

    # people drop a test pair: the numbers are of the earlier test split, and the card and validation say so
    from wikihow_tiir.layout import split_files
    from wikihow_tiir.storage import read_rows

    first = next(read_rows(split_files(root, "queries", "test"), ["id"]))["id"]
    decisions = tmp_path / "d.jsonl"
    decisions.write_text(json.dumps({"query_id": first, "decision": "drop", "reason": "illogical",
                                     "reviewer": "ana"}) + "\n")
    apply_audit(root, [decisions], report=False)
    assert "computed on an earlier test split" in (root / "README.md").read_text()
    assert any("re-run the build to re-score" in p for p in validate_dataset(root, check_load=False))
    logs.clear()
    run_build(cfg, root, log=logs.append)  # re-scored on the audited split, not retrained
    assert "scorer: unchanged, not retrained" in logs and any(m.startswith("scorer: scored") for m in logs)
    assert (root / "scorer" / "model.safetensors").read_bytes() == weights
    assert _json(root / "scorer" / "results.json")["queries"] == 5
    assert validate_dataset(root, check_load=False) == []
    assert "computed on an earlier test split" not in (root / "README.md").read_text()
