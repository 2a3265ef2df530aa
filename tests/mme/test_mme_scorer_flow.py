"""The scorer stage inside the build: a Prefect task of the flow, skipped by `--no-scorer`, not retrained by a
re-run. (A tiny backbone keeps it quick; the bundled build's real scorer: tests/publish/test_publish_scorer.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from wikihow_tiir.config import load_config


def test_the_flow_runs_the_scorer_as_a_task_and_a_rerun_keeps_it(bundled_build, sample_archive, tmp_path):
    from flows.build_dataset import build_dataset

    out = Path(shutil.copytree(bundled_build, tmp_path / "sample"))
    cfg = load_config(overrides=[f'source.archive="{sample_archive}"', 'scorer.backbone="tiny:qwen2_vl"',
                                 "scorer.epochs=1", 'scorer.baselines=["bm25"]'])
    result = build_dataset(cfg, out, show_progress=False)
    assert result["validation_problems"] == []
    manifest = json.loads((out / "manifest.json").read_text())
    section = manifest["scorer"]
    assert section["backbone"] == "qwen2_vl" and section["test_queries"] == 6 and section["corpus_documents"] == 44
    assert [r["model"] for r in section["leaderboard"]] == ["bm25", f"MME qwen2_vl N={section['default_n']}"]
    marker = (out / "work" / "scorer" / "train.done").read_bytes()
    manifest_bytes = (out / "manifest.json").read_bytes()
    weights = {p: p.read_bytes() for p in (out / "scorer").rglob("*.safetensors")}
    build_dataset(cfg, out, show_progress=False)  # resumed: the scorer is kept, not trained again
    assert (out / "work" / "scorer" / "train.done").read_bytes() == marker
    assert {p: p.read_bytes() for p in (out / "scorer").rglob("*.safetensors")} == weights
    assert (out / "manifest.json").read_bytes() == manifest_bytes  # the same bytes as the first run
    # the stage switched off: no scorer/ left in the dataset, and the card says why
    build_dataset(load_config(overrides=[f'source.archive="{sample_archive}"', "scorer.enabled=false"]), out,
                  show_progress=False)
    assert not (out / "scorer").exists()
    assert "_No reference scorer in this build (disabled" in (out / "README.md").read_text()


def test_no_scorer_switches_the_stage_off(monkeypatch, tmp_path):
    import flows.build_dataset
    from wikihow_tiir.cli import app

    seen = {}

    def capture(cfg, output, show_progress=True, force=False, previous=None):  # the flow itself is tested above; here only the option
        seen["cfg"] = cfg
        return {}

    monkeypatch.setattr(flows.build_dataset, "build_dataset", capture)
    assert CliRunner().invoke(app, ["build", "--output", str(tmp_path / "o"), "--no-scorer"]).exit_code == 0
    assert seen["cfg"].scorer.enabled is False
    assert CliRunner().invoke(app, ["build", "--output", str(tmp_path / "o")]).exit_code == 0
    assert seen["cfg"].scorer.enabled is True
