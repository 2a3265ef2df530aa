"""Training: mme-mini learns, the strategies cover their N pairs, resume is bit-exact, bad input is refused."""

from __future__ import annotations

import pytest
import torch

from wikihow_tiir.mme.data import load_training_data, mine_hard_negatives
from wikihow_tiir.mme.model import CheckpointError, load_encoder
from wikihow_tiir.mme.train import train

QUIET = {"log": lambda s: None}


def test_mme_mini_learns_the_training_pairs(mme_dataset, tmp_path):
    # 96 px -> a 3 x 3 grid; the paper's learning rate; one granularity (N=3) keeps the test fast
    result = train(mme_dataset, tmp_path / "mini", epochs=8, strategy="mean", batch_size=12, micro_batch_size=12,
                   image_size=96, train_ns=[3], **QUIET)
    losses = [h["loss"] for h in result["history"]]
    assert len(losses) == 8
    assert sum(losses[-2:]) / 2 < losses[0] - 0.5  # the loss falls
    r1 = result["train_pair_r1"]
    assert r1["queries"] == 12 and r1["n"] == 3
    # text alone cannot tell the queries apart: the untrained model is near chance (1/12)
    assert r1["before"] <= 0.34 and r1["after"] >= r1["before"] + 0.4, r1
    assert load_encoder(tmp_path / "mini", device="cpu").kind == "mme-mini"


@pytest.mark.parametrize(("strategy", "pairs"), [("mean", 16), ("mrl", 4), ("rand", 1)])
def test_strategies_cover_their_granularity_pairs(mme_dataset, tmp_path, strategy, pairs):
    result = train(mme_dataset, tmp_path / strategy, epochs=1, strategy=strategy, backbone="tiny:deepseek_vl",
                   batch_size=12, micro_batch_size=6, max_steps=1, evaluate_pairs=0,
                   train_ns=[1, 2, 4, 8], **QUIET)
    # tiny DeepSeek-VL has an 8 x 8 grid: N in {1, 2, 4, 8}, so Mean scores 4 x 4 pairs per micro-batch
    # (the default on CPU is N <= 3; all N are passed here)
    assert result["settings"]["train_ns"] == [1, 2, 4, 8]
    assert result["history"][0]["pairs"] == [pairs, pairs]  # two micro-batches accumulate to one step


def test_resume_is_bit_exact(mme_dataset, tmp_path):
    kw = dict(epochs=2, strategy="mean", backbone="tiny:qwen2_vl", batch_size=6, micro_batch_size=3,
              lr=1e-3, evaluate_pairs=0, **QUIET)
    straight = train(mme_dataset, tmp_path / "straight", **kw)
    assert straight["total_steps"] == 4
    first = train(mme_dataset, tmp_path / "resumed", max_steps=2, **kw)
    assert first["step"] == 2
    resumed = train(mme_dataset, tmp_path / "resumed", **kw)
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in straight["history"]]
    a = load_encoder(tmp_path / "straight", device="cpu").state_dict()
    b = load_encoder(tmp_path / "resumed", device="cpu").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_another_backbone_or_other_settings(mme_dataset, tmp_path):
    kw = dict(epochs=1, batch_size=12, micro_batch_size=12, max_steps=1, evaluate_pairs=0, **QUIET)
    train(mme_dataset, tmp_path / "ck", backbone="tiny:deepseek_vl", **kw)
    with pytest.raises(CheckpointError, match="holds a 'deepseek_vl' checkpoint, not 'qwen2_vl'"):
        train(mme_dataset, tmp_path / "ck", backbone="tiny:qwen2_vl", **kw)
    with pytest.raises(CheckpointError, match="other settings .*strategy"):
        train(mme_dataset, tmp_path / "ck", backbone="tiny:deepseek_vl", strategy="rand", **kw)


def test_hard_negatives_never_include_a_positive(mme_dataset):
    data = load_training_data(mme_dataset)
    hard = mine_hard_negatives(data, pool=3)
    assert set(hard) == {q.id for q in data.queries}
    for qid, cands in hard.items():
        assert len(cands) == 3 and not set(cands) & set(data.positives[qid])


def test_training_data_fallbacks_and_bad_input(tmp_path):
    from wikihow_tiir.mme.synthetic import write_dataset

    only_test = write_dataset(tmp_path / "test-only", n_docs=4, images_per_doc=2, image_size=32, split="test")
    data = load_training_data(only_test)
    assert len(data.queries) == 4 and any("no 'train' split" in n for n in data.notes)
    with pytest.raises(ValueError, match="no corpus"):
        load_training_data(tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown strategy 'best'"):
        train(only_test, tmp_path / "x", strategy="best", **QUIET)
    with pytest.raises(ValueError, match="does not divide"):
        train(only_test, tmp_path / "x", backbone="tiny:deepseek_vl", train_ns=[3], **QUIET)


def test_hard_negative_blocks_do_not_change_the_result(mme_dataset):
    data = load_training_data(mme_dataset)
    assert mine_hard_negatives(data, pool=4, block=5) == mine_hard_negatives(data, pool=4, block=1024)
    assert len(mine_hard_negatives(data, pool=50)[data.queries[0].id]) == 11  # all but the positive
