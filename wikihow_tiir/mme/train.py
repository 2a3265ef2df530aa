"""Contrastive training of MME, the paper's recipe (§3) with our choices as options.

InfoNCE (temperature 0.05) over **every document of the batch** (32 queries: their positives and one
hard negative each) plus that hard negative; AdamW with linear warmup then linear decay, learning
rate 5e-5 for every pretrained part (a pretrained aligner/merger included), 3 epochs.

The batch's loss is computed over the whole batch whatever the micro-batch (a *gradient cache*, Gao et
al. 2021): every item is first embedded without a graph, the loss and the gradients of the embeddings
are computed on the whole batch, then each chunk of items is embedded again with a graph and back-
propagated with its cached embedding gradients. The parameter gradients are those of one full-batch
pass, with the memory of one chunk. Chunks group items of similar length (dynamic padding); each
chunk's second pass replays its first pass's random numbers (dropout), so both passes see one model.

Strategies, with M granularities N:

* ``rand`` - one N drawn per batch, used for queries and documents;
* ``mrl``  - the loss at every N (query N = document N), uniformly weighted sum (weights 1/M);
* ``mean`` - the mean loss over all M x M (query N, document N) pairs: the paper's best;
* ``dpr``  - the full grid only (N = grid side, every visual token kept): the paper's DPR baseline.

Each item is embedded once per N and the M x M similarity matrices are combined afterwards, so
Mean costs 2M embeddings per item, not M^2.

Hard negatives (``hard_negatives``): ``random`` (the paper's: any non-relevant document of the
corpus) or ``minilm-top-k`` (ours: one of the text baseline's top k).

Pictures are read per batch from an on-disk store (:mod:`wikihow_tiir.mme.data`) and the frozen vision
tower's features are cached in a bounded least-recently-used cache, so memory does not grow with the
corpus.

Resumable and bit-exact: every step reseeds torch from (seed, step) and the data order is a pure
function of (seed, epoch), so a run resumed from a checkpoint takes exactly the steps an
uninterrupted run would have taken.
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from wikihow_tiir.mme.data import HARD_NEGATIVES
from wikihow_tiir.mme.model import CheckpointError, MMEEncoder, Prepared, load_encoder, new_encoder, read_meta
from wikihow_tiir.mme.pooling import ImagePart

STRATEGIES = ("rand", "mrl", "mean", "dpr")
STATE_FILE = "trainer_state.pt"
TEMPERATURE = 0.05
CPU_MAX_N = 3
MINI_PROJECTOR_LR = 2e-4  # mme-mini's projector starts from random; 1e-3 sometimes collapsed it


def strategy_ns(strategy: str, encoder: MMEEncoder, train_ns: Sequence[int] | None, device: str) -> list[int]:
    """The granularities a run trains: ``dpr`` the full grid only; else ``train_ns`` or the default (every
    N of the grid on a GPU, N <= 3 on CPU: the full grid alone makes a document ~5x longer)."""
    if strategy == "dpr":
        if train_ns and list(train_ns) != [encoder.grid_side]:
            raise ValueError(f"the dpr strategy trains the full grid only (N={encoder.grid_side}); "
                             f"drop --train-ns {list(train_ns)}")
        return [encoder.grid_side]
    ns = sorted(set(train_ns)) if train_ns else [n for n in encoder.ns if device != "cpu" or n <= CPU_MAX_N]
    for n in ns:
        if n not in encoder.ns:
            raise ValueError(f"training N={n} does not divide the {encoder.grid_side}x{encoder.grid_side} grid; "
                             f"choose from {encoder.ns}")
    return ns


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX): else bf16 is emulated, and slower."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: str) -> str:
    """``auto``: bf16 autocast on CUDA and on CPUs with native bf16, else fp32 (weights stay fp32 either way)."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if str(device).startswith("cuda") or cpu_has_bf16() else "fp32"


def _pairs_for(strategy: str, ns: Sequence[int], rng: random.Random) -> list[tuple[int, int]]:
    if strategy == "rand":
        n = rng.choice(list(ns))
        return [(n, n)]
    if strategy in ("mrl", "dpr"):
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


def _rng_state(device: torch.device) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    return torch.get_rng_state(), (torch.cuda.get_rng_state_all() if device.type == "cuda" else None)


def _set_rng_state(state: tuple[torch.Tensor, list[torch.Tensor] | None]) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


def length_chunks(encoder: MMEEncoder, items: Sequence[Prepared], n: int, size: int) -> list[list[int]]:
    """Indices of ``items`` in chunks of ``size``, shortest sequences (at N = ``n``) first: a chunk pads to
    its own longest item, so grouping similar lengths wastes the least compute (dynamic padding)."""
    lengths = [lay.length for lay in encoder.layouts(items, n)]
    order = sorted(range(len(items)), key=lambda i: (lengths[i], i))
    return [order[i:i + size] for i in range(0, len(order), max(1, size))]


