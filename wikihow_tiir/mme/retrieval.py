"""MME as a scorer: the RetrievalModel adapter, and the N sweep (quality and cost against tokens per image)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wikihow_tiir.mme.model import MMEEncoder, Prepared, load_encoder
from wikihow_tiir.mme.pooling import DEFAULT_N, check_n, clip_n
from wikihow_tiir.model import Document, Query

log = logging.getLogger(__name__)


def _strip(path: str) -> str:
    return path[4:] if path.startswith("mme:") else path


def _materialize(items) -> list:
    return items.load() if hasattr(items, "load") else list(items)


class MMERetrievalModel:
    """Encodes queries at N = ``n`` and documents at N = ``doc_n`` (the paper picks them separately).

    Undecodable images are left out of the sequence and listed in ``rejects`` (with a reason);
    sequences over the context budget are truncated by the documented rule and listed in
    ``truncations``. ``report()`` summarizes both.
    """

    def __init__(self, encoder: MMEEncoder, n: int, doc_n: int | None = None, batch_size: int = 16,
                 checkpoint: str = ""):
        self.encoder = encoder
        self.n = check_n(n, encoder.grid_side)
        self.doc_n = check_n(doc_n if doc_n is not None else n, encoder.grid_side)
        self.batch_size = batch_size
        self.checkpoint = checkpoint
        suffix = f"N={self.n}" if self.doc_n == self.n else f"N={self.n}/{self.doc_n}"
        base = "mme-mini" if encoder.kind == "mme-mini" else f"mme-{encoder.kind}"
        self.name = f"{base}@{suffix}"

    def at_n(self, n: int, doc_n: int | None = None) -> MMERetrievalModel:
        """The same weights at another N (one encoder: its vision-feature cache is shared)."""
        return MMERetrievalModel(self.encoder, n, doc_n, batch_size=self.batch_size, checkpoint=self.checkpoint)

    @property
    def rejects(self):
        return self.encoder.rejects

    @property
    def truncations(self):
        return self.encoder.truncations

    def _encode(self, items: Sequence[tuple[str, Any]], n: int) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(0, len(items), self.batch_size):
                prepared = self.encoder.prepare_many(items[start:start + self.batch_size])
                out.append(self.encoder.encode(prepared, n).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.encoder.backbone.hidden_size), dtype=np.float32)
        return np.concatenate(out)

    def encode_queries(self, queries: Sequence[Query]) -> np.ndarray:
        return self._encode([(q.id, q.content) for q in queries], self.n)

    def encode_documents(self, documents: Sequence[Document]) -> np.ndarray:
        return self._encode([(d.id, d.content) for d in documents], self.doc_n)

    def report(self) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for r in self.rejects:
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
        return {"model": self.name, "checkpoint": self.checkpoint, "device": str(self.encoder.device),
                "rejected_images": reasons,
                "truncated_sequences": len(self.truncations),
                "images_dropped_by_truncation": sum(t.images_dropped for t in self.truncations),
                "text_tokens_dropped_by_truncation": sum(t.text_tokens_dropped for t in self.truncations)}


def load_retrieval_model(path: str, n: int | None = None, doc_n: int | None = None,
                         device: str | None = None) -> MMERetrievalModel:
    """The scorer for ``wikihow-tiir evaluate --model mme:CHECKPOINT [--mme-n N]``.

    Query N = ``n``, document N = ``doc_n`` or ``n``. Without ``n``: the N a released scorer records (its best
    on the test split, ``results.json``), else the paper's N = 3, clipped to the largest divisor of the grid
    side not above 3. An explicit N that does not divide the grid is an error naming the valid ones. Another
    backbone's or a non-MME folder is refused.
    """
    from wikihow_tiir.mme.scorer import default_n

    path = _strip(path)
    encoder = load_encoder(path, device=device)
    if n is None:
        recorded = default_n(path)
        n = recorded if recorded in encoder.ns else clip_n(DEFAULT_N, encoder.grid_side)
    return MMERetrievalModel(encoder, n, doc_n, checkpoint=path)


def _top_run(qv: np.ndarray, dv: np.ndarray, qids: list[str], dids: list[str], k: int = 100):
    scores = qv @ dv.T
    k = min(k, len(dids))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return {q: {dids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(qids)}


def score_split(model: MMERetrievalModel, ev, k: int = 100) -> dict[str, dict[str, float]]:
    """The top-``k`` run of an MME model on a split (exact search; equal scores ranked by doc id, as
    ``evaluate`` ranks them), for ``mme``'s own analyses (``evaluate`` scores ``--model mme`` itself)."""
    documents, queries = _materialize(ev.documents), _materialize(ev.queries)
    dv, qv = model.encode_documents(documents), model.encode_queries(queries)
    dids, qids = [d.id for d in documents], [q.id for q in queries]
    scores = qv @ dv.T
    id_rank = np.argsort(np.argsort(np.array(dids, dtype=object), kind="stable"), kind="stable")
    k = min(k, len(dids))
    run = {}
    for i, q in enumerate(qids):
        order = np.lexsort((id_rank, -scores[i]))[:k]
        run[q] = {dids[j]: float(scores[i, j]) for j in order}
    return run


def _encode_all(encoder: MMEEncoder, prepared: list[Prepared], n: int, batch: int) -> np.ndarray:
    with torch.inference_mode():
        return np.concatenate([encoder.encode(prepared[i:i + batch], n).float().cpu().numpy()
                               for i in range(0, len(prepared), batch)])


