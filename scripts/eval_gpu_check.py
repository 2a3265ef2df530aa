"""The evaluation harness on a GPU, in one command: every model family's tiny checkpoint on CUDA. Prints JSON.

    python scripts/eval_gpu_check.py [--allow-cpu]

Self-contained (no pytest, no download). For each family (GME / Qwen2-VL, E5-V / LLaVA-NeXT, CLIP,
Jina-CLIP's interface, a sentence-transformers model) it builds the tiny random checkpoint of
``wikihow_tiir.evaluate.families.tiny``, scores a synthetic split with every adaptation the family
runs, on CUDA in the paper's dtype (``--dtype auto``: fp16 GME/CLIP/Jina, bf16 E5-V/st) and on CPU in
float32, and checks: finite unit-norm vectors, the same document ranking signal on both devices
(cosine of the CUDA and CPU vectors), the run written; then the perturbations, ``clip train`` for a few
steps on CUDA, and (where torchvision is installed) that our Qwen2-VL image-only processor gives the
same tokens and pixels as transformers' full processor. Exit status 1 if a check fails, 2 without CUDA.
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

# cosine between the CUDA (half precision) and CPU (float32) vectors of one item: the tiny models are
# random, so this only catches a broken device path (wrong dtype casts, inputs left on the CPU ...)
MIN_COSINE = {"float32": 0.999, "float16": 0.98, "bfloat16": 0.95}


def _family_checks(spec: str, data: Path, dev: str, work: Path) -> dict:
    import numpy as np

    from wikihow_tiir.evaluate.baselines import ModelOptions
    from wikihow_tiir.evaluate.families import assemble, load_family
    from wikihow_tiir.retrieval.dataset import load_split

    ev = load_split(data, "test")
    docs = ev.documents.load()
    out: dict = {"checks": {}, "adaptations": {}}
    gpu = load_family(spec, ModelOptions(device=dev, dtype="auto"))
    cpu = load_family(spec, ModelOptions(device="cpu", dtype="float32"))
    out["settings"] = gpu.info
    for adapt in gpu.adaptations():
        if adapt == "captions":
            continue
        a = assemble(gpu, adapt, ModelOptions(device=dev))
        b = assemble(cpu, adapt, ModelOptions(device="cpu"))
        t = time.perf_counter()
        va = np.asarray(a.encode_documents(docs), dtype=np.float64)
        seconds = time.perf_counter() - t
        vb = np.asarray(b.encode_documents(docs), dtype=np.float64)
        finite = bool(np.isfinite(va).all()) and va.shape == vb.shape
        ua = va / np.linalg.norm(va, axis=1, keepdims=True)
        ub = vb / np.linalg.norm(vb, axis=1, keepdims=True)
        cos = float((ua * ub).sum(1).min()) if finite else float("nan")
        dtype = str(gpu.info.get("dtype", "float16" if dev.startswith("cuda") else "float32"))
        out["adaptations"][adapt] = {"min_cosine_gpu_cpu": round(cos, 5), "docs_per_s": round(len(docs) / seconds, 1)}
        out["checks"][f"{adapt}:finite"] = finite
        out["checks"][f"{adapt}:matches_cpu"] = bool(cos >= MIN_COSINE.get(dtype, 0.95))
    from wikihow_tiir.evaluate.runner import evaluate_models

    summary = evaluate_models(data, [spec], output=work / "eval", options=ModelOptions(device=dev),
                              perturbs=["all"], seed=1)
    out["checks"]["runs_written"] = all((work / "eval" / v["files"]["run"]).is_file()
                                        for v in summary["models"].values())
    out["ndcg_at_10"] = {k: round(v["metrics"]["ndcg_at_10"], 4) for k, v in summary["models"].items()}
    return out


def _processor_check(gme_folder: Path) -> dict:
    """Our Qwen2-VL processor (PIL image processor, no video processor) against transformers' own."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        return {"skipped": "torchvision is not installed (transformers' full Qwen2-VL processor needs it)"}
    import torch
    from PIL import Image
    from transformers import AutoProcessor

    from wikihow_tiir.evaluate.families.gme import fetch_image, image_only_processor, message

    ours = image_only_processor(str(gme_folder), 256 * 28 * 28, 1280 * 28 * 28, True)
    full = AutoProcessor.from_pretrained(gme_folder, min_pixels=256 * 28 * 28, max_pixels=1280 * 28 * 28)
    full.tokenizer.padding_side = "right"
    images = [fetch_image(Image.new("RGB", (300, 90), (200, 30, 30))), fetch_image(Image.new("RGB", (64, 400), "blue"))]
    texts = [message(" a short text", True, "query"), message(" a longer text than the first one", True, "document")]
    a = ours(text=texts, images=images, padding=True, truncation=True, max_length=1800, return_tensors="pt")
    b = full(text=texts, images=images, padding=True, truncation=True, max_length=1800, return_tensors="pt")
    return {"same_input_ids": bool(torch.equal(a["input_ids"], b["input_ids"])),
            "same_grid": bool(torch.equal(a["image_grid_thw"], b["image_grid_thw"])),
            "pixel_max_abs_diff": float((a["pixel_values"] - b["pixel_values"]).abs().max())}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--allow-cpu", action="store_true", help="dry run without CUDA (checks the script)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print(json.dumps({"error": "CUDA is not available"}))
        return 2
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    from wikihow_tiir.evaluate.clip_train import ClipTrainConfig, train_clip
    from wikihow_tiir.evaluate.families import tiny

    report: dict = {"device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu", "torch": torch.__version__,
                    "families": {}}
    with tempfile.TemporaryDirectory(prefix="eval-gpu-") as tmp:
        work = Path(tmp)
        data = tiny.tiny_dataset(work / "data")
        folders = {"gme": tiny.tiny_gme(work / "gme"), "e5v": tiny.tiny_e5v(work / "e5v"),
                   "clip": tiny.tiny_clip(work / "clip"), "jina-clip": tiny.tiny_jina_clip(work / "jina"),
                   "st": tiny.tiny_sentence_transformer(work / "bge-tiny", pooling="mean")}
        for prefix, folder in folders.items():
            try:
                report["families"][prefix] = _family_checks(f"{prefix}:{folder}", data, dev, work / prefix)
            except Exception as exc:  # report every family, even when one breaks
                report["families"][prefix] = {"checks": {"ran": False}, "error": f"{type(exc).__name__}: {exc}"}
        t = time.perf_counter()
        trained = train_clip(data, str(folders["clip"]), work / "clip-tuned",
                             ClipTrainConfig(epochs=4, batch_size=6, lr=1e-3, device=dev), log=lambda s: None)
        report["clip_train"] = {"seconds": round(time.perf_counter() - t, 2), "device": trained["device"],
                                "loss_first": trained["loss_first"], "loss_last": trained["loss_last"]}
        report["qwen2vl_processor"] = _processor_check(folders["gme"])
        report["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1) if dev == "cuda" else None
    failed = [f"{k}:{c}" for k, v in report["families"].items() for c, ok in v["checks"].items() if not ok]
    proc = report["qwen2vl_processor"]
    if "skipped" not in proc and not (proc["same_input_ids"] and proc["same_grid"]):
        failed.append("qwen2vl_processor")
    if not report["clip_train"]["loss_last"] < report["clip_train"]["loss_first"]:
        failed.append("clip_train:loss")
    report["failed"] = failed
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