def cached_gradient_step(encoder: MMEEncoder, queries: Sequence[Prepared], documents: Sequence[Prepared],
                         pairs: Sequence[tuple[int, int]], targets: torch.Tensor, mask: torch.Tensor,
                         temperature: float = TEMPERATURE, micro_batch_size: int = 16) -> float:
    """The mean InfoNCE loss of the whole batch over ``pairs`` of (query N, document N); the gradients of
    one full-batch pass are accumulated into the parameters, holding one chunk's graph at a time.

    ``targets[i]`` is the index of query i's positive among ``documents``; ``mask[i, j]`` hides document j
    from query i (another relevant document). A chunk is embedded at all its N from one projection of its
    pictures. When every chunk holds its whole role (a small batch), the embeddings keep their graph from
    the first pass and no second pass is needed: the same gradients, a quarter less compute.
    """
    items = {"q": list(queries), "d": list(documents)}
    ns = {"q": sorted({a for a, _ in pairs}), "d": sorted({b for _, b in pairs})}
    plan = [(role, idx) for role in ("q", "d") for idx in length_chunks(encoder, items[role], max(ns[role]),
                                                                         micro_batch_size)]
    one_pass = len(plan) <= 2
    reps: dict[tuple[str, int], torch.Tensor] = {}
    states = []
    with torch.set_grad_enabled(one_pass):  # pass 1: every embedding of the batch (no graph when chunked)
        for role, idx in plan:
            states.append(_rng_state(encoder.device))
            vecs = encoder.encode_many([items[role][i] for i in idx], ns[role], record=False)
            for n, vec in vecs.items():
                if one_pass:
                    reps[role, n] = vec[torch.argsort(torch.tensor(idx, device=vec.device))]
                    continue
                if (role, n) not in reps:
                    reps[role, n] = torch.zeros(len(items[role]), vec.shape[1], device=vec.device)
                reps[role, n][idx] = vec
    if one_pass:
        loss = torch.stack([info_nce(reps["q", a], reps["d", b], targets, mask, temperature)
                            for a, b in pairs]).mean()
        loss.backward()
        return float(loss.detach())
    leaves = {k: v.requires_grad_(True) for k, v in reps.items()}
    loss = torch.stack([info_nce(leaves["q", a], leaves["d", b], targets, mask, temperature) for a, b in pairs]).mean()
    loss.backward()  # the loss's gradient with respect to every embedding of the batch
    after = _rng_state(encoder.device)
    for (role, idx), state in zip(plan, states, strict=True):  # pass 2: chunk by chunk, with a graph
        _set_rng_state(state)  # the same dropout as in pass 1
        chunk = [items[role][i] for i in idx]
        with encoder.autocast():
            index, grid = encoder.project([p for item in chunk for p in item.parts if isinstance(p, ImagePart)])
        # the language model's graph of one N at a time: the projected grids are a leaf that collects their
        # gradient over every N, then flows back through the projector once
        leaf = grid.detach().requires_grad_(True) if grid is not None else None
        for n in ns[role]:
            vec = encoder.encode(chunk, n, grids=(index, leaf), record=False)
            vec.backward(leaves[role, n].grad[idx])
        if grid is not None and leaf.grad is not None:
            grid.backward(leaf.grad)
    _set_rng_state(after)
    return float(loss.detach())


def _with_images(store, role: str, items: Sequence) -> list:
    return [store.fill(role, it) for it in items] if store is not None else list(items)


@torch.no_grad()
def pair_recall_at_1(encoder: MMEEncoder, queries, documents, positives: dict[str, list[str]], n: int,
                     batch: int = 32, store=None) -> float:
    """R@1 of the queries against the documents given (training-pair retrieval); pictures from ``store``
    a batch at a time when the items carry none."""
    was_training = encoder.training
    encoder.eval()

    def vectors(items, role: str) -> torch.Tensor:
        out = []
        for i in range(0, len(items), batch):
            chunk = _with_images(store, role, items[i:i + batch])
            out.append(encoder.encode(encoder.prepare_many([(x.id, x.content) for x in chunk]), n, record=False))
        return torch.cat(out)

    qv, dv = vectors(list(queries), "query"), vectors(list(documents), "doc")
    top = (qv @ dv.T).argmax(dim=1).tolist()
    hits = sum(documents[t].id in positives[q.id] for q, t in zip(queries, top, strict=True))
    encoder.train(was_training)
    return hits / max(1, len(queries))


