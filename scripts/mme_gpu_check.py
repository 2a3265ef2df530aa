"""MME on a GPU: the tiny-config checks on CUDA, the training recipe's paths, a short mme-mini training in
bf16 and the reference scorer stage. Prints JSON.

    python scripts/mme_gpu_check.py [--steps 6] [--docs 24]

(The evaluation's model families have their own check: ``scripts/eval_gpu_check.py``.)

Self-contained (no pytest): for each MLLM architecture (DeepSeek-VL, Qwen2-VL, Qwen2.5-VL, tiny
random configs, no download) it checks visual tokens per image = N^2 for every N, the output
shape, eval-mode determinism, gradients reaching the projector, a save/load round trip, the
gradient cache against a full-batch pass (fp32, and that the bf16 path runs) and the pad-to-square
preprocessing; it trains every strategy (rand, mrl, mean, dpr) for one step; then it trains mme-mini
on a synthetic set (384 px, 12 x 12 grid) with bf16 autocast and reports the loss, training-pair R@1
before/after and encoding throughput per N; last, it runs the scorer stage (train, export, score,
validate, load_scorer) on a synthetic set with train and test splits. Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _tiny_checks(kind: str, items, workdir: Path, dev: str) -> dict:
    import torch

    from wikihow_tiir.mme.model import load_encoder, new_encoder

    docs = items[0]
    enc = new_encoder(f"tiny:{kind}", seed=0).to(dev).eval()
    prep = enc.prepare_many([(d.id, d.content) for d in docs])
    out: dict = {"grid": enc.grid_side, "ns": enc.ns, "checks": {}}
    seen: dict = {}
    real = enc.backbone.run_lm

    def spy(embeds, mask, spans):
        seen["lengths"] = mask.sum(1).tolist()
        seen["bf16_autocast"] = torch.is_autocast_enabled("cuda") and torch.get_autocast_dtype("cuda") == torch.bfloat16
        return real(embeds, mask, spans)

    enc.backbone.run_lm = spy
    ok_tokens = True
    with torch.no_grad():
        for n in enc.ns:
            vec = enc.encode(prep, n)
            for p, length in zip(prep, seen["lengths"], strict=True):
                text = sum(len(part.ids) for part in p.parts if hasattr(part, "ids"))
                ok_tokens &= length == enc.n_special + text + p.n_images * n * n
    enc.backbone.run_lm = real
    out["checks"]["tokens_per_image_n_squared"] = bool(ok_tokens)
    out["lm_runs_in_bf16_autocast"] = bool(seen["bf16_autocast"])
    out["checks"]["output_shape"] = tuple(vec.shape) == (len(docs), enc.backbone.hidden_size)
    with torch.no_grad():
        a, b = enc.encode(prep, enc.ns[1]), enc.encode(prep, enc.ns[1])
    out["checks"]["eval_deterministic"] = bool(torch.equal(a, b))
    enc.train()
    enc.zero_grad()
    v = enc.encode(prep[:2], enc.ns[1])
    (v[0] @ v[1]).backward()
    out["checks"]["grad_reaches_projector"] = all(
        p.grad is not None and float(p.grad.abs().sum()) > 0 for p in enc.backbone.projector_parameters())
    enc.eval()
    enc.save(workdir / kind)
    loaded = load_encoder(workdir / kind, device=dev)
    with torch.no_grad():
        c = loaded.encode(loaded.prepare_many([(d.id, d.content) for d in docs]), enc.ns[1])
    out["checks"]["save_load_round_trip"] = bool(torch.allclose(a, c, atol=1e-3))
    out["checks"].update(_grad_cache_checks(kind, items, dev))
    return out


def _grad_cache_checks(kind: str, items, dev: str) -> dict:
    """The gradient cache gives the full batch's gradients on this device (fp32); the bf16 path runs."""
    import torch

    from wikihow_tiir.mme import train as trainer
    from wikihow_tiir.mme.model import new_encoder

    torch.backends.cuda.matmul.allow_tf32 = False
    enc = new_encoder(f"tiny:{kind}", seed=0).to(dev).eval()
    enc.precision = "fp32"
    docs, queries, _ = items
    qp = enc.prepare_many([(q.id, q.content) for q in queries])
    dp = enc.prepare_many([(d.id, d.content) for d in docs])
    targets = torch.arange(len(qp), device=dev)
    mask = torch.zeros(len(qp), len(dp), dtype=torch.bool, device=dev)
    pairs = [(1, 1), (1, 2), (2, 2)]
    params = [p for p in enc.parameters() if p.requires_grad]
    enc.zero_grad(set_to_none=True)
    q = {n: enc.encode(qp, n) for n in (1, 2)}
    d = {n: enc.encode(dp, n) for n in (1, 2)}
    torch.stack([trainer.info_nce(q[a], d[b], targets, mask) for a, b in pairs]).mean().backward()
    ref = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    enc.zero_grad(set_to_none=True)
    trainer.cached_gradient_step(enc, qp, dp, pairs, targets, mask, micro_batch_size=2)
    got = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    worst = max(float((g - r).abs().max()) for g, r in zip(got, ref, strict=True))
    enc.precision = "bf16"
    enc.zero_grad(set_to_none=True)
    loss = trainer.cached_gradient_step(enc, qp, dp, pairs, targets, mask, micro_batch_size=2)
    from wikihow_tiir.mme.backbones import pad_to_square
    from wikihow_tiir.mme.model import decode_image

    image = decode_image(docs[0].content.images[docs[0].content.image_positions()[0]]).crop((0, 0, 64, 40))
    padded = pad_to_square(image, enc.backbone.image_size, enc.backbone.image_mean)
    return {"grad_cache_equals_full_batch_fp32": worst < 1e-4, "grad_cache_bf16_runs": bool(loss == loss),
            "pad_to_square_keeps_aspect": padded.size == (enc.backbone.image_size,) * 2}


