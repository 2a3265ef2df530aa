"""MME on a GPU: the tiny-config checks on CUDA, then a short mme-mini training in bf16. Prints JSON.

    python scripts/mme_gpu_check.py [--steps 6] [--docs 24]

(The evaluation's model families have their own check: ``scripts/eval_gpu_check.py``.)

Self-contained (no pytest): for each MLLM architecture (DeepSeek-VL, Qwen2-VL, Qwen2.5-VL, tiny
random configs, no download) it checks visual tokens per image = N^2 for every N, the output
shape, eval-mode determinism, gradients reaching the projector and a save/load round trip; then
it trains mme-mini on a synthetic set (384 px, 12 x 12 grid) with bf16 autocast and reports the
loss, training-pair R@1 before/after and encoding throughput per N. Exit status 1 if a check fails.
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
    return out


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
        data = write_dataset(work / "data", n_docs=args.docs, images_per_doc=3, image_size=384, permute=False)
        t = time.perf_counter()
        result = train(data, work / "mini", epochs=max(1, args.steps), strategy="mean", batch_size=args.docs,
                       micro_batch_size=args.docs, lr=5e-5, projector_lr=2e-4, log=lambda s: None)
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
        report["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None
    failed = [f"{k}:{c}" for k, v in report["tiny"].items() for c, ok in v["checks"].items() if not ok]
    report["failed"] = failed
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
