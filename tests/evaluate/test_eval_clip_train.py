"""``clip train`` on a tiny CLIP: the contrastive recipe learns, is seeded, and the result scores as clip:FOLDER."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from eval_synth import make_items, torch_one_thread, write_dataset  # noqa: F401 (autouse)

from wikihow_tiir.evaluate.adapters import VectorFusion, decode_images
from wikihow_tiir.evaluate.clip_train import ClipTrainConfig, _Towers, fuse, train_clip
from wikihow_tiir.evaluate.families import tiny
from wikihow_tiir.evaluate.runner import evaluate_models


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip-train")
    docs, queries, qrels = make_items()
    data = write_dataset(root / "d", docs, queries, qrels, split="train")
    write_dataset(root / "d", docs, queries, qrels, split="test")
    return data, tiny.tiny_clip(root / "base")


def test_training_lowers_the_loss_is_seeded_and_scores_as_a_clip_folder(setup, tmp_path):
    data, base = setup
    cfg = ClipTrainConfig(epochs=12, batch_size=6, lr=1e-3, warmup=0.1, hard_negatives=1, seed=3)
    one = train_clip(data, str(base), tmp_path / "a", cfg, log=lambda s: None)
    assert one["steps"] == 12 and one["pairs"] == 6
    losses = one["losses"]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    two = train_clip(data, str(base), tmp_path / "b", cfg, log=lambda s: None)
    assert two["losses"] == losses  # same data + seed = same run
    log = json.loads((tmp_path / "a" / "train_log.json").read_text())
    assert log["config"]["fusion"] == "NAddNorm" and log["dataset"]["split"] == "train"
    spec = f"clip:{tmp_path / 'a'}"
    tuned = evaluate_models(data, [spec, f"clip:{base}"], output=tmp_path / "eval")["models"]
    assert tuned[spec]["metrics"]["mrr_at_10"] >= tuned[f"clip:{base}"]["metrics"]["mrr_at_10"]


def test_training_embeds_items_as_the_scorer_does(setup):
    """The differentiable path of clip train equals the Vector-Fusion the evaluation uses."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    from wikihow_tiir.evaluate.clip import load_clip

    data, base = setup
    docs, _, _ = make_items()
    towers = _Towers(AutoModel.from_pretrained(base).eval(), AutoTokenizer.from_pretrained(base),
                     AutoImageProcessor.from_pretrained(base), "cpu", 64)
    hf = load_clip(str(base))
    for fusion, images in (("NAddNorm", "mean"), ("concatNorm", "merged"), ("NPNorm", "mean")):
        with torch.no_grad():
            train_side = towers.features(docs[:4], fusion, images).numpy()
        scored = VectorFusion(hf.text, hf.image, fusion=fusion, images=images).encode_documents(docs[:4])
        scored = scored / np.linalg.norm(scored, axis=1, keepdims=True)
        np.testing.assert_allclose(train_side, scored, atol=1e-5)
    assert len(decode_images(docs[0])) == 2
    t = torch.nn.functional.normalize(torch.ones(1, 4), dim=-1)
    assert torch.allclose(fuse(t, t * 0.5, "NAddNorm"), torch.nn.functional.normalize(2 * t, dim=-1))


def test_bad_settings_and_missing_model_are_clear(setup, tmp_path):
    from typer.testing import CliRunner

    from wikihow_tiir.cli import app

    data, base = setup
    with pytest.raises(ValueError, match="unknown fusion 'sum'"):
        train_clip(data, str(base), tmp_path / "x", ClipTrainConfig(fusion="sum"))
    res = CliRunner().invoke(app, ["clip", "train", "-d", str(data), "-m", "no-such-org/clip", "-o",
                                   str(tmp_path / "y"), "--max-steps", "1"])
    assert res.exit_code == 2
    assert res.output.strip().startswith("error: weights for clip:no-such-org/clip are not available")
