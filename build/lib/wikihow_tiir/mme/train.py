"""Contrastive training of MME with the matryoshka strategies Rand, MRL and Mean.

InfoNCE (temperature 0.05) over in-batch documents plus one hard negative per query; AdamW with
linear warmup then linear decay; an effective batch of 32 pairs built by gradient accumulation
over micro-batches (negatives are shared inside a micro-batch). Strategies, with M granularities:

* ``rand`` - one N drawn per micro-batch, used for queries and documents;
* ``mrl``  - the loss at every N (query N = document N), uniformly weighted sum (weights 1/M);
* ``mean`` - the mean loss over all M x M (query N, document N) pairs: the paper's best.

Each item is encoded once per N and the M x M similarity matrices are combined afterwards, so
Mean costs 2M encodings per item, not M^2.

Resumable and bit-exact: every step reseeds torch from (seed, step) and the data order is a pure
function of (seed, epoch), so a run resumed from a checkpoint takes exactly the steps an
uninterrupted run would have taken.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from wikihow_tiir.mme.model import CheckpointError, MMEEncoder, load_encoder, new_encoder, read_meta

STRATEGIES = ("rand", "mrl", "mean")
STATE_FILE = "trainer_state.pt"
TEMPERATURE = 0.05
CPU_MAX_N = 3


def _pairs_for(strategy: str, ns: Sequence[int], rng: random.Random) -> list[tuple[int, int]]:
    if strategy == "rand":
        n = rng.choice(list(ns))
        return [(n, n)]
    if strategy == "mrl":
        return [(n, n) for n in ns]
    if strategy == "mean":
        return [(a, b) for a in ns for b in ns]
    raise ValueError(f"unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}")


def _lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return f


def _schedule(n_pairs: int, batch_size: int, epochs: int) -> tuple[int, int]:
    steps_per_epoch = math.ceil(n_pairs / batch_size)
    return steps_per_epoch, steps_per_epoch * epochs


def _batch_for_step(query_ids: list[str], step: int, steps_per_epoch: int, batch_size: int, seed: int):
    epoch, j = divmod(step, steps_per_epoch)
    order = list(query_ids)
    random.Random(f"{seed}:order:{epoch}").shuffle(order)
    return epoch, order[j * batch_size:(j + 1) * batch_size]


def info_nce(q: torch.Tensor, d: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
             temperature: float = TEMPERATURE) -> torch.Tensor:
    """Cross-entropy of cosine similarities / temperature; ``mask`` hides other relevant documents."""
    logits = (q @ d.T) / temperature
    logits = logits.masked_fill(mask, float("-inf"))
    return F.cross_entropy(logits, targets)


@torch.no_grad()
def pair_recall_at_1(encoder: MMEEncoder, queries, documents, positives: dict[str, list[str]], n: int,
                     batch: int = 32) -> float:
    """R@1 of the queries against the documents given (training-pair retrieval)."""
    was_training = encoder.training
    encoder.eval()
    qp = encoder.prepare_many([(q.id, q.content) for q in queries])
    dp = encoder.prepare_many([(d.id, d.content) for d in documents])
    qv = torch.cat([encoder.encode(qp[i:i + batch], n, record=False) for i in range(0, len(qp), batch)])
    dv = torch.cat([encoder.encode(dp[i:i + batch], n, record=False) for i in range(0, len(dp), batch)])
    top = (qv @ dv.T).argmax(dim=1).tolist()
    hits = sum(documents[t].id in positives[q.id] for q, t in zip(queries, top, strict=True))
    encoder.train(was_training)
    return hits / max(1, len(queries))


def _settings_fingerprint(s: dict[str, Any]) -> dict[str, Any]:
    keys = ("backbone", "strategy", "seed", "epochs", "batch_size", "micro_batch_size", "lr", "projector_lr",
            "warmup_ratio", "temperature", "train_ns", "hard_negative_pool", "image_size", "max_length", "dataset")
    return {k: s[k] for k in keys}


def _save(encoder: MMEEncoder, output: Path, state: dict[str, Any], record: dict[str, Any]) -> None:
    """Write the checkpoint beside ``output`` and swap it in, so a kill never leaves half a checkpoint."""
    tmp = output.with_name(output.name + ".saving")
    if tmp.exists():
        shutil.rmtree(tmp)
    encoder.save(tmp, extra={"train": record})
    torch.save(state, tmp / STATE_FILE)
    old = output.with_name(output.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if output.exists():
        output.rename(old)
    tmp.rename(output)
    if old.exists():
        shutil.rmtree(old)


def train(dataset_dir: str | Path, output: str | Path, epochs: int = 3, strategy: str = "mean", seed: int = 0,
          max_steps: int | None = None, backbone: str = "mme-mini", batch_size: int = 32,
          micro_batch_size: int = 8, lr: float = 5e-5, projector_lr: float = 2e-4, warmup_ratio: float = 0.1,
          temperature: float = TEMPERATURE, train_ns: Sequence[int] | None = None, hard_negative_pool: int = 5,
          image_size: int | None = None, max_length: int | None = None, save_every: int | None = None,
          resume: bool = True, evaluate_pairs: int = 256, device: str | None = None,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train MME on ``dataset_dir`` and write the checkpoint folder ``output``; returns the record.

    ``backbone``: ``mme-mini`` (offline), ``tiny:<arch>`` (random tiny MLLM, for tests) or an MLLM
    hub id / local folder (``deepseek-community/deepseek-vl-1.3b-chat``, ``Qwen/Qwen2-VL-2B-Instruct``).
    ``max_steps`` stops early without changing the schedule (so a later resume continues it).
    An existing checkpoint in ``output`` is resumed when its settings match; otherwise refused.
    """
    from wikihow_tiir.mme.data import load_training_data, mine_hard_negatives

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}")
    if epochs < 1 or batch_size < 1 or micro_batch_size < 1:
        raise ValueError("epochs, batch size and micro-batch size must be positive")
    started = time.perf_counter()
    dataset_dir, output = Path(dataset_dir), Path(output)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    data = load_training_data(dataset_dir)
    for note in data.notes:
        log(f"note: {note}")

    resume_state = None
    if resume and (output / STATE_FILE).is_file():
        meta = read_meta(output)
        expected = "mme-mini" if backbone == "mme-mini" else None
        if backbone.startswith("tiny:"):
            expected = backbone.split(":", 1)[1]
        if expected and meta["backbone"] != expected:
            raise CheckpointError(f"{output}: holds a {meta['backbone']!r} checkpoint, not {expected!r}; "
                                  "choose another --output or pass --no-resume to overwrite it")
        encoder = load_encoder(output, expect_backbone=meta["backbone"], device=device)
        resume_state = torch.load(output / STATE_FILE, map_location="cpu", weights_only=False)
    else:
        encoder = new_encoder(backbone, seed=seed, image_size=image_size, max_length=max_length).to(device)
    # every N by default; on CPU only N <= 3 (the paper's best region), so `make train-mme` takes minutes:
    # the full 12 x 12 grid alone would make a document ~5x longer than all of N = 1, 2, 3 together
    ns = sorted(train_ns) if train_ns else [n for n in encoder.ns if device != "cpu" or n <= CPU_MAX_N]
    for n in ns:
        if n not in encoder.ns:
            raise ValueError(f"training N={n} does not divide the {encoder.grid_side}x{encoder.grid_side} grid; "
                             f"choose from {encoder.ns}")
    settings = {"backbone": backbone, "strategy": strategy, "seed": seed, "epochs": epochs,
                "batch_size": batch_size, "micro_batch_size": min(micro_batch_size, batch_size), "lr": lr,
                "projector_lr": projector_lr, "warmup_ratio": warmup_ratio, "temperature": temperature,
                "train_ns": ns, "hard_negative_pool": hard_negative_pool,
                "image_size": encoder.backbone.image_size, "max_length": encoder.backbone.max_length,
                "dataset": str(dataset_dir)}
    if resume_state is not None and _settings_fingerprint(resume_state["settings"]) != _settings_fingerprint(settings):
        old, new = _settings_fingerprint(resume_state["settings"]), _settings_fingerprint(settings)
        diff = {k: (old[k], new[k]) for k in old if old[k] != new[k]}
        raise CheckpointError(f"{output}: the checkpoint was trained with other settings {diff}; "
                              "choose another --output or pass --no-resume")

    query_ids = [q.id for q in data.queries]
    steps_per_epoch, total = _schedule(len(query_ids), batch_size, epochs)
    warmup = max(1, round(warmup_ratio * total))
    params = [{"params": encoder.backbone.projector_parameters(), "lr": projector_lr},
              {"params": encoder.backbone.lm_parameters(), "lr": lr}]
    optimizer = torch.optim.AdamW(params, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(warmup, total))
    history: list[dict[str, Any]] = []
    step = 0
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        step = int(resume_state["step"])
        history = list(resume_state["history"])
        log(f"resuming {output} at step {step}/{total}")
    stop = total if max_steps is None else min(total, max_steps)

    hard = mine_hard_negatives(data, pool=hard_negative_pool)
    queries = {q.id: q for q in data.queries}
    needed_docs = sorted({d for q in query_ids for d in data.positives[q][:1] + hard[q]})
    t0 = time.perf_counter()
    n_images = sum(queries[q].content.n_images for q in query_ids) + sum(
        data.documents[d].content.n_images for d in needed_docs)
    upfront = n_images <= encoder.cache_limit  # else features are computed per step (bounded cache)
    q_prep = {p.id: p for p in encoder.prepare_many([(q, queries[q].content) for q in query_ids], vision=upfront)}
    d_prep = {p.id: p for p in encoder.prepare_many([(d, data.documents[d].content) for d in needed_docs],
                                                    vision=upfront)}
    log(f"prepared {len(q_prep)} queries, {len(d_prep)} documents, {len(encoder.cache)} images "
        f"in {time.perf_counter() - t0:.1f} s; {total} steps ({steps_per_epoch}/epoch), strategy {strategy}, "
        f"N in {ns}, device {device}")

    def state() -> dict[str, Any]:
        return {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "settings": settings, "history": history}

    def record() -> dict[str, Any]:
        return {"settings": settings, "step": step, "total_steps": total, "steps_per_epoch": steps_per_epoch,
                "n_pairs": len(query_ids), "notes": data.notes,
                "loss_first": history[0]["loss"] if history else None,
                "loss_last": history[-1]["loss"] if history else None}

    sample = data.queries[:evaluate_pairs]
    sample_docs = [data.documents[i] for i in sorted({data.positives[q.id][0] for q in sample})]
    n_eval = 3 if 3 in encoder.ns else encoder.ns[len(encoder.ns) // 2]
    r1_before = None
    if sample and step == 0:  # the untrained model's score, for comparison
        r1_before = pair_recall_at_1(encoder, sample, sample_docs, data.positives, n_eval)

    encoder.train()
    # every epoch, but not every step on tiny sets: a mme-mini checkpoint with optimizer state is ~360 MB
    save_every = save_every or max(steps_per_epoch, 20)
    while step < stop:
        torch.manual_seed(seed * 1_000_003 + step)  # dropout of this step, whatever came before
        epoch, batch = _batch_for_step(query_ids, step, steps_per_epoch, batch_size, seed)
        optimizer.zero_grad(set_to_none=True)
        step_loss, pairs_seen = 0.0, []
        for m in range(0, len(batch), settings["micro_batch_size"]):
            micro = batch[m:m + settings["micro_batch_size"]]
            rng = random.Random(f"{seed}:micro:{step}:{m}")
            pairs = _pairs_for(strategy, ns, rng)
            pairs_seen.append(len(pairs))
            doc_ids: list[str] = []
            for qid in micro:
                hn = random.Random(f"{seed}:hard:{epoch}:{qid}").choice(hard[qid]) if hard[qid] else None
                for d in [data.positives[qid][0]] + ([hn] if hn else []):
                    if d not in doc_ids:
                        doc_ids.append(d)
            targets = torch.tensor([doc_ids.index(data.positives[q][0]) for q in micro], device=encoder.device)
            mask = torch.tensor([[d in data.positives[q] and d != data.positives[q][0] for d in doc_ids]
                                 for q in micro], device=encoder.device)
            qv = encoder.encode_many([q_prep[q] for q in micro], sorted({a for a, _ in pairs}))
            dv = encoder.encode_many([d_prep[d] for d in doc_ids], sorted({b for _, b in pairs}))
            loss = torch.stack([info_nce(qv[a], dv[b], targets, mask, temperature) for a, b in pairs]).mean()
            (loss * len(micro) / len(batch)).backward()
            step_loss += loss.item() * len(micro) / len(batch)
        torch.nn.utils.clip_grad_norm_([p for g in params for p in g["params"]], 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        history.append({"step": step, "epoch": epoch, "loss": step_loss, "pairs": pairs_seen,
                        "lr": scheduler.get_last_lr()[-1]})
        log(f"step {step}/{total} epoch {epoch + 1} loss {step_loss:.4f}")
        if step % save_every == 0 or step == stop:
            _save(encoder, output, state(), record())
    encoder.eval()
    result = record()
    result["output"] = str(output)
    result["history"] = history
    if sample:
        result["train_pair_r1"] = {"n": n_eval, "queries": len(sample), "before": r1_before,
                                   "after": pair_recall_at_1(encoder, sample, sample_docs, data.positives, n_eval)}
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result