def _settings_fingerprint(s: dict[str, Any]) -> dict[str, Any]:
    keys = ("backbone", "strategy", "seed", "epochs", "batch_size", "micro_batch_size", "lr", "projector_lr",
            "warmup_ratio", "temperature", "train_ns", "hard_negatives", "hard_negative_k", "image_size",
            "max_length", "precision", "dataset", "recipe_version")
    return {k: s.get(k) for k in keys}


RECIPE_VERSION = 2  # 2: whole-batch negatives (gradient cache), random hard negatives, pretrained-projector lr


def recipe(settings: dict[str, Any]) -> dict[str, Any]:
    """The training recipe in words and numbers (checkpoint record, scorer config and model card)."""
    return {"loss": "InfoNCE", "temperature": settings["temperature"],
            "negatives": "every other document of the batch (positives and hard negatives of all its queries, "
                         "gradient cache) + 1 hard negative per query",
            "hard_negatives": settings["hard_negatives"] + (f" (k={settings['hard_negative_k']})"
                                                            if settings["hard_negatives"] == "minilm-top-k" else ""),
            "optimizer": "AdamW, weight decay 0.01, gradient norm clipped at 1.0",
            "schedule": f"linear warmup over {settings['warmup_ratio']:.0%} of the steps, then linear decay",
            "batch_size": settings["batch_size"], "epochs": settings["epochs"], "lr": settings["lr"],
            "projector_lr": settings["projector_lr"], "strategy": settings["strategy"],
            "train_ns": settings["train_ns"], "precision": settings["precision"] + (
                " autocast, fp32 weights" if settings["precision"] == "bf16" else ""),
            "frozen": "the vision tower", "version": RECIPE_VERSION}


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
          micro_batch_size: int = 8, lr: float = 5e-5, projector_lr: float | None = None,
          warmup_ratio: float = 0.1, temperature: float = TEMPERATURE, train_ns: Sequence[int] | None = None,
          hard_negatives: str = "random", hard_negative_k: int = 5, image_size: int | None = None,
          max_length: int | None = None, save_every: int | None = None, resume: bool = True,
          evaluate_pairs: int = 256, device: str | None = None, vision_cache_mb: int | None = None,
          threads: int | None = None, image_store: str | Path | None = None, precision: str = "auto",
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train MME on ``dataset_dir`` and write the checkpoint folder ``output``; returns the record.

    ``backbone``: ``mme-mini`` (offline), ``tiny:<arch>`` (random tiny MLLM, for tests) or an MLLM
    hub id / local folder (``deepseek-community/deepseek-vl-1.3b-chat``, ``Qwen/Qwen2-VL-2B-Instruct``).
    ``projector_lr``: None gives mme-mini's fresh projector 2e-4 and a pretrained aligner/merger ``lr``.
    ``max_steps`` stops early without changing the schedule (so a later resume continues it).
    ``image_store``: where the pictures are staged (default: a temporary folder, removed afterwards).
    ``threads``: torch CPU threads for this run (restored afterwards).
    ``precision``: ``auto`` (bf16 autocast on CUDA and on CPUs with native bf16), ``bf16`` or ``fp32``.
    An existing checkpoint in ``output`` is resumed when its settings match; otherwise refused.
    """
    kwargs = {k: v for k, v in locals().items() if k != "threads"}
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _train(**kwargs)
    finally:
        torch.set_num_threads(before)


def _train(dataset_dir, output, epochs, strategy, seed, max_steps, backbone, batch_size, micro_batch_size, lr,
           projector_lr, warmup_ratio, temperature, train_ns, hard_negatives, hard_negative_k, image_size,
           max_length, save_every, resume, evaluate_pairs, device, vision_cache_mb, image_store, precision, log):
    from wikihow_tiir.mme.data import HardNegatives, load_training_data

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}")
    if hard_negatives not in HARD_NEGATIVES:
        raise ValueError(f"unknown hard negatives {hard_negatives!r}; choose one of {list(HARD_NEGATIVES)}")
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
    if vision_cache_mb is not None:
        encoder.cache_bytes = vision_cache_mb * 2**20
    precision = resolve_precision(precision, device)
    ns = strategy_ns(strategy, encoder, train_ns, device)
    if projector_lr is None:  # a pretrained aligner/merger is a pretrained part: the paper's 5e-5
        projector_lr = lr if encoder.backbone.projector_pretrained else MINI_PROJECTOR_LR
    settings = {"backbone": backbone, "strategy": strategy, "seed": seed, "epochs": epochs,
                "batch_size": batch_size, "micro_batch_size": micro_batch_size, "lr": lr,
                "projector_lr": projector_lr, "warmup_ratio": warmup_ratio, "temperature": temperature,
                "train_ns": ns, "hard_negatives": hard_negatives, "hard_negative_k": hard_negative_k,
                "image_size": encoder.backbone.image_size, "max_length": encoder.backbone.max_length,
                "precision": precision, "dataset": str(dataset_dir), "recipe_version": RECIPE_VERSION}
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

    hard = HardNegatives(data, hard_negatives, k=hard_negative_k, seed=seed)
    queries = {q.id: q for q in data.queries}
    staging = None
    if image_store is None:
        staging = tempfile.TemporaryDirectory(prefix="wikihow-tiir-mme-images-")
        image_store = Path(staging.name) / "images.sqlite"
    t0 = time.perf_counter()
    store = data.image_store(image_store)
    log(f"staged the pictures of {len(data.documents)} documents and {len(query_ids)} queries in "
        f"{time.perf_counter() - t0:.1f} s; {total} steps ({steps_per_epoch}/epoch), strategy {strategy}, "
        f"N in {ns}, hard negatives {hard_negatives}, device {device}")

    def state() -> dict[str, Any]:
        return {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "settings": settings, "history": history}

    def record() -> dict[str, Any]:
        return {"settings": settings, "recipe": recipe(settings), "step": step, "total_steps": total,
                "steps_per_epoch": steps_per_epoch, "n_pairs": len(query_ids), "notes": data.notes,
                "loss_first": history[0]["loss"] if history else None,
                "loss_last": history[-1]["loss"] if history else None}

    sample = data.queries[:evaluate_pairs]
    sample_docs = [data.documents[i] for i in sorted({data.positives[q.id][0] for q in sample})]
    n_eval = 3 if 3 in ns else ns[len(ns) // 2]
    try:
        r1_before = None
        if sample and step == 0:  # the untrained model's score, for comparison
            r1_before = pair_recall_at_1(encoder, sample, sample_docs, data.positives, n_eval, store=store)

        encoder.train()
        encoder.precision = precision
        # every epoch, but not every step on tiny sets: a mme-mini checkpoint with optimizer state is ~360 MB
        save_every = save_every or max(steps_per_epoch, 20)
        while step < stop:
            torch.manual_seed(seed * 1_000_003 + step)  # dropout of this step, whatever came before
            epoch, batch = _batch_for_step(query_ids, step, steps_per_epoch, batch_size, seed)
            pairs = _pairs_for(strategy, ns, random.Random(f"{seed}:n:{step}"))
            doc_ids: list[str] = []
            for qid in batch:  # the batch's documents: every positive and every hard negative, once
                hn = hard.draw(qid, epoch)
                for d in [data.positives[qid][0]] + ([hn] if hn else []):
                    if d not in doc_ids:
                        doc_ids.append(d)
            targets = torch.tensor([doc_ids.index(data.positives[q][0]) for q in batch], device=encoder.device)
            mask = torch.tensor([[d in data.positives[q] and d != data.positives[q][0] for d in doc_ids]
                                 for q in batch], device=encoder.device)
            q_items = _with_images(store, "query", [queries[q] for q in batch])
            d_items = _with_images(store, "doc", [data.documents[d] for d in doc_ids])
            q_prep = encoder.prepare_many([(q.id, q.content) for q in q_items])
            d_prep = encoder.prepare_many([(d.id, d.content) for d in d_items])
            del q_items, d_items
            optimizer.zero_grad(set_to_none=True)
            loss = cached_gradient_step(encoder, q_prep, d_prep, pairs, targets, mask, temperature,
                                        micro_batch_size)
            torch.nn.utils.clip_grad_norm_([p for g in params for p in g["params"]], 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            history.append({"step": step, "epoch": epoch, "loss": loss, "pairs": len(pairs),
                            "documents": len(doc_ids), "lr": scheduler.get_last_lr()[-1]})
            log(f"step {step}/{total} epoch {epoch + 1} loss {loss:.4f} ({len(batch)} queries x "
                f"{len(doc_ids)} documents)")
            if step % save_every == 0 or step == stop:
                _save(encoder, output, state(), record())
        encoder.eval()
        encoder.precision = None  # scoring precision is the device's default
        result = record()
        result["output"] = str(output)
        result["history"] = history
        result["vision_runs"] = encoder.vision_runs
        if sample:
            result["train_pair_r1"] = {"n": n_eval, "queries": len(sample), "before": r1_before,
                                       "after": pair_recall_at_1(encoder, sample, sample_docs, data.positives,
                                                                 n_eval, store=store)}
    finally:
        store.close()
        if staging is not None:
            staging.cleanup()
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result
