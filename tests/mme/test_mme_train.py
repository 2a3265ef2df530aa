"""Training: mme-mini learns, the strategies cover their N pairs, the paper's recipe (whole-batch negatives
through a gradient cache, random hard negatives, the pretrained-projector rate), resume is bit-exact,
pictures are read lazily, bad input is refused."""

from __future__ import annotations

import random

import pytest
import torch

from wikihow_tiir.mme import train as trainer
from wikihow_tiir.mme.data import HardNegatives, ImageStore, load_training_data, mine_hard_negatives
from wikihow_tiir.mme.model import CheckpointError, load_encoder, new_encoder
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


@pytest.mark.parametrize(("strategy", "ns", "pairs"), [("mean", [1, 2, 4, 8], 16), ("mrl", [1, 2, 4, 8], 4),
                                                      ("rand", [1, 2, 4, 8], 1), ("dpr", [8], 1)])
def test_strategies_cover_their_granularity_pairs(mme_dataset, tmp_path, strategy, ns, pairs):
    result = train(mme_dataset, tmp_path / strategy, epochs=1, strategy=strategy, backbone="tiny:deepseek_vl",
                   batch_size=12, micro_batch_size=6, max_steps=1, evaluate_pairs=0,
                   train_ns=None if strategy == "dpr" else [1, 2, 4, 8], **QUIET)
    # tiny DeepSeek-VL has an 8 x 8 grid: N in {1, 2, 4, 8}, so Mean scores 4 x 4 pairs per batch (the default
    # on CPU is N <= 3; all N are passed here); dpr is the full grid only, every visual token kept
    assert result["settings"]["train_ns"] == ns
    assert result["history"][0]["pairs"] == pairs  # one loss over the whole batch, whatever the micro-batch
    assert result["recipe"]["train_ns"] == ns and result["recipe"]["strategy"] == strategy


def test_dpr_refuses_other_granularities(mme_dataset, tmp_path):
    with pytest.raises(ValueError, match="full grid only"):
        train(mme_dataset, tmp_path / "x", strategy="dpr", backbone="tiny:deepseek_vl", train_ns=[1, 2], **QUIET)


def _batch(enc, mme_items, n_queries=6):
    docs, queries, _ = mme_items
    qp = enc.prepare_many([(q.id, q.content) for q in queries[:n_queries]])
    dp = enc.prepare_many([(d.id, d.content) for d in docs])
    targets = torch.arange(n_queries)
    mask = torch.zeros(n_queries, len(docs), dtype=torch.bool)
    mask[0, 5] = True  # another relevant document of query 0 is hidden from its loss
    return qp, dp, targets, mask


@pytest.mark.parametrize("kind", ["deepseek_vl", "qwen2_vl"])
def test_gradient_cache_gives_the_full_batch_gradients(kind, mme_items):
    """Embedding chunk by chunk from cached embedding gradients gives the gradients of one full-batch pass."""
    enc = new_encoder(f"tiny:{kind}", seed=0).eval()  # eval: no dropout, so both computations are one function
    qp, dp, targets, mask = _batch(enc, mme_items)
    pairs = [(a, b) for a in (1, 2) for b in (1, 4)]
    params = [p for p in enc.parameters() if p.requires_grad]

    enc.zero_grad(set_to_none=True)  # the reference: every embedding of the batch in one graph
    q = {n: enc.encode(qp, n) for n in (1, 2)}
    d = {n: enc.encode(dp, n) for n in (1, 4)}
    ref_loss = torch.stack([trainer.info_nce(q[a], d[b], targets, mask) for a, b in pairs]).mean()
    ref_loss.backward()
    ref = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]

    for micro in (2, 100):  # chunked (two passes) and one chunk per role (one pass)
        enc.zero_grad(set_to_none=True)
        loss = trainer.cached_gradient_step(enc, qp, dp, pairs, targets, mask, micro_batch_size=micro)
        got = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        assert abs(loss - float(ref_loss)) < 1e-5
        worst = max(float((g - r).abs().max()) for g, r in zip(got, ref, strict=True))
        assert worst < 1e-5, (micro, worst)
        assert any(float(r.abs().max()) > 1e-4 for r in ref)  # the gradients compared are not all zero


def test_in_batch_negatives_span_the_whole_batch_not_the_micro_batch(mme_dataset, tmp_path, monkeypatch):
    seen = []
    real = trainer.info_nce

    def spy(q, d, targets, mask, temperature=trainer.TEMPERATURE):
        seen.append((tuple(q.shape), tuple(d.shape)))
        return real(q, d, targets, mask, temperature)

    monkeypatch.setattr(trainer, "info_nce", spy)
    result = train(mme_dataset, tmp_path / "ck", epochs=1, backbone="tiny:deepseek_vl", batch_size=12,
                   micro_batch_size=3, max_steps=1, evaluate_pairs=0, train_ns=[2], **QUIET)
    docs = result["history"][0]["documents"]
    assert docs >= 12  # the 12 positives, plus the hard negatives that are not positives themselves
    # every loss scores the 12 queries of the batch against all its documents, with micro-batches of 3
    assert seen and all(qs[0] == 12 and ds[0] == docs for qs, ds in seen)


