"""Query-generation throughput: the offline backend, and remote parallelism against the test server.

* offline: queries per second on this machine (MiniLM loaded beforehand; the pool embedding, all
  four stages and the stage files are inside the timing; the pool embedding is also reported on
  its own, as a build pays it once), and the time of a resumed re-run;
* remote: the write + visualize + render stages against ``tests/servers/openai_server.py`` with
  200 ms artificial latency per request at concurrency 16; achieved parallelism per stage is
  (sum of request durations) / (first request start .. last request end), the target is >= 0.8 x 16.

Synthetic documents (Pillow pictures, seeded sentences) stand in for a corpus so the benchmark
runs before any build exists. Run: ``python -m benchmarks.bench_generate [--quick]``.
"""

from __future__ import annotations

import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from wikihow_tiir.config import BackendConfig, GenerateConfig
from wikihow_tiir.generate import ImagePool, generate_queries, merge_stats
from wikihow_tiir.images import normalize_image
from wikihow_tiir.model import Document, Interleaved

_VERBS = ["Rinse", "Scrub", "Cut", "Fold", "Measure", "Pour", "Sand", "Tighten", "Water", "Mix", "Wipe", "Press"]
_OBJECTS = ["the rims", "the board", "the fabric", "the batter", "the soil", "the hinge", "the tile", "the screen",
            "the paint", "the dough", "the tube", "the collar"]
_TAILS = ["with warm water", "until it is smooth", "along the edge", "in small circles", "for two minutes",
          "with a soft cloth", "before moving on", "so it dries evenly"]


def synthetic_documents(n: int, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        content = Interleaved()
        goal = f"How to {rng.choice(_VERBS)} {rng.choice(_OBJECTS).split()[-1].title()} {i}"
        content.add_text(goal)
        content.add_text("Getting Started")
        for s in range(rng.randint(3, 7)):
            content.add_text(f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}.")
            im = Image.new("RGB", (96, 96), tuple(rng.randrange(256) for _ in range(3)))
            d = ImageDraw.Draw(im)
            for _ in range(6):
                x, y = rng.randrange(80), rng.randrange(80)
                d.rectangle([x, y, x + rng.randrange(8, 40), y + rng.randrange(8, 40)],
                            fill=tuple(rng.randrange(256) for _ in range(3)))
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            norm = normalize_image(buf.getvalue())
            content.add_image(norm.meta(f"https://example.org/{i}/{s}.jpg", stand_in=True), norm.data)
        docs.append(Document(id=f"wh-{i}-s1", article_id=str(i), url=f"https://example.org/{i}", lang="en",
                             goal=goal, section_title="Getting Started", section_kind="method", section_index=1,
                             content=content))
    return docs


def _offline(docs: list[Document], shard_size: int = 64) -> dict:
    from wikihow_tiir.encoders.minilm import encode_texts

    encode_texts(["warm up the model"])
    pool = ImagePool.from_documents(docs)
    cfg = GenerateConfig()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        pool.vectors()  # the pool's MiniLM embedding: once per build, shared by every shard
        pool_s = time.perf_counter() - started
        stats = [generate_queries(docs[i:i + shard_size], pool, cfg, seed=13, work_dir=Path(tmp),
                                  shard_id=f"s{i}").stats for i in range(0, len(docs), shard_size)]
        wall = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(0, len(docs), shard_size):
            generate_queries(docs[i:i + shard_size], pool, cfg, seed=13, work_dir=Path(tmp), shard_id=f"s{i}")
        resume = time.perf_counter() - started
    merged = merge_stats(stats)
    return {"documents": len(docs), "pool_images": len(pool), "queries": merged["queries"], "seconds": round(wall, 3),
            "queries_per_s": round(merged["queries"] / wall, 1), "pool_embedding_seconds": round(pool_s, 3),
            "queries_per_s_after_pool_embedding": round(merged["queries"] / (wall - pool_s), 1),
            "resume_seconds": round(resume, 3),
            "mean_images_per_query": merged["mean_images_per_query"],
            "mean_text_tokens": merged["text_tokens"]["mean"], "rejects_by_reason": merged["rejects_by_reason"]}


def _remote(docs: list[Document], concurrency: int = 16, latency_s: float = 0.2) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from servers.openai_server import OpenAIServer

    pool = ImagePool.from_documents(docs)
    with OpenAIServer(latency_s=latency_s) as server, tempfile.TemporaryDirectory() as tmp:
        backend = BackendConfig(kind="openai", base_url=server.base_url, model="scripted-1",
                                concurrency=concurrency, timeout_s=30)
        cfg = GenerateConfig(write=backend, visualize=backend, render=backend)
        started = time.perf_counter()
        result = generate_queries(docs, pool, cfg, seed=13, work_dir=Path(tmp), shard_id="remote")
        wall = time.perf_counter() - started
        per_stage = {}
        for stage in ("write", "visualize", "render"):
            reqs = [r for r in server.requests if r["stage"] == stage]
            span = max(r["end"] for r in reqs) - min(r["start"] for r in reqs)
            busy = sum(r["end"] - r["start"] for r in reqs)
            per_stage[stage] = {"requests": len(reqs), "seconds": round(span, 3),
                                "parallelism": round(busy / span, 2)}
        overall = min(s["parallelism"] for s in per_stage.values())
    return {"latency_s": latency_s, "concurrency": concurrency, "documents": len(docs),
            "queries": len(result.queries), "seconds": round(wall, 3), "stages": per_stage,
            "achieved_parallelism": overall, "target": round(0.8 * concurrency, 1),
            "meets_target": overall >= 0.8 * concurrency, "max_in_flight": server.max_in_flight}


def run(quick: bool = False) -> dict:
    docs = synthetic_documents(120 if quick else 400)
    return {"offline": _offline(docs), "remote": _remote(docs[:64 if quick else 128])}


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