def _strategies(work: Path, dev: str) -> dict:
    """One optimizer step of every strategy on a tiny config: the pairs each scores."""
    from wikihow_tiir.mme.synthetic import write_dataset
    from wikihow_tiir.mme.train import train

    data = write_dataset(work / "strategies", n_docs=8, images_per_doc=2, image_size=64)
    out = {}
    for strategy in ("rand", "mrl", "mean", "dpr"):
        r = train(data, work / f"s-{strategy}", epochs=1, strategy=strategy, backbone="tiny:deepseek_vl",
                  batch_size=8, micro_batch_size=4, max_steps=1, evaluate_pairs=0, device=dev, log=lambda s: None)
        out[strategy] = {"train_ns": r["settings"]["train_ns"], "pairs": r["history"][0]["pairs"]}
    return out


def _scorer_stage(work: Path, dev: str, docs: int) -> dict:
    """The build's scorer stage on a synthetic set with train and test splits: train, export, score, validate,
    and load_scorer giving the recorded numbers again."""
    import json

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "mme"))
    from conftest import write_split_dataset

    from wikihow_tiir.build import record_scorer
    from wikihow_tiir.config import load_config
    from wikihow_tiir.evaluate import evaluate_run, load_split, score_model
    from wikihow_tiir.evaluate.scorer_numbers import score_numbers
    from wikihow_tiir.mme.scorer import load_scorer, run_scorer_stage, validate_scorer

    data = write_split_dataset(work / "scorer-data", n_docs=docs, n_test=max(2, docs // 5), image_size=384)
    cfg = load_config(overrides=["scorer.epochs=1", 'scorer.baselines=["bm25"]', f'scorer.device="{dev}"'])
    t = time.perf_counter()
    section = run_scorer_stage(cfg, data, score_numbers)
    seconds = time.perf_counter() - t
    record_scorer(data, section, lambda m: None)
    manifest = json.loads((data / "manifest.json").read_text())
    results = json.loads((data / "scorer" / "results.json").read_text())
    ev = load_split(data, "test")
    again = evaluate_run(ev.qrels, score_model(load_scorer(data, device=dev), ev)).aggregate
    return {"seconds": round(seconds, 1), "default_n": results["default_n"],
            "checks": {"validates": validate_scorer(data, manifest) == [],
                       "load_scorer_reproduces": again == results["mme"]["per_n"][str(results["default_n"])]}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--docs", type=int, default=24)
    parser.add_argument("--allow-cpu", action="store_true", help="dry run without CUDA (checks the script)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print(json.dumps({"error": "CUDA is not available"}))
        return 2
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    from wikihow_tiir.mme.backbones import HF_KINDS
    from wikihow_tiir.mme.model import new_encoder
    from wikihow_tiir.mme.synthetic import make_items, write_dataset
    from wikihow_tiir.mme.train import train

    cuda = dev == "cuda"
    report: dict = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
                    "bf16_supported": cuda and torch.cuda.is_bf16_supported(), "tiny": {}}
    items = make_items(6, images_per_doc=3, image_size=64)
    with tempfile.TemporaryDirectory(prefix="mme-gpu-") as tmp:
        work = Path(tmp)
        for kind in HF_KINDS:
            report["tiny"][kind] = _tiny_checks(kind, items, work, dev)
        report["strategies"] = _strategies(work, dev)
        data = write_dataset(work / "data", n_docs=args.docs, images_per_doc=3, image_size=384, permute=False)
        t = time.perf_counter()
        result = train(data, work / "mini", epochs=max(1, args.steps), strategy="mean", batch_size=args.docs,
                       micro_batch_size=8, lr=5e-5, log=lambda s: None)
        report["mini_train"] = {"seconds": round(time.perf_counter() - t, 2), "steps": result["step"],
                                "loss_first": result["loss_first"], "loss_last": result["loss_last"],
                                "train_pair_r1": result["train_pair_r1"]}
        enc = new_encoder("mme-mini").to(dev).eval()
        docs, _, _ = make_items(args.docs, images_per_doc=5, image_size=384)
        prep = enc.prepare_many([(d.id, d.content) for d in docs])
        speed = {}
        with torch.inference_mode():
            enc.encode(prep[:4], 1)
            for n in (1, 3, enc.grid_side):
                if cuda:
                    torch.cuda.synchronize()
                t = time.perf_counter()
                for i in range(0, len(prep), 8):
                    enc.encode(prep[i:i + 8], n)
                if cuda:
                    torch.cuda.synchronize()
                speed[str(n)] = round(len(prep) / (time.perf_counter() - t), 1)
        report["mini_lm_docs_per_s"] = speed
        report["scorer_stage"] = _scorer_stage(work, dev, args.docs)
        report["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None
    failed = [f"{k}:{c}" for k, v in report["tiny"].items() for c, ok in v["checks"].items() if not ok]
    failed += [f"scorer_stage:{c}" for c, ok in report["scorer_stage"]["checks"].items() if not ok]
    expected = {"rand": 1, "mrl": 2, "mean": 4, "dpr": 1}  # tiny DeepSeek-VL: N in {1, 2} on CPU, 8 for dpr
    if dev == "cuda":
        expected = {"rand": 1, "mrl": 4, "mean": 16, "dpr": 1}  # every N of the 8 x 8 grid on a GPU
    failed += [f"strategies:{s}" for s, n in expected.items() if report["strategies"][s]["pairs"] != n]
    report["failed"] = failed
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