def test_a_pretrained_projector_trains_at_the_language_models_rate(mme_dataset, tmp_path, monkeypatch):
    rates = {}
    real = torch.optim.AdamW

    def spy(groups, **kw):
        rates["groups"] = [g["lr"] for g in groups]
        return real(groups, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    tiny = train(mme_dataset, tmp_path / "tiny", epochs=1, backbone="tiny:deepseek_vl", max_steps=1,
                 evaluate_pairs=0, **QUIET)
    assert rates["groups"] == [5e-5, 5e-5] and tiny["settings"]["projector_lr"] == 5e-5  # aligner = 5e-5
    mini = train(mme_dataset, tmp_path / "mini", epochs=1, max_steps=1, image_size=96, train_ns=[1],
                 evaluate_pairs=0, **QUIET)
    assert rates["groups"] == [2e-4, 5e-5] and mini["settings"]["projector_lr"] == 2e-4  # a fresh projector
    own = train(mme_dataset, tmp_path / "own", epochs=1, backbone="tiny:deepseek_vl", max_steps=1,
                projector_lr=1e-3, evaluate_pairs=0, **QUIET)
    assert rates["groups"] == [1e-3, 5e-5] and own["settings"]["projector_lr"] == 1e-3  # an explicit choice


def test_random_hard_negatives_come_from_the_whole_corpus(mme_dataset):
    data = load_training_data(mme_dataset)
    top = HardNegatives(data, "minilm-top-k", k=2, seed=0)
    rnd = HardNegatives(data, "random", seed=0)
    drawn_top, drawn_rnd = set(), set()
    for q in data.queries:
        for epoch in range(20):
            a, b = top.draw(q.id, epoch), rnd.draw(q.id, epoch)
            assert a in top.pools[q.id] and a not in data.positives[q.id]
            assert b in data.documents and b not in data.positives[q.id]
            drawn_top.add((q.id, a))
            drawn_rnd.add((q.id, b))
            assert rnd.draw(q.id, epoch) == b  # a pure function of (seed, epoch, query): resumable
    assert len(drawn_top) <= 2 * len(data.queries)
    # random reaches documents the text baseline never ranks in its top k
    assert len(drawn_rnd - {(q, d) for q, pool in top.pools.items() for d in pool}) > len(data.queries)
    with pytest.raises(ValueError, match="unknown hard negatives 'hardest'"):
        HardNegatives(data, "hardest")


def test_resume_is_bit_exact(mme_dataset, tmp_path):
    kw = dict(epochs=2, strategy="mean", backbone="tiny:qwen2_vl", batch_size=6, micro_batch_size=2,
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


def test_training_reads_pictures_lazily_and_a_tiny_cache_trains_identically(mme_dataset, tmp_path):
    data = load_training_data(mme_dataset)
    # nothing of the corpus's or the queries' pictures is held: the store gives a batch its bytes
    assert all(b is None for d in data.documents.values() for b in d.content.images)
    assert all(b is None for q in data.queries for b in q.content.images)
    store = data.image_store(tmp_path / "images.sqlite")
    doc = next(iter(data.documents.values()))
    filled = store.fill("doc", doc)
    assert [b is not None for b in filled.content.images] == [m is not None for m in doc.content.image_meta]
    assert all(b is None for b in doc.content.images)  # the item itself stays without bytes
    store.close()
    assert isinstance(store, ImageStore)

    kw = dict(epochs=1, backbone="tiny:deepseek_vl", batch_size=12, micro_batch_size=4, evaluate_pairs=0, **QUIET)
    roomy = train(mme_dataset, tmp_path / "roomy", **kw)
    tight = train(mme_dataset, tmp_path / "tight", vision_cache_mb=0.01, **kw)  # ~2 images' features
    assert [h["loss"] for h in tight["history"]] == [h["loss"] for h in roomy["history"]]
    assert tight["vision_runs"] > roomy["vision_runs"]  # evicted features were recomputed, identically
    assert roomy["vision_runs"] == len({d for d in data.documents}) * 2 + 12 * 2  # each picture once


def test_length_chunks_group_similar_lengths(mme_items):
    enc = new_encoder("tiny:deepseek_vl", seed=0)
    docs = mme_items[0]
    rng = random.Random(0)
    prepared = enc.prepare_many([(d.id, d.content) for d in docs])
    for p in prepared:  # different text lengths
        p.parts = p.parts[: 1 + rng.randrange(len(p.parts))]
    chunks = trainer.length_chunks(enc, prepared, 2, 2)
    lengths = [lay.length for lay in enc.layouts(prepared, 2)]
    assert sorted(i for c in chunks for i in c) == list(range(len(prepared)))
    flat = [lengths[i] for c in chunks for i in c]
    assert flat == sorted(flat) and all(len(c) <= 2 for c in chunks)