def sweep(documents, queries, qrels: dict[str, dict[str, int]], checkpoint: str, output_dir: Path,
          batch_size: int = 16) -> dict[str, Any]:
    """Score the checkpoint at every N (query N = document N) and write the table and the plot.

    Writes ``mme_sweep.json``, ``mme_sweep.md`` and ``mme_sweep.png`` into ``output_dir``. The
    vision tower runs once per image (its cost does not depend on N; reported as
    ``vision_seconds``); ``encode_seconds`` per N is the projector + pooling + language model time
    for all documents and queries, the part MME makes cheaper.
    """
    from wikihow_tiir.retrieval.metrics import compute_metrics

    checkpoint = _strip(str(checkpoint))
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    documents, queries = _materialize(documents), _materialize(queries)
    if not documents or not queries:
        raise ValueError("the sweep needs at least one document and one query")
    encoder = load_encoder(checkpoint)
    t0 = time.perf_counter()
    dprep = encoder.prepare_many([(d.id, d.content) for d in documents])
    qprep = encoder.prepare_many([(q.id, q.content) for q in queries])
    vision_seconds = time.perf_counter() - t0
    dids, qids = [d.id for d in documents], [q.id for q in queries]
    rows = []
    _encode_all(encoder, dprep[:2], encoder.ns[0], batch_size)  # warm-up, so the first N is not timed cold
    encoder.truncations.clear()
    for n in encoder.ns:
        before = len(encoder.truncations)
        t = time.perf_counter()
        dv = _encode_all(encoder, dprep, n, batch_size)
        qv = _encode_all(encoder, qprep, n, batch_size)
        seconds = time.perf_counter() - t
        metrics = compute_metrics(qrels, _top_run(qv, dv, qids, dids))
        dl = [lay.length for lay in encoder.layouts(dprep, n)]
        ql = [lay.length for lay in encoder.layouts(qprep, n)]
        rows.append({
            "n": n, "visual_tokens_per_image": n * n,
            "ndcg_at_10": round(100 * metrics["ndcg_at_10"], 2), "recall_at_5": round(100 * metrics["recall_at_5"], 2),
            "mrr_at_10": round(100 * metrics["mrr_at_10"], 2),
            "encode_seconds": round(seconds, 3), "items_per_second": round((len(dprep) + len(qprep)) / seconds, 2),
            "doc_seq_len_mean": round(float(np.mean(dl)), 1), "doc_seq_len_max": int(max(dl)),
            "query_seq_len_mean": round(float(np.mean(ql)), 1),
            "truncated_sequences": len(encoder.truncations) - before,
        })
    best = max(rows, key=lambda r: (r["ndcg_at_10"], -r["n"]))
    result = {"checkpoint": checkpoint, "backbone": encoder.kind, "grid_side": encoder.grid_side,
              "documents": len(documents), "queries": len(queries), "device": str(encoder.device),
              "vision_seconds": round(vision_seconds, 2), "best_n": best["n"], "rows": rows,
              "rejected_images": len(encoder.rejects),
              "paper": {"backbone": "DeepSeek-VL-1.3B (1.98B params)", "n": 3, "recall_at_5": 77.40,
                        "mrr_at_10": 63.40, "ndcg_at_10": 65.91}}
    from wikihow_tiir.io import atomic_write_text

    atomic_write_text(output_dir / "mme_sweep.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(output_dir / "mme_sweep.md", render_table(result))
    plot(result, output_dir / "mme_sweep.png")
    return result


def render_table(result: dict[str, Any]) -> str:
    lines = [f"# MME sweep: {result['backbone']} ({result['checkpoint']})", "",
             f"{result['documents']} documents, {result['queries']} queries, grid {result['grid_side']}x"
             f"{result['grid_side']}, device {result['device']}; vision tower (once, all N): "
             f"{result['vision_seconds']} s", "",
             "| N | visual tokens / image | nDCG@10 | R@5 | MRR@10 | encode s | items/s | doc len (mean / max) "
             "| query len | truncated |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['n']} | {r['visual_tokens_per_image']} | {r['ndcg_at_10']:.2f} | {r['recall_at_5']:.2f} "
                     f"| {r['mrr_at_10']:.2f} | {r['encode_seconds']:.2f} | {r['items_per_second']:.1f} "
                     f"| {r['doc_seq_len_mean']:.0f} / {r['doc_seq_len_max']} | {r['query_seq_len_mean']:.0f} "
                     f"| {r['truncated_sequences']} |")
    p = result["paper"]
    lines += ["", f"Best N here: {result['best_n']}. The paper (MME on {p['backbone']}, N={p['n']}): "
              f"R@5 {p['recall_at_5']}, MRR@10 {p['mrr_at_10']}, nDCG@10 {p['ndcg_at_10']}.", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Path:
    """nDCG@10 and R@5 (left axis) and encoding time (right axis) against visual tokens per image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    x = [r["visual_tokens_per_image"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.plot(x, [r["ndcg_at_10"] for r in rows], "o-", label="nDCG@10")
    ax.plot(x, [r["recall_at_5"] for r in rows], "s-", label="R@5")
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [f"{r['n']}x{r['n']}\n{r['visual_tokens_per_image']}" for r in rows])
    ax.set_xlabel("visual tokens per image (N x N)")
    ax.set_ylabel("score (x100)")
    ax2 = ax.twinx()
    ax2.plot(x, [r["encode_seconds"] for r in rows], "^--", color="grey", label="encode s")
    ax2.set_ylabel("encoding time (s)")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], loc="best", fontsize=8)
    ax.set_title(f"MME {result['backbone']}: quality and cost per N", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)
    return path
